package registry

import (
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// A full re-read (a broken watch) while a node's only owner is gone keeps
// the node's last decision, as following the stream would have.
func TestReloadKeepsHeldDecision(t *testing.T) {
	svc := &api.Service{Name: "db", Port: 3000, Source: api.SourceConfig, Check: api.Check{Type: api.CheckTCP, Replicas: 1}}
	svc.SetDefaults()
	n := &api.Node{ID: "a", Service: "db", Source: api.SourceConfig}
	n.SetDefaults()
	base := []store.Item{{Key: store.ServiceKey("db"), Value: svc}, {Key: store.NodeKey("db", "a"), Value: n}}
	withVerdict := append(append([]store.Item{}, base...),
		store.Item{Key: store.CheckerKey("c1"), Value: &api.Checker{ID: "c1"}},
		store.Item{Key: store.HealthKey("db", "a", "c1"), Value: &api.Verdict{Checker: "c1", State: api.StateHealthy}})
	before := Build(withVerdict, 10)
	if v, _ := before.Service("db"); v.HealthyCount() != 1 {
		t.Fatalf("got %d healthy before, want 1", v.HealthyCount())
	}
	// c1 died: a re-read finds no verdict.
	st := newState()
	st.prior = before
	after, _ := st.load(cloneItems(base), 20)
	v, _ := after.Service("db")
	got, _ := v.Node("a")
	if !got.Healthy || !got.Held {
		t.Fatalf("after the re-read: got healthy %v held %v, want the last decision held", got.Healthy, got.Held)
	}
	// Without a prior snapshot (a server that starts) check.initial decides.
	fresh := Build(cloneItems(base), 20)
	v, _ = fresh.Service("db")
	if got, _ := v.Node("a"); got.Healthy || got.Held {
		t.Fatalf("fresh load: got healthy %v held %v, want check.initial (unhealthy)", got.Healthy, got.Held)
	}
}

// cloneItems copies the nodes in items: a load takes ownership of them.
func cloneItems(items []store.Item) []store.Item {
	out := make([]store.Item, len(items))
	for i, it := range items {
		if n, ok := it.Value.(*api.Node); ok {
			c := *n
			it.Value = &c
		}
		out[i] = it
	}
	return out
}
