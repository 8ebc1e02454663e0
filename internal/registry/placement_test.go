package registry_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

func checkers(ids ...string) []api.Checker {
	var cs []api.Checker
	for _, id := range ids {
		cs = append(cs, api.Checker{ID: id})
	}
	return cs
}

func owners(p *registry.Placement, node string, k int) []string {
	return p.Owners(registry.NodeKey("db", node), k, nil)
}

func TestPlacementStable(t *testing.T) {
	a := registry.NewPlacement(checkers("s1", "s2", "s3", "s4"))
	b := registry.NewPlacement(checkers("s1", "s2", "s3", "s4"))
	for i := range 1000 {
		n := fmt.Sprintf("n%d", i)
		got, again := owners(a, n, 3), owners(b, n, 3)
		if !slices.Equal(got, again) || len(got) != 3 {
			t.Fatalf("node %s: got owners %v and %v from equal placements, want the same 3", n, got, again)
		}
		if one := owners(a, n, 1); one[0] != got[0] {
			t.Fatalf("node %s: the first owner of k=1 is %s, of k=3 %v: want a prefix", n, one[0], got)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
			t.Fatalf("node %s: owners %v repeat a checker", n, got)
		}
	}
	if got := owners(a, "x", 9); len(got) != 4 {
		t.Fatalf("k above the live checkers: got %v, want all 4", got)
	}
	if got := owners(registry.NewPlacement(nil), "x", 3); len(got) != 0 {
		t.Fatalf("no live checker: got owners %v, want none", got)
	}
}

// Spread at 10 000 nodes over 3 checkers with k=1: each gets a third
// within ±10 %.
func TestPlacementBalanced(t *testing.T) {
	p := registry.NewPlacement(checkers("seamark-a-1f3c", "seamark-b-77e0", "seamark-c-0042"))
	const n = 10000
	count := map[string]int{}
	for i := range n {
		count[owners(p, fmt.Sprintf("node-%d", i), 1)[0]]++
	}
	for id, c := range count {
		if c < n/3*9/10 || c > n/3*11/10 {
			t.Errorf("checker %s owns %d of %d nodes, want %d ±10%%", id, c, n, n/3)
		}
	}
	if len(count) != 3 {
		t.Fatalf("got owners %v, want all three used", count)
	}
	// With k=2 every checker holds about two thirds.
	count = map[string]int{}
	for i := range n {
		for _, o := range owners(p, fmt.Sprintf("node-%d", i), 2) {
			count[o]++
		}
	}
	for id, c := range count {
		if c < 2*n/3*9/10 || c > 2*n/3*11/10 {
			t.Errorf("k=2: checker %s owns %d of %d nodes, want %d ±10%%", id, c, n, 2*n/3)
		}
	}
}

// When a checker leaves, only the nodes it owned move (about 1/N), and each
// moves to one new owner; the others keep theirs. When it comes back, the
// same nodes move back.
func TestPlacementMovesOneNth(t *testing.T) {
	ids := []string{"c0", "c1", "c2", "c3", "c4"}
	all := registry.NewPlacement(checkers(ids...))
	less := registry.NewPlacement(checkers("c0", "c1", "c3", "c4")) // c2 left
	const n = 10000
	for _, k := range []int{1, 3} {
		moved := 0
		for i := range n {
			node := fmt.Sprintf("node-%d", i)
			before, after := owners(all, node, k), owners(less, node, k)
			if !slices.Contains(before, "c2") {
				if !slices.Equal(before, after) {
					t.Fatalf("k=%d node %s: owners %v -> %v, but c2 did not own it", k, node, before, after)
				}
				continue
			}
			moved++
			gained := 0
			for _, o := range after {
				if !slices.Contains(before, o) {
					gained++
				}
			}
			if gained != 1 {
				t.Fatalf("k=%d node %s: owners %v -> %v, want exactly one new owner", k, node, before, after)
			}
		}
		want := n * k / len(ids)
		if moved < want*9/10 || moved > want*11/10 {
			t.Errorf("k=%d: %d of %d nodes moved, want about %d (k/N)", k, moved, n, want)
		}
	}
}

