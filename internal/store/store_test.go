package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

func svc(name string) api.Service {
	s := api.Service{Name: name, Port: 3000, Source: api.SourceAPI}
	s.SetDefaults()
	return s
}

func node(service, id, addr string) api.Node {
	n := api.Node{ID: id, Service: service, Address: netip.MustParseAddr(addr), Source: api.SourceAPI}
	n.SetDefaults()
	return n
}

func load(t *testing.T, s *store.Store) map[store.Key]store.Item {
	t.Helper()
	items, _, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[store.Key]store.Item{}
	for _, it := range items {
		m[it.Key] = it
	}
	return m
}

func TestNodeNeedsItsService(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	_, _, err := s.PutNode(ctx, node("db", "a", "127.0.0.1"), 0)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("register node of missing service: got %v, want ErrNotFound", err)
	}
	if _, err := s.PutService(ctx, svc("db"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutService(ctx, svc("db"), true); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create twice: got %v, want ErrExists", err)
	}
	if _, _, err := s.PutNode(ctx, node("db", "a", "127.0.0.1"), 0); err != nil {
		t.Fatal(err)
	}
	got := load(t, s)[store.NodeKey("db", "a")].Value.(*api.Node)
	if got.Address.String() != "127.0.0.1" {
		t.Fatalf("got address %s, want 127.0.0.1", got.Address)
	}
}

func TestConfigOwnedObjectsRefuseOtherWriters(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	cs := svc("db")
	cs.Source = api.SourceConfig
	if _, err := s.PutService(ctx, cs, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutService(ctx, svc("db"), false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("api overwrite of config service: got %v, want ErrConflict", err)
	}
	if _, err := s.DeleteService(ctx, "db", api.SourceAPI); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("api delete of config service: got %v, want ErrConflict", err)
	}
}

