package registry_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// TestReplaceDecidesLikeAFullBuild: when checkers come and go, the
// incremental snapshot decides every node that has a vote exactly as a
// fresh build of the same store does, keeps the node values of the nodes
// whose owners did not change, and lists in its delta only nodes, never
// the whole service (only the nodes whose owners moved or whose votes
// changed).
func TestReplaceDecidesLikeAFullBuild(t *testing.T) {
	for _, replicas := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			const n = 3000 // above redecideMin: the merge pass runs
			rng := rand.New(rand.NewPCG(uint64(replicas), 7))
			svc := service("db", api.CheckTCP)
			svc.Check.Replicas = replicas
			items := map[string]store.Item{}
			put := func(it store.Item) { items[it.Key.String()] = it }
			put(store.Item{Key: store.ServiceKey("db"), Value: svc})
			live := []string{"a", "b", "c"}
			for _, id := range live {
				put(store.Item{Key: store.CheckerKey(id), Value: &api.Checker{ID: id}})
			}
			p := registry.NewPlacement(checkers(live...))
			var ids []string
			for i := range n {
				id := fmt.Sprintf("n%05d", i)
				ids = append(ids, id)
				put(store.Item{Key: store.NodeKey("db", id), Value: node("db", id, i%250)})
				for _, o := range p.Owners(registry.NodeKey("db", id), replicas, nil) {
					st := api.StateHealthy
					if rng.IntN(4) == 0 {
						st = api.StateUnhealthy
					}
					put(store.Item{Key: store.HealthKey("db", id, o), Value: &api.Verdict{Checker: o, State: st}})
				}
			}
			all := func() []store.Item { return slices.Collect(maps.Values(items)) }
			b := registry.NewBuilder(all(), 1)
			rev := int64(1)
			apply := func(what string, batch []store.Item) *registry.Snapshot {
				t.Helper()
				prev := b.Snapshot()
				rev++
				for _, it := range batch {
					if it.Deleted {
						delete(items, it.Key.String())
					} else {
						put(it)
					}
				}
				s := b.Apply(batch, rev)
				fresh := registry.Build(all(), rev)
				got, _ := s.Service("db")
				want, _ := fresh.Service("db")
				old, _ := prev.Service("db")
				moved := map[string]bool{}
				for _, it := range batch {
					if it.Key.Kind == store.KindHealth {
						moved[strings.Split(it.Key.B, "/")[0]] = true
					}
				}
				for _, id := range ids {
					k := registry.NodeKey("db", id)
					if !slices.Equal(prev.Placement().Owners(k, prev.Placement().K(svc.Check), nil), s.Placement().Owners(k, s.Placement().K(svc.Check), nil)) {
						moved[id] = true
					}
				}
				for _, id := range ids {
					g, _ := got.Node(id)
					w, _ := want.Node(id)
					o, _ := old.Node(id)
					if len(w.Checks) > 0 && g.Healthy != w.Healthy {
						t.Fatalf("%s: node %s healthy %v, a full build says %v (checks %+v)", what, id, g.Healthy, w.Healthy, g.Checks)
					}
					if !moved[id] && g != o {
						t.Fatalf("%s: node %s was decided again though neither its owners nor its votes changed", what, id)
					}
				}
				sd, ok := s.Delta().ServiceOf("db")
				if !ok || sd.Whole {
					t.Fatalf("%s: delta %+v, want the moved nodes only", what, sd)
				}
				for _, id := range sd.Nodes {
					if !moved[id] {
						t.Fatalf("%s: delta lists %s, which did not move", what, id)
					}
				}
				if len(sd.Nodes) != len(moved) {
					t.Fatalf("%s: %d nodes in the delta, %d moved", what, len(sd.Nodes), len(moved))
				}
				t.Logf("%s: %d of %d nodes moved", what, len(moved), n)
				return s
			}
			// A fourth checker joins: it owns about a quarter of the nodes
			// and has written nothing yet; the former owners' votes count.
			apply("d joins", []store.Item{{Key: store.CheckerKey("d"), Value: &api.Checker{ID: "d"}}})
			// c dies: its record and its verdicts go in one revision.
			var gone []store.Item
			for key, it := range items {
				if it.Key.Kind == store.KindHealth && strings.HasSuffix(it.Key.B, "/c") {
					gone = append(gone, store.Item{Key: items[key].Key, Deleted: true})
				}
			}
			gone = append(gone, store.Item{Key: store.CheckerKey("c"), Deleted: true})
			s := apply("c leaves", gone)
			v, _ := s.Service("db")
			if v.NodeCount() != n {
				t.Fatalf("%d nodes after c left, want %d", v.NodeCount(), n)
			}
		})
	}
}
