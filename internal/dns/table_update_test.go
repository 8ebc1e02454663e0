package dns

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

func updateItems(services, nodes int) []store.Item {
	items := []store.Item{{Key: store.ZoneKey("up.test."), Value: &api.Zone{Name: "up.test."}, ModRevision: 1}}
	for s := range services {
		items = append(items, updateService(s, 80, 1))
		for j := range nodes {
			items = append(items, updateNode(s, j, j, 1))
		}
	}
	// A static record at a node's name: that name is rebuilt whole.
	items = append(items, store.Item{Key: store.RecordKey("up.test.", "n1.node.up.test.", "TXT"), ModRevision: 1,
		Value: &api.Record{Name: "n1.node.up.test.", Type: "TXT", TTL: api.Duration(60e9), Values: []string{"static"}}})
	return items
}

func updateService(s, port, rev int) store.Item {
	svc := &api.Service{Name: fmt.Sprintf("svc%d", s), Port: port, Check: api.Check{Type: api.CheckNone}}
	svc.SetDefaults()
	return store.Item{Key: store.ServiceKey(svc.Name), Value: svc, ModRevision: int64(rev)}
}

// updateNode is node n<j> of service s: IDs repeat across services (one
// machine in several services), addresses may differ.
func updateNode(s, j, addr, rev int) store.Item {
	state := api.StateHealthy
	if addr%5 == 4 {
		state = api.StateUnhealthy
	}
	return store.Item{Key: store.NodeKey(fmt.Sprintf("svc%d", s), fmt.Sprintf("n%d", j)), ModRevision: int64(rev),
		Value: &api.Node{Address: netip.AddrFrom4([4]byte{127, 50, byte(s), byte(addr)}), Weight: 1 + addr%3, State: state}}
}

func zoneText(t *table) []string {
	var out []string
	for _, z := range t.zones {
		for _, rr := range zoneRecords(z) {
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestTableUpdateMatchesBuild applies random changes (nodes added, moved,
// removed; a service redefined) and checks after each that the table made
// from an earlier one (the previous snapshot's, or one a few snapshots back)
// answers exactly what a table built whole answers.
func TestTableUpdateMatchesBuild(t *testing.T) {
	const services, nodes = 3, 12
	b := registry.NewBuilder(updateItems(services, nodes), 1)
	ns := netip.MustParseAddr("127.0.50.1")
	prev := b.Snapshot()
	tb := buildTable(prev, ns, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	updated := 0
	for rev := 2; rev < 300; rev++ {
		var items []store.Item
		for range 1 + rng.IntN(3) {
			s, j := rng.IntN(services), rng.IntN(nodes+4)
			switch r := rng.IntN(10); {
			case r < 6:
				items = append(items, updateNode(s, j, rng.IntN(20), rev))
			case r < 9:
				items = append(items, store.Item{Key: store.NodeKey(fmt.Sprintf("svc%d", s), fmt.Sprintf("n%d", j)), Deleted: true, ModRevision: int64(rev)})
			default:
				items = append(items, updateService(s, 80+rng.IntN(3), rev))
			}
		}
		snap := b.Apply(items, int64(rev))
		if rng.IntN(3) == 0 {
			continue // a reader that falls behind: the next update spans several snapshots
		}
		next := tb.update(prev, snap, snap.DeltaSince(prev.Revision))
		if next == nil {
			next = buildTable(snap, ns, nil)
		} else {
			updated++
		}
		whole := buildTable(snap, ns, nil)
		if got, want := zoneText(next), zoneText(whole); !slices.Equal(got, want) {
			t.Fatalf("rev %d (%v): updated table differs from a whole build\n got %d records\nwant %d records", rev, items, len(got), len(want))
		}
		for j := range nodes + 4 {
			q := new(dns.Msg)
			q.SetQuestion(fmt.Sprintf("n%d.node.up.test.", j), dns.TypeA)
			r1, _ := next.answer(q, 0, false)
			r2, _ := whole.answer(q, 0, false)
			if r1.Rcode != r2.Rcode || len(r1.Answer) != len(r2.Answer) {
				t.Fatalf("rev %d: n%d: updated %s %d answers, whole %s %d", rev, j, dns.RcodeToString[r1.Rcode], len(r1.Answer), dns.RcodeToString[r2.Rcode], len(r2.Answer))
			}
		}
		prev, tb = snap, next
	}
	if updated < 100 {
		t.Fatalf("only %d tables were updated in place", updated)
	}
}

// BenchmarkTableUpdate is the DNS side of one change (a node moved) at 1 000,
// 10 000 and 100 000 nodes in one service: flat.
//
//	go test -run '^$' -bench TableUpdate -benchtime 2000x ./internal/dns/
func BenchmarkTableUpdate(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			items := []store.Item{{Key: store.ZoneKey("up.test."), Value: &api.Zone{Name: "up.test."}, ModRevision: 1}, updateService(0, 80, 1)}
			node := func(j, rev int) store.Item {
				return store.Item{Key: store.NodeKey("svc0", fmt.Sprintf("n%06d", j)), ModRevision: int64(rev),
					Value: &api.Node{Address: netip.AddrFrom4([4]byte{127, 50, byte(j >> 8), byte(j + rev)}), Weight: 1, State: api.StateHealthy}}
			}
			for j := range n {
				items = append(items, node(j, 1))
			}
			bl := registry.NewBuilder(items, 1)
			prev := bl.Snapshot()
			tb := buildTable(prev, netip.MustParseAddr("127.0.50.1"), nil)
			rev := 1
			b.ReportAllocs()
			for b.Loop() {
				rev++
				snap := bl.Apply([]store.Item{node(rev%n, rev)}, int64(rev))
				if tb = tb.update(prev, snap, snap.Delta()); tb == nil {
					b.Fatal("not updated in place")
				}
				prev = snap
			}
		})
	}
}
