package httpapi

import (
	"testing"

	"github.com/seamark/seamark/api"
)

// summarize sums a listener's ports, counts them by state and counts
// distinct backends; listeners keep the order they first appear in.
func TestSummarize(t *testing.T) {
	port := func(name, state string, active int64, total uint64, nodes ...string) api.ListenerStats {
		p := api.ListenerStats{Name: name, Service: "app", Balance: "round_robin", State: state}
		p.Active, p.Total = active, total
		for _, n := range nodes {
			p.Backends = append(p.Backends, api.BackendStats{Node: n})
		}
		return p
	}
	got := summarize([]api.ListenerStats{
		port("bulk", "listening", 1, 10, "a", "b"),
		port("web", "failed", 0, 0),
		port("bulk", "listening", 2, 5, "b", "c"),
		port("bulk", "draining", 0, 7, "a"),
	})
	if len(got) != 2 || got[0].Name != "bulk" || got[1].Name != "web" {
		t.Fatalf("listeners %+v", got)
	}
	b := got[0]
	if b.Ports != 3 || b.Listening != 2 || b.Draining != 1 || b.Failed != 0 || b.Backends != 3 || b.Active != 3 || b.Total != 22 {
		t.Fatalf("bulk summary %+v", b)
	}
	if w := got[1]; w.Ports != 1 || w.Failed != 1 || w.Backends != 0 {
		t.Fatalf("web summary %+v", w)
	}
}
