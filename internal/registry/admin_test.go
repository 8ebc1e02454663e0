package registry_test

import (
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// An admin state is joined onto its node: drain and maint take it out of
// the served (Healthy) list without changing its verdict, a weight override
// replaces Weight and keeps the registered one, and an admin state of a
// node that is not registered makes no node.
func TestAdminJoin(t *testing.T) {
	reg := node("db", "db-a", 1)
	reg.Weight = 3
	tests := []struct {
		name       string
		admin      *api.NodeAdmin
		served     bool
		weight     int
		registered int
	}{
		{"none", nil, true, 3, 0},
		{"ready", &api.NodeAdmin{State: api.AdminReady}, true, 3, 0},
		{"drain", &api.NodeAdmin{State: api.AdminDrain}, false, 3, 0},
		{"maint", &api.NodeAdmin{State: api.AdminMaint}, false, 3, 0},
		{"weight override", &api.NodeAdmin{State: api.AdminReady, Weight: 9}, true, 9, 3},
		{"drain with weight", &api.NodeAdmin{State: api.AdminDrain, Weight: 9}, false, 9, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items := []store.Item{
				{Key: store.ServiceKey("db"), Value: service("db", api.CheckNone)},
				{Key: store.NodeKey("db", "db-a"), Value: reg},
				{Key: store.AdminKey("db", "ghost"), Value: &api.NodeAdmin{State: api.AdminDrain}},
			}
			if tc.admin != nil {
				items = append(items, store.Item{Key: store.AdminKey("db", "db-a"), Value: tc.admin})
			}
			s := registry.Build(items, 10)
			v, _ := s.Service("db")
			if len(v.Nodes()) != 1 {
				t.Fatalf("got %d nodes, want db-a only (an admin state makes no node)", len(v.Nodes()))
			}
			n := v.Nodes()[0]
			if !n.Healthy || (len(v.Healthy()) == 1) != tc.served || n.Weight != tc.weight || n.RegisteredWeight != tc.registered {
				t.Fatalf("got healthy %v served %v weight %d registered %d, want true %v %d %d",
					n.Healthy, len(v.Healthy()) == 1, n.Weight, n.RegisteredWeight, tc.served, tc.weight, tc.registered)
			}
		})
	}
}
