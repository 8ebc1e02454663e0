package dns

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// The UDP worker's answer path, without a socket: respond() on packets the
// fixture's table answers (real embedded store, real registry snapshot).
//
//	go test -run '^$' -bench . -benchmem ./internal/dns/

// benchQueries are the query kinds the benchmarks answer: a rotated service
// answer, NODATA, NXDOMAIN, and a service answer asked with EDNS.
func benchQueries() []struct {
	name string
	pkt  []byte
} {
	mk := func(name string, qtype uint16, edns bool) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Id = 0x1234
		m.RecursionDesired = true
		if edns {
			m.SetEdns0(1232, false)
		}
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	}
	return []struct {
		name string
		pkt  []byte
	}{
		{"A", mk("db.cluster.test.", dns.TypeA, false)},
		{"AAAA-NODATA", mk("down.cluster.test.", dns.TypeAAAA, false)},
		{"NXDOMAIN", mk("nope.cluster.test.", dns.TypeA, false)},
		{"A-EDNS", mk("Db.Cluster.Test.", dns.TypeA, true)},
	}
}

func benchWorker(s *Server) *worker {
	return &worker{s: s, key: make([]byte, 0, 300), out: make([]byte, 0, 4096)}
}

// BenchmarkAnswerCached is a query the worker's cache already holds: the cost
// of every repeated query on the UDP path, less the syscalls. Must be 0
// allocs/op.
func BenchmarkAnswerCached(b *testing.B) {
	f := newFixture(b)
	for _, q := range benchQueries() {
		b.Run(q.name, func(b *testing.B) {
			w := benchWorker(f.srv)
			if out, _, req := w.respond(q.pkt); out == nil || req != nil {
				b.Fatalf("first answer: out %d bytes, req %v", len(out), req)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(q.pkt)))
			b.ResetTimer()
			for b.Loop() {
				out, _, _ := w.respond(q.pkt)
				if len(out) == 0 {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// BenchmarkAnswerMiss is a query the cache does not hold, so the full path
// runs: unpack with miekg/dns, answer from the table (every variant of a
// rotated answer), pack, and cache. "fresh-worker" starts from a worker
// that has seen nothing (what the first query after a new snapshot costs,
// cache map included); "evicted" is a warm worker whose entry for this query
// is removed before each query.
func BenchmarkAnswerMiss(b *testing.B) {
	f := newFixture(b)
	for _, q := range benchQueries() {
		b.Run(q.name+"/fresh-worker", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := benchWorker(f.srv)
				if out, _, _ := w.respond(q.pkt); len(out) == 0 {
					b.Fatal("no answer")
				}
			}
		})
		b.Run(q.name+"/evicted", func(b *testing.B) {
			w := benchWorker(f.srv)
			if out, _, _ := w.respond(q.pkt); len(out) == 0 {
				b.Fatal("no answer")
			}
			key, ok := w.fastKey(q.pkt)
			if !ok {
				b.Fatal("not a fast-path query")
			}
			k := string(key)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				delete(w.cache, k)
				if out, _, _ := w.respond(q.pkt); len(out) == 0 {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// BenchmarkTableBuild builds the name table from a snapshot of 1 000
// services × 10 nodes (one zone), the work done on every new snapshot. The
// snapshot is read from a real embedded store, outside the timer. Node IDs
// only have to be unique within their service, and <id>.node.<zone> is built
// from the ID alone, so the sub-benchmarks differ in how IDs repeat:
//
//	unique-ids     every node ID is unique (svc0001-n03)
//	shared-hosts   10 hosts run every service: ID host-03 has one address everywhere
//	colliding-ids  every service names its nodes n00..n09, with its own addresses
func BenchmarkTableBuild(b *testing.B) {
	const services, nodes = 1000, 10
	cases := []struct {
		name string
		node func(svc, j int) (string, netip.Addr)
	}{
		{"unique-ids", func(svc, j int) (string, netip.Addr) {
			return fmt.Sprintf("svc%04d-n%02d", svc, j), netip.AddrFrom4([4]byte{10, byte(svc >> 8), byte(svc), byte(j + 1)})
		}},
		{"shared-hosts", func(svc, j int) (string, netip.Addr) {
			return fmt.Sprintf("host-%02d", j), netip.AddrFrom4([4]byte{10, 0, 0, byte(j + 1)})
		}},
		{"colliding-ids", func(svc, j int) (string, netip.Addr) {
			return fmt.Sprintf("n%02d", j), netip.AddrFrom4([4]byte{10, byte(svc >> 8), byte(svc), byte(j + 1)})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			snap := benchSnapshot(b, services, nodes, c.node)
			nsAddr := netip.MustParseAddr("127.0.0.1")
			t := buildTable(snap, nsAddr, nil)
			o := t.zones[0].names.get("svc0000.bench.test.")
			if o == nil || o.svc == nil || len(o.svc.get().v4) != nodes {
				b.Fatal("table does not answer svc0000 with its nodes")
			}
			b.ReportAllocs()
			for b.Loop() {
				buildTable(snap, nsAddr, nil)
			}
		})
	}
}

// benchSnapshot writes services × nodes (check none, zone bench.test) to a
// fresh embedded store and returns the registry snapshot read back from it.
func benchSnapshot(b *testing.B, services, nodes int, node func(svc, j int) (string, netip.Addr)) *registry.Snapshot {
	b.Helper()
	st := storetest.New(b)
	ctx := context.Background()
	zone := "bench.test."
	d := store.Desired{store.ZoneKey(zone): &api.Zone{Name: zone, Source: api.SourceConfig}}
	for i := range services {
		name := fmt.Sprintf("svc%04d", i)
		s := &api.Service{Name: name, Port: 3000, Check: api.Check{Type: api.CheckNone}, Source: api.SourceConfig}
		s.SetDefaults()
		d[store.ServiceKey(name)] = s
		for j := range nodes {
			id, addr := node(i, j)
			n := &api.Node{ID: id, Service: name, Address: addr, Source: api.SourceConfig}
			n.SetDefaults()
			d[store.NodeKey(name, id)] = n
		}
	}
	if _, err := st.Reconcile(ctx, d); err != nil {
		b.Fatal(err)
	}
	items, rev, err := st.Load(ctx)
	if err != nil {
		b.Fatal(err)
	}
	snap := registry.Build(items, rev)
	if got := len(snap.Services()); got != services {
		b.Fatalf("snapshot has %d services, want %d", got, services)
	}
	return snap
}

// BenchmarkLimiterCheck is response rate limiting's cost per UDP answer
// (on by default): an exempt source (loopback, the default exemption), and
// a limited source (the hash and a striped lock; the clock is read once per
// batch, outside). Must be 0 allocs/op.
func BenchmarkLimiterCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		from netip.Addr
	}{
		{"exempt", netip.MustParseAddr("127.0.0.1")},
		{"limited-v4", netip.MustParseAddr("192.0.2.1")},
		{"limited-v6", netip.MustParseAddr("2001:db8::1")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLimiter(RRL{ResponsesPerSecond: 1_000_000, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}, nil)
			b.ReportAllocs()
			now := time.Now().UnixNano()
			for b.Loop() {
				now += 1000 // 1 000 000 answers per second: at the rate
				if l.checkAt(tc.from, 7, now) != send {
					b.Fatal("limited at the rate")
				}
			}
		})
	}
}
