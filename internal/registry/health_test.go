package registry_test

import (
	"net/netip"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

func verdict(checker string, st api.NodeState) store.Item {
	return store.Item{Key: store.HealthKey("db", "db-a", checker), Value: &api.Verdict{Checker: checker, State: st}}
}

func TestVerdictsVote(t *testing.T) {
	up, down := api.StateHealthy, api.StateUnhealthy
	tests := []struct {
		name    string
		initial api.NodeState
		votes   []store.Item
		want    bool
	}{
		{"no verdict yet: initial unhealthy", api.StateUnhealthy, nil, false},
		{"no verdict yet: initial healthy", api.StateHealthy, nil, true},
		{"one checker up", api.StateUnhealthy, []store.Item{verdict("a", up)}, true},
		{"one checker down", api.StateHealthy, []store.Item{verdict("a", down)}, false},
		{"two of three up", api.StateUnhealthy, []store.Item{verdict("a", up), verdict("b", up), verdict("c", down)}, true},
		{"two of three down", api.StateUnhealthy, []store.Item{verdict("a", up), verdict("b", down), verdict("c", down)}, false},
		{"tie favours availability", api.StateUnhealthy, []store.Item{verdict("a", up), verdict("b", down)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("db", api.CheckTCP)
			svc.Check.Initial = tc.initial
			items := append([]store.Item{
				{Key: store.ServiceKey("db"), Value: svc},
				{Key: store.NodeKey("db", "db-a"), Value: node("db", "db-a", 1)},
			}, tc.votes...)
			s := registry.Build(items, 10)
			v, _ := s.Service("db")
			if got := len(v.Healthy()) == 1; got != tc.want {
				t.Fatalf("got healthy %v, want %v", got, tc.want)
			}
			if got := len(v.Nodes()[0].Checks); got != len(tc.votes) {
				t.Fatalf("got %d checks on the node, want %d", got, len(tc.votes))
			}
		})
	}
}

func TestCandidatesBecomeNodesWhilePassing(t *testing.T) {
	svc := service("pool", api.CheckTCP)
	svc.Candidates = []string{"127.0.1.0/28"}
	cand := func(addr string, st api.NodeState) store.Item {
		id := api.CandidateID(netip.MustParseAddr(addr))
		return store.Item{Key: store.HealthKey("pool", id, "a"), Value: &api.Verdict{Checker: "a", State: st}}
	}
	s := registry.Build([]store.Item{
		{Key: store.ServiceKey("pool"), Value: svc},
		cand("127.0.1.2", api.StateHealthy),
		cand("127.0.1.3", api.StateHealthy),
		cand("127.0.1.4", api.StateUnhealthy), // was up, now down: not a node
		cand("127.0.2.9", api.StateHealthy),   // outside the pool now: not a node
	}, 5)
	v, _ := s.Service("pool")
	var got []string
	for _, n := range v.Healthy() {
		got = append(got, n.Address.String()+"/"+string(n.Source))
	}
	want := "[127.0.1.2/candidate 127.0.1.3/candidate]"
	if g := fmtList(got); g != want || len(v.Nodes()) != 2 {
		t.Fatalf("got healthy %s (of %d nodes), want %s", g, len(v.Nodes()), want)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestCandidateIDRoundTrip(t *testing.T) {
	for _, a := range []string{"10.0.1.5", "127.0.1.15", "fd00::5", "2001:db8::1:0:0:1"} {
		addr := netip.MustParseAddr(a)
		id := api.CandidateID(addr)
		if msg := api.CheckName(id); msg != "" {
			t.Errorf("CandidateID(%s) = %q: %s", a, id, msg)
		}
		back, ok := api.ParseCandidateID(id)
		if !ok || back != addr {
			t.Errorf("ParseCandidateID(%q) = %v %v, want %s", id, back, ok, a)
		}
	}
}
