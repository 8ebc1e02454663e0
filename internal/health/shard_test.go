package health

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
)

// probeLog is a fakeProber that remembers which targets it probed.
type probeLog struct {
	fakeProber
	mu   sync.Mutex
	seen map[string]bool
}

func (r *probeLog) Probe(ctx context.Context, t Target) Result {
	r.mu.Lock()
	r.seen[t.Key()] = true
	r.mu.Unlock()
	return r.fakeProber.Probe(ctx, t)
}

// probed returns the keys probed since the last call, sorted.
func (r *probeLog) probed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.seen))
	for k := range r.seen {
		out = append(out, k)
	}
	clear(r.seen)
	slices.Sort(out)
	return out
}

// Targets move between checkers with no gap: each checker probes the nodes
// placed on it; when one stops, its nodes keep their state until the
// others have probed them; when one joins, the former owners keep probing
// until it has written. No node changes state and no event is written.
func TestShardedHandoff(t *testing.T) {
	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 1, Fall: 2, Replicas: 1}
	w.service("db", 3000, check)
	const n = 30
	var keys []string
	for i := range n {
		id := fmt.Sprintf("n%02d", i)
		w.node("db", id, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 61, byte(i + 1)}), 3000))
		keys = append(keys, "db/"+id)
	}
	up := func() *probeLog {
		r := &probeLog{fakeProber: fakeProber{up: map[string]bool{}}, seen: map[string]bool{}}
		for _, k := range keys {
			r.up[k] = true
		}
		return r
	}
	clock := NewFakeClock()
	const step = 100 * time.Millisecond
	advance := func(d time.Duration) {
		for elapsed := time.Duration(0); elapsed < d; elapsed += step {
			clock.Advance(step)
			time.Sleep(5 * time.Millisecond)
		}
	}
	pa, pb, pc := up(), up(), up()
	w.run(Options{ID: "a", Clock: clock, Prober: pa})
	stopB := w.run(Options{ID: "b", Clock: clock, Prober: pb})
	waitCheckers := func(ids ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got []string
			for _, c := range w.w.Current().Checkers() {
				got = append(got, c.ID)
			}
			if slices.Equal(got, ids) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("got live checkers %v, want %v", got, ids)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCheckers("a", "b")
	ownersOf := func(ids ...string) map[string][]string {
		var cs []api.Checker
		for _, id := range ids {
			cs = append(cs, api.Checker{ID: id})
		}
		p := registry.NewPlacement(cs)
		out := map[string][]string{}
		for i := range n {
			id := fmt.Sprintf("n%02d", i)
			o := p.Owners(registry.NodeKey("db", id), 1, nil)[0]
			out[o] = append(out[o], "db/"+id)
		}
		return out
	}
	allHealthy := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, _ := w.w.Current().Service("db")
			if v.HealthyCount() == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d nodes healthy", what, v.HealthyCount(), n)
			}
			advance(step)
		}
	}
	// Watch every snapshot from here on: a node once healthy must stay so.
	allHealthy("start")
	advance(2 * time.Second)
	startEvents := len(w.w.Current().Events())
	falls := make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s := w.w.Current()
		for {
			v, _ := s.Service("db")
			for _, nd := range v.Nodes() {
				if !nd.Healthy {
					select {
					case falls <- fmt.Sprintf("%s unhealthy at revision %d (checks %+v held %v)", nd.ID, s.Revision, nd.Checks, nd.Held):
					default:
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-w.w.Next(s):
				s = w.w.Current()
			}
		}
	}()
	pa.probed()
	pb.probed()
	advance(2 * time.Second)
	want := ownersOf("a", "b")
	if got := pa.probed(); !slices.Equal(got, want["a"]) {
		t.Fatalf("checker a probed %v, want its own %v", got, want["a"])
	}
	if got := pb.probed(); !slices.Equal(got, want["b"]) {
		t.Fatalf("checker b probed %v, want its own %v", got, want["b"])
	}
	t.Logf("a owns %d, b owns %d of %d", len(want["a"]), len(want["b"]), n)

	// b stops (its lease revoked, its verdicts gone at once): a probes all.
	stopB()
	waitCheckers("a")
	advance(2 * time.Second)
	if got := pa.probed(); len(got) != n {
		t.Fatalf("after b left, a probed %d targets, want all %d", len(got), n)
	}
	allHealthy("after b left")
	v, _ := w.w.Current().Service("db")
	for _, nd := range v.Nodes() {
		if nd.Held || len(nd.Checks) != 1 || nd.Checks[0].Checker != "a" {
			t.Fatalf("after b left: node %s checks %+v held %v, want a's verdict alone", nd.ID, nd.Checks, nd.Held)
		}
	}

	// c joins: the nodes placed on c move; a keeps probing them until c
	// has written, then withdraws its verdicts.
	w.run(Options{ID: "c", Clock: clock, Prober: pc})
	waitCheckers("a", "c")
	want = ownersOf("a", "c")
	deadline := time.Now().Add(10 * time.Second)
	for {
		advance(step)
		v, _ := w.w.Current().Service("db")
		settled := true
		for _, nd := range v.Nodes() {
			o := "a"
			if slices.Contains(want["c"], "db/"+nd.ID) {
				o = "c"
			}
			if len(nd.Checks) != 1 || nd.Checks[0].Checker != o {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after c joined, verdicts never settled on their owners: %+v", v.Nodes())
		}
	}
	pa.probed()
	pc.probed()
	advance(2 * time.Second)
	if got := pa.probed(); !slices.Equal(got, want["a"]) {
		t.Fatalf("after the handoff a probed %v, want its own %v", got, want["a"])
	}
	if got := pc.probed(); !slices.Equal(got, want["c"]) {
		t.Fatalf("after the handoff c probed %v, want its own %v", got, want["c"])
	}
	cancel()
	<-watched
	close(falls)
	for f := range falls {
		t.Errorf("a node changed state in a handoff: %s", f)
	}
	if evs := w.w.Current().Events()[startEvents:]; len(evs) > 0 {
		t.Errorf("got %d events in the handoffs, want none: %+v", len(evs), evs)
	}
}
