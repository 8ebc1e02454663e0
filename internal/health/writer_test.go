package health

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// flakyStore is the real store whose lease grants can be made to fail at
// once or to hang until their deadline.
type flakyStore struct {
	Store
	mode   atomic.Int32 // 0 pass, 1 fail fast, 2 hang
	grants atomic.Int64
}

func (f *flakyStore) GrantLease(ctx context.Context, ttl time.Duration) (*store.Lease, error) {
	f.grants.Add(1)
	switch f.mode.Load() {
	case 1:
		return nil, errors.New("grant lease: etcdserver: no leader")
	case 2:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.Store.GrantLease(ctx, ttl)
}

// A lost lease is granted again by the writer with a deadline and backoff,
// not by the scheduler in a tight loop; probing goes on meanwhile, whether
// the grants fail at once or hang; once granted, the verdicts are written
// again on the new lease.
func TestLeaseRegrantBacksOff(t *testing.T) {
	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 1, Fall: 1}
	w.service("db", 3000, check)
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.44.33:3000"))
	clock := NewFakeClock()
	p := &localProber{}
	fs := &flakyStore{Store: w.st}
	c := New(Options{ID: "c1", Clock: clock, Prober: p, Store: fs, Snapshots: w.w, LeaseTTL: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	advance(clock, 3*time.Second, 100*time.Millisecond)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	// Grants fail at once: the lease is revoked under the checker.
	fs.mode.Store(1)
	fs.grants.Store(0)
	c.w.mu.Lock()
	id := c.w.lease.ID()
	c.w.mu.Unlock()
	if err := w.st.RevokeLease(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	w.waitNode("db", "db-a", "without c1's verdict", 5*time.Second, func(n *api.Node) bool { return n != nil && len(n.Checks) == 0 })
	// The client finds the lease gone at its next keep-alive.
	for deadline := time.Now().Add(5 * time.Second); fs.grants.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer never tried to grant a new lease")
		}
	}
	time.Sleep(300 * time.Millisecond) // real time, fake clock still: no retry is due
	if n := fs.grants.Load(); n != 1 {
		t.Fatalf("%d grants in 300ms with the clock still, want 1 (then wait for the backoff)", n)
	}
	probes := p.calls.Load()
	advance(clock, 10*time.Second, 100*time.Millisecond)
	// Backoff 0.1 s doubling to 5 s with jitter on the upper half: between
	// 4 and 9 attempts fit in 10 s.
	if n := fs.grants.Load(); n < 4 || n > 9 {
		t.Fatalf("%d grants in 10s of failures, want 4..9 (exponential backoff)", n)
	}
	if n := p.calls.Load() - probes; n < 8 {
		t.Fatalf("%d probes in 10s while the lease was lost, want probing to go on", n)
	}

	// Grants hang: each ends at its 2 s deadline; probing goes on.
	fs.mode.Store(2)
	probes = p.calls.Load()
	advance(clock, 10*time.Second, 100*time.Millisecond)
	if n := p.calls.Load() - probes; n < 8 {
		t.Fatalf("%d probes in 10s of hanging grants, want probing to go on", n)
	}

	// The store answers again: a new lease and the verdict on it.
	fs.mode.Store(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		advance(clock, 500*time.Millisecond, 100*time.Millisecond)
		s := w.w.Current()
		if v, ok := s.Service("db"); ok && len(v.Nodes) == 1 && len(v.Nodes[0].Checks) == 1 && v.Nodes[0].Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the verdict was not written again after the lease came back")
		}
	}
}
