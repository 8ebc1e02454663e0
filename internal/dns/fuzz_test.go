package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// fuzzWorker is a UDP worker over a small table, without a socket.
func fuzzWorker() *worker {
	svc := &api.Service{Name: "db", Port: 3000, Check: api.Check{Type: api.CheckNone}}
	svc.SetDefaults()
	n := func(id, addr string) store.Item {
		nd := &api.Node{ID: id, Service: "db", Address: netip.MustParseAddr(addr)}
		nd.SetDefaults()
		return store.Item{Key: store.NodeKey("db", id), Value: nd}
	}
	rec := &api.Record{Name: "alias.cluster.test.", Type: "CNAME", Values: []string{"db.cluster.test."}}
	rec.SetDefaults()
	snap := registry.Build([]store.Item{
		{Key: store.ZoneKey("cluster.test."), Value: &api.Zone{Name: "cluster.test."}},
		{Key: store.ServiceKey("db"), Value: svc},
		n("db-a", "127.0.0.11"), n("db-b", "::1"),
		{Key: store.RecordKey("cluster.test.", "alias.cluster.test.", "CNAME"), Value: rec},
	}, 7)
	s := New(Options{})
	s.table.Store(buildTable(snap, netip.MustParseAddr("127.0.0.1"), nil))
	return &worker{s: s, key: make([]byte, 0, 300), out: make([]byte, 0, 4096)}
}

// FuzzRespond feeds arbitrary packets to the UDP path (fast path, cache, full
// path) and the TCP answer: never a panic, and any answer parses.
func FuzzRespond(f *testing.F) {
	seed := func(name string, qtype uint16, edns bool) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if edns {
			m.SetEdns0(4096, true)
		}
		b, _ := m.Pack()
		return b
	}
	f.Add(seed("db.cluster.test.", dns.TypeA, false))
	f.Add(seed("DB.cluster.TEST.", dns.TypeAAAA, true))
	f.Add(seed("alias.cluster.test.", dns.TypeA, true))
	f.Add(seed("_db._tcp.cluster.test.", dns.TypeSRV, false))
	f.Add(seed("nope.cluster.test.", dns.TypeTXT, false))
	f.Add(seed("example.org.", dns.TypeA, false))
	f.Add([]byte{0x11, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Add([]byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 2, 'd', 'b', 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 1, 0, 0, 0, 0})
	// Delegations, wildcards, CNAME loops: the differential test's zone.
	for _, n := range []string{"host.sub", "x.wild", "q.wcname", "loop1", "z.y.ent2", "dangling", "cn2sub"} {
		f.Add(seed(n+"."+rfcZone, dns.TypeA, true))
	}
	f.Add(seed("alias."+rfcZone, dns.TypeANY, false))
	f.Add(seed("_svc._tcp."+rfcZone, dns.TypeSRV, false))
	w := fuzzWorker()
	rw := &worker{s: New(Options{}), key: make([]byte, 0, 300), out: make([]byte, 0, 4096)}
	rt := rfcTable(f, 24)
	rw.s.table.Store(rt)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, w := range []*worker{w, rw} {
			for range 2 { // the second time may come from the cache
				out, _, req := w.respond(pkt)
				if out != nil {
					var m dns.Msg
					if err := m.Unpack(out); err != nil && len(out) > 12 {
						t.Fatalf("answer does not parse: %v", err)
					}
					if len(out) > DefaultMaxUDPSize {
						t.Fatalf("UDP answer of %d bytes, over the cap", len(out))
					}
				}
				if req != nil {
					w.table.answer(req, 1, true)
				}
			}
		}
	})
}