func TestPlacementDegradedNotPreferred(t *testing.T) {
	cs := checkers("a", "b", "c", "d")
	cs[1].Degraded = "probes fail on this machine: too many open files"
	p := registry.NewPlacement(cs)
	for i := range 1000 {
		got := owners(p, fmt.Sprintf("n%d", i), 3)
		if slices.Contains(got, "b") {
			t.Fatalf("node n%d: owners %v include the degraded checker b while 3 others are healthy", i, got)
		}
		if all := owners(p, fmt.Sprintf("n%d", i), 4); all[3] != "b" {
			t.Fatalf("node n%d: owners %v, want the degraded checker last", i, all)
		}
	}
}

// The majority and handoff rule, snapshot by snapshot, as every server's
// registry applies it.
func TestShardedVerdicts(t *testing.T) {
	up, down := api.StateHealthy, api.StateUnhealthy
	svc := service("db", api.CheckTCP)
	svc.Check.Replicas = 1
	ids := []string{"a", "b", "c"}
	p := registry.NewPlacement(checkers(ids...))
	// A node owned by c (k=1), and the checker that takes it when c is gone.
	var nodeID, heir string
	for i := 0; nodeID == ""; i++ {
		id := fmt.Sprintf("n%d", i)
		if o := owners(p, id, 1); o[0] == "c" {
			nodeID = id
			heir = registry.NewPlacement(checkers("a", "b")).Owners(registry.NodeKey("db", id), 1, nil)[0]
		}
	}
	other := "a"
	if heir == "a" {
		other = "b"
	}
	checkerItem := func(id string, deleted bool) store.Item {
		return store.Item{Key: store.CheckerKey(id), Value: &api.Checker{ID: id}, Deleted: deleted}
	}
	vote := func(checker string, st api.NodeState) store.Item {
		return store.Item{Key: store.HealthKey("db", nodeID, checker), Value: &api.Verdict{Checker: checker, State: st}}
	}
	unvote := func(checker string) store.Item {
		return store.Item{Key: store.HealthKey("db", nodeID, checker), Deleted: true}
	}
	n := nodeID
	b := registry.NewBuilder([]store.Item{
		{Key: store.ServiceKey("db"), Value: svc},
		{Key: store.NodeKey("db", n), Value: node("db", n, 1)},
		checkerItem("a", false), checkerItem("b", false), checkerItem("c", false),
	}, 10)
	rev := int64(10)
	step := func(name string, want, wantHeld bool, items ...store.Item) {
		t.Helper()
		rev++
		s := b.Apply(items, rev)
		v, _ := s.Service("db")
		got, ok := v.Node(n)
		if !ok {
			t.Fatalf("%s: node %s is gone", name, n)
		}
		if got.Healthy != want || got.Held != wantHeld {
			t.Fatalf("%s: got healthy %v held %v, want %v %v (checks %+v)", name, got.Healthy, got.Held, want, wantHeld, got.Checks)
		}
	}
	step("no verdict: check.initial", false, false)
	step("a non-owner's verdict counts while the owner has none", true, false, vote(other, up))
	step("the owner says down: only its verdict counts", false, false, vote("c", down))
	step("the owner says up", true, false, vote("c", up))
	step("a non-owner says down: does not count", true, false, vote(other, down))
	step("the non-owner withdraws", true, false, unvote(other))
	// c dies: its lease takes its record and verdicts in one revision.
	step("owner gone, no verdict left: the last decision holds", true, true, unvote("c"), checkerItem("c", true))
	step("still held on a later unrelated change", true, true, store.Item{Key: store.ServiceKey("db"), Value: svc})
	step("the new owner writes: its verdict counts", true, false, vote(heir, up))
	// c comes back and owns the node again; until it writes, the heir's
	// verdict (the old owner's) counts.
	step("old owner counts until the new one writes", true, false, checkerItem("c", false))
	step("the new owner's verdict counts once written", false, false, vote("c", down))
	step("the old owner withdraws: nothing changes", false, false, unvote(heir))
}

