package registry_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

func service(name string, check string) *api.Service {
	s := api.Service{Name: name, Port: 3000, Source: api.SourceConfig, Check: api.Check{Type: check}}
	s.SetDefaults()
	return &s
}

func node(svc, id string, i int) *api.Node {
	n := api.Node{ID: id, Service: svc, Address: netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), Source: api.SourceConfig}
	n.SetDefaults()
	return &n
}

// breakable is the real store with a watch the test can cut, hold down, or
// send to a compacted revision.
type breakable struct {
	*store.Store
	mu        sync.Mutex
	cancel    context.CancelFunc
	held      chan struct{} // while non-nil, Watch waits for it to close
	staleFrom int64         // when set, the next Watch starts there instead
	loads     atomic.Int32
}

func (b *breakable) Load(ctx context.Context) ([]store.Item, int64, error) {
	b.loads.Add(1)
	b.mu.Lock()
	held := b.held
	b.mu.Unlock()
	if held != nil { // the store is away: a load fails at its deadline
		select {
		case <-held:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return b.Store.Load(ctx)
}

func (b *breakable) Watch(ctx context.Context, from int64) (<-chan store.Batch, func() error) {
	b.mu.Lock()
	held := b.held
	if b.staleFrom != 0 {
		from, b.staleFrom = b.staleFrom, 0
	}
	wctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	b.mu.Unlock()
	if held != nil {
		<-held
	}
	return b.Store.Watch(wctx, from)
}

func (b *breakable) cut(hold bool) (release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var held chan struct{}
	if hold {
		held = make(chan struct{})
		b.held = held
	}
	b.cancel()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.held = nil
			b.mu.Unlock()
			if held != nil {
				close(held)
			}
		})
	}
}

func start(t *testing.T, src registry.Source) *registry.Watcher {
	t.Helper()
	w := registry.NewWatcher(src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no first snapshot after 10s")
	}
	return w
}

// waitFor waits until cond holds for the current snapshot.
func waitFor(t *testing.T, w *registry.Watcher, what string, cond func(*registry.Snapshot) bool) *registry.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		s := w.Current()
		if cond(s) {
			return s
		}
		select {
		case <-w.Next(s):
		case <-ctx.Done():
			t.Fatalf("snapshot never showed %s (revision %d)", what, s.Revision)
		}
	}
}

func nodesOf(s *registry.Snapshot, svc string) int {
	v, ok := s.Service(svc)
	if !ok {
		return -1
	}
	return len(v.Nodes())
}

func TestSnapshotFollowsWrites(t *testing.T) {
	st := storetest.New(t)
	w := start(t, st)
	ctx := context.Background()
	rev, err := st.Reconcile(ctx, store.Desired{
		store.ZoneKey("cluster.test."):  &api.Zone{Name: "cluster.test.", Source: api.SourceConfig},
		store.ServiceKey("db"):          service("db", api.CheckNone),
		store.ServiceKey("app"):         service("app", api.CheckTCP),
		store.NodeKey("db", "db-a"):     node("db", "db-a", 1),
		store.NodeKey("app", "app-a"):   node("app", "app-a", 2),
		store.ListenerKey("client_one"): &api.Listener{Name: "client_one", Port: 9001, Service: "app", Source: api.SourceConfig},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = rev
	s := waitFor(t, w, "db with one node", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 1 && nodesOf(s, "app") == 1 })
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"zones", fmt.Sprint(s.Zones()), "[cluster.test.]"},
		{"check none trusts the registration", len(mustService(t, s, "db").Healthy()), 1},
		{"unchecked tcp node is not advertised", len(mustService(t, s, "app").Healthy()), 0},
		{"listeners", len(s.Listeners()), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	// A node of a deleted service is no longer served.
	if _, err := st.DeleteService(ctx, "db", api.SourceConfig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "db gone", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == -1 })
}

func mustService(t *testing.T, s *registry.Snapshot, name string) *registry.ServiceView {
	t.Helper()
	v, ok := s.Service(name)
	if !ok {
		t.Fatalf("service %s missing from snapshot", name)
	}
	return v
}

// A transaction is never seen half applied: 60 nodes written in one
// transaction appear in one snapshot.
func TestSnapshotNeverShowsHalfATransaction(t *testing.T) {
	st := storetest.New(t)
	w := start(t, st)
	ctx := context.Background()
	if _, err := st.PutService(ctx, *service("db", api.CheckNone), true); err != nil {
		t.Fatal(err)
	}
	seen := make(chan int, 1000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := w.Current()
		for {
			seen <- nodesOf(s, "db")
			select {
			case <-w.Next(s):
				s = w.Current()
			case <-stop:
				return
			}
		}
	}()
	want := store.Desired{store.ServiceKey("db"): service("db", api.CheckNone)}
	for i := range 60 {
		id := fmt.Sprintf("n%02d", i)
		want[store.NodeKey("db", id)] = node("db", id, i+1)
	}
	if _, err := st.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "60 nodes", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 60 })
	close(stop)
	wg.Wait()
	close(seen)
	for n := range seen {
		if n != 0 && n != 60 && n != -1 {
			t.Fatalf("a snapshot showed %d of the 60 nodes written in one transaction", n)
		}
	}
}

