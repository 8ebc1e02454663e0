package registry

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// scaleItems is a full load of one zone and one service (check none) of n
// nodes with loopback addresses.
func scaleItems(n int) []store.Item {
	svc := &api.Service{Name: "web", Port: 80, Check: api.Check{Type: api.CheckNone}}
	svc.SetDefaults()
	items := []store.Item{
		{Key: store.ZoneKey("scale.test."), Value: &api.Zone{Name: "scale.test."}, ModRevision: 1},
		{Key: store.ServiceKey("web"), Value: svc, ModRevision: 1},
	}
	for i := range n {
		items = append(items, scaleNode(i, 1))
	}
	return items
}

func scaleNode(i, rev int) store.Item {
	a := netip.AddrFrom4([4]byte{127, 50, byte(i >> 8), byte(i)})
	return store.Item{Key: store.NodeKey("web", fmt.Sprintf("n%06d", i)), ModRevision: int64(rev),
		Value: &api.Node{Address: a, Weight: 1, State: api.StateHealthy}}
}

// BenchmarkApply is the cost of one change (one node re-registered with a
// new address) to a registry of 1 000, 10 000 and 100 000 nodes: the same
// at every size but for the copy of the changed service's two pointer lists.
//
//	go test -run '^$' -bench Apply -benchtime 2000x ./internal/registry/
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			bl := NewBuilder(scaleItems(n), 1)
			rev := 1
			b.ReportAllocs()
			for b.Loop() {
				rev++
				bl.Apply([]store.Item{scaleNode(rev%n, rev)}, int64(rev))
			}
			if got, _ := bl.Snapshot().Counts(); got != n {
				b.Fatalf("%d nodes, want %d", got, n)
			}
		})
	}
}

func TestBuilderDelta(t *testing.T) {
	bl := NewBuilder(scaleItems(10), 1)
	if bl.Snapshot().Delta() != nil {
		t.Fatal("a full load has a delta")
	}
	s := bl.Apply([]store.Item{scaleNode(3, 2), {Key: store.NodeKey("web", "n000004"), Deleted: true, ModRevision: 2}}, 2)
	d := s.Delta()
	if d == nil || d.From != 1 || len(d.Other) != 0 {
		t.Fatalf("delta %+v", d)
	}
	if sd := d.Services["web"]; sd.Whole || len(sd.Nodes) != 2 || sd.Nodes[0] != "n000003" || sd.Nodes[1] != "n000004" {
		t.Fatalf("service delta %+v", sd)
	}
	v, _ := s.Service("web")
	if _, ok := v.Node("n000004"); ok {
		t.Fatal("deleted node still there")
	}
	svc := &api.Service{Name: "web", Port: 81, Check: api.Check{Type: api.CheckNone}}
	svc.SetDefaults()
	s = bl.Apply([]store.Item{{Key: store.ServiceKey("web"), Value: svc, ModRevision: 3}}, 3)
	if !s.Delta().Services["web"].Whole {
		t.Fatal("a service change is not whole")
	}
	s = bl.Apply([]store.Item{{Key: store.ZoneKey("other.test."), Value: &api.Zone{Name: "other.test."}, ModRevision: 4}}, 4)
	if len(s.Delta().Other) != 1 {
		t.Fatalf("zone change: %+v", s.Delta())
	}
}

// BenchmarkLoad is a full load (a start or a resync) of 100 000 nodes.
func BenchmarkLoad(b *testing.B) {
	items := scaleItems(100_000)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fresh := make([]store.Item, len(items))
		for i, it := range items {
			fresh[i] = it
			if n, ok := it.Value.(*api.Node); ok {
				c := *n
				fresh[i].Value = &c
			}
		}
		b.StartTimer()
		Build(fresh, 1)
	}
}

// BenchmarkCheckerLeaves is what a change of the live checkers costs a
// registry of 100 000 tcp-checked nodes, each with the verdict of its one
// owner (replicas 1) of three checkers: one checker's record and its third
// of the verdicts go in one batch, and every node is decided again under
// the new placement.
//
//	go test -run '^$' -bench CheckerLeaves -benchtime 5x ./internal/registry/
func BenchmarkCheckerLeaves(b *testing.B) {
	const n = 100_000
	svc := &api.Service{Name: "web", Port: 80, Check: api.Check{Type: api.CheckTCP, Replicas: 1}}
	svc.SetDefaults()
	ids := []string{"s1", "s2", "s3"}
	var cs []api.Checker
	for _, id := range ids {
		cs = append(cs, api.Checker{ID: id})
	}
	p := NewPlacement(cs)
	for b.Loop() {
		b.StopTimer()
		items := []store.Item{{Key: store.ServiceKey("web"), Value: svc}}
		for _, id := range ids {
			items = append(items, store.Item{Key: store.CheckerKey(id), Value: &api.Checker{ID: id}})
		}
		var gone []store.Item
		for i := range n {
			node := scaleNode(i, 1)
			items = append(items, node)
			o := p.Owners(NodeKey("web", node.Key.B), 1, nil)[0]
			v := store.Item{Key: store.HealthKey("web", node.Key.B, o), Value: &api.Verdict{Checker: o, State: api.StateHealthy}}
			items = append(items, v)
			if o == "s3" {
				gone = append(gone, store.Item{Key: v.Key, Deleted: true})
			}
		}
		bl := NewBuilder(items, 1)
		gone = append(gone, store.Item{Key: store.CheckerKey("s3"), Deleted: true})
		b.StartTimer()
		s := bl.Apply(gone, 2)
		b.StopTimer()
		if _, healthy := s.Counts(); healthy != n {
			b.Fatalf("%d of %d healthy after s3 left, want all (held)", healthy, n)
		}
		b.StartTimer()
	}
}
