package health

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// BenchmarkTakeOver is what one checker of three spends when another
// leaves a registry of 100 000 tcp-checked nodes (replicas 1): the sync of
// the snapshot without the leaver, which finds the third of the nodes it
// takes over and schedules their first probes. Together with the registry's
// own rebuild (registry.BenchmarkCheckerLeaves) it is the delay between a
// dead checker's lease expiring and its targets' first probes by others.
//
//	go test -run '^$' -bench TakeOver -benchtime 5x ./internal/health/
func BenchmarkTakeOver(b *testing.B) {
	const n = 100_000
	svc := &api.Service{Name: "web", Port: 80, Check: api.Check{Type: api.CheckTCP, Replicas: 1}}
	svc.SetDefaults()
	ids := []string{"s1", "s2", "s3"}
	items := []store.Item{{Key: store.ServiceKey("web"), Value: svc}}
	var cs []api.Checker
	for _, id := range ids {
		cs = append(cs, api.Checker{ID: id})
		items = append(items, store.Item{Key: store.CheckerKey(id), Value: &api.Checker{ID: id}})
	}
	p := registry.NewPlacement(cs)
	var gone []store.Item
	for i := range n {
		id := fmt.Sprintf("n%06d", i)
		a := netip.AddrFrom4([4]byte{127, 50, byte(i >> 8), byte(i)})
		items = append(items, store.Item{Key: store.NodeKey("web", id), Value: &api.Node{Address: a, Weight: 1, State: api.StateHealthy}})
		o := p.Owners(registry.NodeKey("web", id), 1, nil)[0]
		v := store.Item{Key: store.HealthKey("web", id, o), Value: &api.Verdict{Checker: o, State: api.StateHealthy}}
		items = append(items, v)
		if o == "s3" {
			gone = append(gone, store.Item{Key: v.Key, Deleted: true})
		}
	}
	gone = append(gone, store.Item{Key: store.CheckerKey("s3"), Deleted: true})
	bl := registry.NewBuilder(items, 1)
	before := bl.Snapshot()
	after := bl.Apply(gone, 2)
	var owned int
	for b.Loop() {
		b.StopTimer()
		c := New(Options{ID: "s1"})
		c.sync(before)
		owned = len(c.targets)
		b.StartTimer()
		c.sync(after)
		b.StopTimer()
		if len(c.targets) <= owned {
			b.Fatalf("s1 owns %d targets after s3 left, %d before", len(c.targets), owned)
		}
		b.StartTimer()
	}
}