func TestLeasedNodeExpiresUnlessRenewed(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.PutService(ctx, svc("db"), true); err != nil {
		t.Fatal(err)
	}
	// kept's lease is longer, so that renewing it every ~200 ms holds even
	// when a loaded machine stalls the test for a second; dropped's 1 s
	// lease is what must run out.
	for id, ttl := range map[string]time.Duration{"kept": 3 * time.Second, "dropped": time.Second} {
		if _, _, err := s.PutNode(ctx, node("db", id, "127.0.0.1"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.RenewNode(ctx, "db", "kept"); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if _, there := load(t, s)[store.NodeKey("db", "dropped")]; !there {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := load(t, s)
	if _, there := m[store.NodeKey("db", "dropped")]; there {
		t.Fatal("node with an unrenewed 1s lease still there after 6s")
	}
	if _, there := m[store.NodeKey("db", "kept")]; !there {
		t.Fatal("renewed node disappeared")
	}
	if _, err := s.RenewNode(ctx, "db", "dropped"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew expired: got %v, want ErrNotFound", err)
	}
}

func TestChangeBatchIsAtomic(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	zone := "cluster.test."
	if _, err := s.Reconcile(ctx, store.Desired{store.ZoneKey(zone): &api.Zone{Name: zone, Source: api.SourceConfig}}); err != nil {
		t.Fatal(err)
	}
	a := func(name, v string) api.Record { return api.Record{Name: name, Type: "A", Values: []string{v}} }
	tests := []struct {
		name     string
		changes  []api.Change
		wantErr  bool
		wantRecs int
	}{
		{"create two", []api.Change{{Action: "CREATE", Record: a("www", "192.0.2.1")}, {Action: "CREATE", Record: a("api", "192.0.2.2")}}, false, 2},
		{"create existing fails whole batch", []api.Change{{Action: "CREATE", Record: a("new", "192.0.2.3")}, {Action: "CREATE", Record: a("www", "192.0.2.9")}}, true, 2},
		{"delete missing fails whole batch", []api.Change{{Action: "UPSERT", Record: a("new", "192.0.2.3")}, {Action: "DELETE", Record: api.Record{Name: "nope", Type: "A"}}}, true, 2},
		{"delete then create replaces", []api.Change{{Action: "DELETE", Record: api.Record{Name: "www", Type: "A"}}, {Action: "CREATE", Record: a("www", "192.0.2.7")}}, false, 2},
		{"name outside zone", []api.Change{{Action: "UPSERT", Record: a("www.other.test.", "192.0.2.3")}}, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ApplyChanges(ctx, zone, api.ChangeBatch{Changes: tc.changes})
			if (err != nil) != tc.wantErr {
				t.Fatalf("got err %v, want error: %v", err, tc.wantErr)
			}
			var ce *store.ChangeError
			if tc.wantErr && !errors.As(err, &ce) {
				t.Fatalf("got %T, want a *store.ChangeError naming the change", err)
			}
			n := 0
			for k := range load(t, s) {
				if k.Kind == store.KindRecord {
					n++
				}
			}
			if n != tc.wantRecs {
				t.Fatalf("got %d record sets, want %d", n, tc.wantRecs)
			}
		})
	}
	got := load(t, s)[store.RecordKey(zone, "www.cluster.test.", "A")].Value.(*api.Record)
	if got.Values[0] != "192.0.2.7" {
		t.Fatalf("got www %v, want 192.0.2.7", got.Values)
	}
	if _, err := s.ApplyChanges(ctx, "missing.test.", api.ChangeBatch{Changes: []api.Change{{Action: "UPSERT", Record: a("x", "192.0.2.1")}}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("change in missing zone: got %v, want ErrNotFound", err)
	}
}

func TestReconcileTouchesOnlyConfigObjects(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	cfgSvc := func(name string) *api.Service { v := svc(name); v.Source = api.SourceConfig; return &v }
	cfgNode := func(id string) *api.Node { n := node("db", id, "127.0.0.2"); n.Source = api.SourceConfig; return &n }
	first := store.Desired{store.ServiceKey("db"): cfgSvc("db"), store.ServiceKey("old"): cfgSvc("old"), store.NodeKey("db", "static"): cfgNode("static")}
	if _, err := s.Reconcile(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutNode(ctx, node("db", "agent-1", "127.0.0.3"), 0); err != nil {
		t.Fatal(err)
	}
	second := store.Desired{store.ServiceKey("db"): cfgSvc("db"), store.NodeKey("db", "agent-1"): cfgNode("agent-1")}
	res, err := s.Reconcile(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, s)
	if _, there := m[store.ServiceKey("old")]; there {
		t.Error("service removed from the file is still there")
	}
	if _, there := m[store.NodeKey("db", "static")]; there {
		t.Error("static node removed from the file is still there")
	}
	if n := m[store.NodeKey("db", "agent-1")].Value.(*api.Node); n.Source != api.SourceAPI {
		t.Errorf("got agent-1 source %s, want api (a reload never takes over registered nodes)", n.Source)
	}
	if res.Deleted != 2 || res.Kept != 1 || len(res.Skipped) != 1 {
		t.Errorf("got %+v, want 2 deleted, 1 kept, 1 skipped", res)
	}
}

func TestWatchReportsCompaction(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	_, rev0, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 5 {
		last, err = s.PutService(ctx, svc("s"+string(rune('a'+i))), true)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ch, errf := s.Watch(wctx, rev0)
	for range ch {
	}
	if err := errf(); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from compacted revision: got %v, want ErrCompacted", err)
	}
}

func TestOpenCloseLeaksNothing(t *testing.T) {
	dir := t.TempDir()
	open := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := store.Open(ctx, store.Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	open() // warm up once: package-level goroutines start on first use
	g0, fd0 := runtime.NumGoroutine(), countFDs(t)
	for range 3 {
		open()
	}
	var g, fd int
	for range 50 {
		g, fd = runtime.NumGoroutine(), countFDs(t)
		if g <= g0+2 && fd <= fd0+2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after 3 open/close cycles: goroutines %d -> %d, fds %d -> %d", g0, g, fd0, fd)
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd: cannot count descriptors")
	}
	return len(ents)
}

// The event log keeps the newest MaxEvents.
func TestEventLogIsBounded(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	t0 := time.Now()
	total := store.MaxEvents + 25
	for i := range total {
		e := api.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: api.EventHealth, Node: fmt.Sprint(i)}
		if _, err := s.AppendEvent(ctx, e, "test"); err != nil {
			t.Fatal(err)
		}
	}
	var events []*api.Event
	for k, it := range load(t, s) {
		if k.Kind == store.KindEvent {
			events = append(events, it.Value.(*api.Event))
		}
	}
	if len(events) != store.MaxEvents {
		t.Fatalf("got %d events, want %d", len(events), store.MaxEvents)
	}
	for _, e := range events {
		if n, _ := strconv.Atoi(e.Node); n < total-store.MaxEvents {
			t.Fatalf("event %s kept, want only the newest %d", e.Node, store.MaxEvents)
		}
	}
}

// A load in pages reads every object once, at the first page's revision:
// writes made between pages do not show.
func TestLoadInPages(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.PutService(ctx, svc("db"), true); err != nil {
		t.Fatal(err)
	}
	for i := range 23 {
		if _, _, err := s.PutNode(ctx, node("db", fmt.Sprintf("n%02d", i), "127.0.0.1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	whole, rev, err := s.LoadPages(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	paged, prev, err := s.LoadPages(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 24 || len(paged) != len(whole) || prev != rev {
		t.Fatalf("got %d objects at %d in pages of 5, %d at %d in one; want 24 at the same revision", len(paged), prev, len(whole), rev)
	}
	for i := range whole {
		if whole[i].Key != paged[i].Key {
			t.Fatalf("object %d: got %s in pages, %s in one read", i, paged[i].Key, whole[i].Key)
		}
	}
}

// Audit events are kept apart, a batch per key: a burst of them never
// pushes health events out, and they are trimmed to MaxAuditEvents on their
// own.
func TestAuditEventsKeptApart(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	t0 := time.Now()
	for i := range 10 {
		if _, err := s.AppendEvent(ctx, api.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: api.EventHealth, Node: fmt.Sprint(i)}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	total := store.MaxAuditEvents + 300
	for first := 0; first < total; first += 100 {
		var batch []api.Event
		for i := first; i < first+100; i++ {
			batch = append(batch, api.Event{Time: t0.Add(time.Second + time.Duration(i)*time.Millisecond), Kind: api.EventAudit, Action: fmt.Sprint(i)})
		}
		if err := s.AppendEvents(ctx, batch, "audit-srv"); err != nil {
			t.Fatal(err)
		}
	}
	var health, audit, auditKeys int
	for k, it := range load(t, s) {
		if k.Kind != store.KindEvent {
			continue
		}
		var es []api.Event
		switch v := it.Value.(type) {
		case *api.Event:
			es = []api.Event{*v}
		case *[]api.Event: // a batch of audit events
			es = *v
			auditKeys++
		}
		for _, e := range es {
			switch e.Kind {
			case api.EventHealth:
				health++
			case api.EventAudit:
				audit++
				if n, _ := strconv.Atoi(e.Action); n < total-store.MaxAuditEvents {
					t.Fatalf("audit event %s kept, want only the newest %d", e.Action, store.MaxAuditEvents)
				}
			}
		}
	}
	if auditKeys != store.MaxAuditEvents/100 {
		t.Errorf("got %d audit keys, want %d (one per batch of 100)", auditKeys, store.MaxAuditEvents/100)
	}
	if health != 10 || audit != store.MaxAuditEvents {
		t.Fatalf("got %d health and %d audit events, want 10 and %d", health, audit, store.MaxAuditEvents)
	}
}