// A watch that is cut while writes happen resyncs to the full state.
func TestSnapshotResyncsAfterLostWatch(t *testing.T) {
	st := storetest.New(t)
	src := &breakable{Store: st}
	w := start(t, src)
	ctx := context.Background()
	if _, err := st.PutService(ctx, *service("db", api.CheckNone), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "db", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 0 })
	before := w.Current().Revision

	release := src.cut(true) // the stream is lost and cannot come back yet
	t.Cleanup(release)       // a failure below must not leave the watcher held
	var last int64
	for i := range 5 {
		n := node("db", fmt.Sprintf("n%d", i), i+1)
		rev, _, err := st.PutNode(ctx, *n, 0)
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	if err := st.Compact(ctx, last); err != nil { // and the history it missed is gone
		t.Fatal(err)
	}
	if got := w.Current().Revision; got != before {
		t.Fatalf("snapshot moved to %d while the watch was down", got)
	}
	release()
	s := waitFor(t, w, "all 5 nodes after resync", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 5 })
	if s.Revision < last {
		t.Fatalf("got revision %d, want >= %d", s.Revision, last)
	}
	if src.loads.Load() < 2 {
		t.Fatalf("got %d full loads, want a re-read after the cut", src.loads.Load())
	}
}

// A watch that resumes at a compacted revision gets ErrCompacted and the
// watcher re-reads everything instead of serving a partial view.
func TestSnapshotResyncsAfterCompaction(t *testing.T) {
	st := storetest.New(t)
	src := &breakable{Store: st}
	w := start(t, src)
	ctx := context.Background()
	if _, err := st.PutService(ctx, *service("db", api.CheckNone), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "db", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 0 })
	var last int64
	for i := range 3 {
		rev, _, err := st.PutNode(ctx, *node("db", fmt.Sprintf("n%d", i), i+1), 0)
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	waitFor(t, w, "3 nodes", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 3 })
	if err := st.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	loads := src.loads.Load()
	src.mu.Lock()
	src.staleFrom = 1 // the next watch asks for history that is gone
	src.mu.Unlock()
	release := src.cut(false)
	defer release()
	if _, err := st.DeleteNode(ctx, "db", "n0", api.SourceConfig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "n0 deleted", func(s *registry.Snapshot) bool { return nodesOf(s, "db") == 2 })
	deadline := time.Now().Add(5 * time.Second)
	for src.loads.Load() < loads+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := src.loads.Load(); got < loads+2 {
		t.Fatalf("got %d loads, want %d: the compacted watch must lead to a full re-read", got, loads+2)
	}
}

// A preloaded full load (the server reads the store once at start) is the
// first snapshot without another Load, and the watch follows on from its
// revision: writes made after the load, before Run, are not missed.
func TestSnapshotFromPreload(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	if _, err := st.Reconcile(ctx, store.Desired{
		store.ServiceKey("db"):      service("db", api.CheckNone),
		store.NodeKey("db", "db-a"): node("db", "db-a", 1),
	}); err != nil {
		t.Fatal(err)
	}
	items, rev, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Written after the load, before the watcher runs.
	res, err := st.ReconcileLoaded(ctx, items, store.Desired{
		store.ServiceKey("db"):      service("db", api.CheckNone),
		store.NodeKey("db", "db-a"): node("db", "db-a", 1),
		store.NodeKey("db", "db-b"): node("db", "db-b", 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 1 || res.Kept != 2 || res.Revision <= rev {
		t.Fatalf("reconcile against the load: %+v (load at %d), want 1 created, 2 kept, a newer revision", res, rev)
	}
	src := &breakable{Store: st}
	w := registry.NewWatcher(src, nil)
	w.Preload(items, rev)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	s, err := w.WaitRevision(tctx, res.Revision)
	if err != nil {
		t.Fatalf("snapshot never reached the reconcile's revision %d: %v", res.Revision, err)
	}
	if n := nodesOf(s, "db"); n != 2 {
		t.Fatalf("db has %d nodes at revision %d, want 2", n, s.Revision)
	}
	if n := src.loads.Load(); n != 0 {
		t.Fatalf("the watcher read the store %d times, want 0 (it was preloaded)", n)
	}
}