// With k=3 over 3 checkers, the votes are a majority; a tie (one of two
// owners left) favours availability.
func TestShardedMajority(t *testing.T) {
	up, down := api.StateHealthy, api.StateUnhealthy
	v := func(st ...api.NodeState) map[string]api.Verdict {
		m := map[string]api.Verdict{}
		for i, s := range st {
			id := fmt.Sprintf("c%d", i)
			m[id] = api.Verdict{Checker: id, State: s}
		}
		return m
	}
	p := registry.NewPlacement(checkers("c0", "c1", "c2"))
	check := api.Check{Replicas: 3}
	key := registry.NodeKey("db", "x")
	tests := []struct {
		name     string
		votes    map[string]api.Verdict
		up, down int
	}{
		{"none", v(), 0, 0},
		{"two of three up", v(up, up, down), 2, 1},
		{"one of three up", v(up, down, down), 1, 2},
		{"a tie of two", v(up, down), 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, d := p.Count(key, check, tc.votes)
			if u != tc.up || d != tc.down {
				t.Fatalf("got %d up %d down, want %d %d", u, d, tc.up, tc.down)
			}
		})
	}
	// Four holders, three owners: the fourth (a former owner) does not count.
	p4 := registry.NewPlacement(checkers("c0", "c1", "c2", "c3"))
	own := p4.Owners(key, 3, nil)
	votes := map[string]api.Verdict{}
	for _, id := range []string{"c0", "c1", "c2", "c3"} {
		st := up
		if !slices.Contains(own, id) {
			st = down
		}
		votes[id] = api.Verdict{Checker: id, State: st}
	}
	if u, d := p4.Count(key, check, votes); u != 3 || d != 0 {
		t.Fatalf("4 holders, 3 owners up: got %d up %d down, want 3 0 (the non-owner's down not counted)", u, d)
	}
}

// A candidate passing by its only owner's verdict stays a node when that
// owner dies, until a verdict counts again.
func TestShardedCandidateHeld(t *testing.T) {
	svc := service("pool", api.CheckTCP)
	svc.Check.Replicas = 1
	svc.Candidates = []string{"127.0.61.0/28"}
	id := api.CandidateID(netip.MustParseAddr("127.0.61.5"))
	vote := func(checker string, st api.NodeState) store.Item {
		return store.Item{Key: store.HealthKey("pool", id, checker), Value: &api.Verdict{Checker: checker, State: st}}
	}
	b := registry.NewBuilder([]store.Item{
		{Key: store.ServiceKey("pool"), Value: svc},
		{Key: store.CheckerKey("a"), Value: &api.Checker{ID: "a"}},
		vote("a", api.StateHealthy),
	}, 10)
	served := func(s *registry.Snapshot) (bool, bool) {
		v, _ := s.Service("pool")
		n, ok := v.Node(id)
		return ok && n.Healthy, ok && n.Held
	}
	if ok, _ := served(b.Snapshot()); !ok {
		t.Fatal("candidate not served with its owner's healthy verdict")
	}
	s := b.Apply([]store.Item{{Key: store.HealthKey("pool", id, "a"), Deleted: true}, {Key: store.CheckerKey("a"), Deleted: true}}, 11)
	if ok, held := served(s); !ok || !held {
		t.Fatalf("owner gone: got served %v held %v, want the candidate held", ok, held)
	}
	s = b.Apply([]store.Item{{Key: store.CheckerKey("b"), Value: &api.Checker{ID: "b"}}, vote("b", api.StateUnhealthy)}, 12)
	if ok, _ := served(s); ok {
		t.Fatal("new owner says down: candidate still served")
	}
}
