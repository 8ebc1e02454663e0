package lb

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/seamark/seamark/api"
)

func testPool(weights ...int) *pool {
	var bs []*backend
	for i := range weights {
		id := string(rune('a' + i))
		bs = append(bs, &backend{node: id, seed: mix64(strHash(id))})
	}
	return newPool(bs, weights)
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	p := testPool(5, 1, 1)
	var got strings.Builder
	for range 14 {
		got.WriteString(p.pick(api.BalanceRoundRobin, netip.Addr{}, nil).node)
	}
	if want := "aabacaaaabacaa"; got.String() != want {
		t.Errorf("got %s, want %s", got.String(), want)
	}
}

func TestPickSkipsTriedBackends(t *testing.T) {
	for _, balance := range []string{api.BalanceRoundRobin, api.BalanceLeastConn, api.BalanceHash, api.BalanceRandom2} {
		p := testPool(1, 1, 1)
		src := netip.MustParseAddr("192.0.2.9")
		var skip tried
		for range 3 {
			b := p.pick(balance, src, skip)
			if b == nil || skip.has(b) {
				t.Fatalf("%s: got %v with %d tried", balance, b, len(skip))
			}
			skip = append(skip, b)
		}
		if b := p.pick(balance, src, skip); b != nil {
			t.Errorf("%s: got %s with every backend tried, want none", balance, b.node)
		}
	}
	if b := testPool().pick(api.BalanceRoundRobin, netip.Addr{}, nil); b != nil {
		t.Error("empty pool picked a backend")
	}
}

func TestLeastConnPrefersTheLeastLoadedPerWeight(t *testing.T) {
	p := testPool(1, 2)
	p.backends[0].stats.active.Store(2)
	p.backends[1].stats.active.Store(3) // 1.5 per weight
	if b := p.pick(api.BalanceLeastConn, netip.Addr{}, nil); b.node != "b" {
		t.Errorf("got %s, want b", b.node)
	}
}

// TestHashIsConsistent: removing a backend moves only the clients it had;
// the weights shape the shares.
func TestHashIsConsistent(t *testing.T) {
	full := testPool(1, 1, 1, 1, 1)
	less := newPool(full.backends[:4], full.weights[:4])
	moved, had := 0, 0
	for i := range 5000 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		a, b := full.pick(api.BalanceHash, src, nil), less.pick(api.BalanceHash, src, nil)
		if a.node == "e" {
			had++
			continue
		}
		if a != b {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d clients of remaining backends moved, want 0", moved)
	}
	if had < 800 || had > 1200 {
		t.Errorf("backend e had %d of 5000 clients, want about 1000", had)
	}
	weighted := testPool(3, 1)
	counts := map[string]int{}
	for i := range 4000 {
		counts[weighted.pick(api.BalanceHash, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), nil).node]++
	}
	if counts["a"] < 2700 || counts["a"] > 3300 {
		t.Errorf("weights 3:1 gave %v, want about 3000:1000", counts)
	}
}

func TestRandom2HonoursWeights(t *testing.T) {
	p := testPool(9, 1)
	counts := map[string]int{}
	for range 10000 {
		counts[p.pick(api.BalanceRandom2, netip.Addr{}, nil).node]++
	}
	// With no load, the first draw wins: shares follow the weights.
	if counts["a"] < 8500 || counts["a"] > 9500 {
		t.Errorf("weights 9:1 gave %v", counts)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, balance := range []string{api.BalanceRoundRobin, api.BalanceLeastConn, api.BalanceHash, api.BalanceRandom2} {
		for _, n := range []int{3, 50} {
			b.Run(fmt.Sprintf("%s/%d", balance, n), func(b *testing.B) {
				w := make([]int, n)
				for i := range w {
					w[i] = 1 + i%3
				}
				p := testPool(w...)
				src := netip.MustParseAddr("192.0.2.1")
				b.ReportAllocs()
				for b.Loop() {
					p.pick(balance, src, nil)
				}
			})
		}
	}
}

// TestHashIsStable pins the client → backend map of hash balancing: it must
// not depend on the process (a restart, or the other member of a group,
// sends a client to the same node). A change here moves deployed clients.
func TestHashIsStable(t *testing.T) {
	ids := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	build := func(ids []string) *pool {
		var bs []*backend
		var ws []int
		for _, id := range ids {
			bs = append(bs, &backend{node: id, seed: mix64(uint64(len(id)) ^ strHash(id))})
			ws = append(ws, 1)
		}
		return newPool(bs, ws)
	}
	full, less := build(ids), build([]string{"node-a", "node-b", "node-c", "node-e"})
	var got strings.Builder
	moved := 0
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)})
		a := full.pick(api.BalanceHash, src, nil)
		if i < 12 {
			got.WriteString(a.node[5:])
		}
		if less.pick(api.BalanceHash, src, nil).node != a.node {
			moved++
		}
	}
	if want := "dadabccbaeed"; got.String() != want {
		t.Errorf("first 12 clients went to %q, want %q: the hash changed, so deployed clients would move", got.String(), want)
	}
	if moved > 250 {
		t.Errorf("removing 1 of 5 backends moved %d of 1000 clients, want ≤ 250", moved)
	}
}
