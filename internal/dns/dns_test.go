package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// fixture is a real DNS server answering from a real registry on a real
// embedded store, holding zone cluster.test with:
//
//	db      check none, nodes db-a 127.0.0.11, db-b 127.0.0.12, db-c ::1
//	big     60 healthy nodes, max_answers 64 (does not fit in 512 bytes)
//	down    two nodes, none healthy, fail_open
//	gone    one node, none healthy, when_none_healthy empty
//	static  www A, alias CNAME db, chain CNAME alias, ext CNAME example.org.,
//	        txt TXT, @ MX, _sip._udp SRV
type fixture struct {
	st   *store.Store
	w    *registry.Watcher
	srv  *Server
	addr string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	zone := "cluster.test."
	svc := func(name string, check string, p api.AnswerPolicy) *api.Service {
		s := &api.Service{Name: name, Port: 3000, Check: api.Check{Type: check}, Answers: p, Source: api.SourceConfig}
		s.SetDefaults()
		return s
	}
	node := func(service, id, addr string, state api.NodeState) *api.Node {
		n := &api.Node{ID: id, Service: service, Address: netip.MustParseAddr(addr), State: state, Source: api.SourceConfig}
		n.SetDefaults()
		return n
	}
	d := store.Desired{
		store.ZoneKey(zone):         &api.Zone{Name: zone, Source: api.SourceConfig},
		store.ServiceKey("db"):      svc("db", api.CheckNone, api.AnswerPolicy{}),
		store.NodeKey("db", "db-a"): node("db", "db-a", "127.0.0.11", ""),
		store.NodeKey("db", "db-b"): node("db", "db-b", "127.0.0.12", ""),
		store.NodeKey("db", "db-c"): node("db", "db-c", "::1", ""),
		store.ServiceKey("big"):     svc("big", api.CheckNone, api.AnswerPolicy{MaxAnswers: 64}),
		store.ServiceKey("down"):    svc("down", api.CheckNone, api.AnswerPolicy{}),
		store.NodeKey("down", "d1"): node("down", "d1", "127.0.0.21", api.StateUnhealthy),
		store.NodeKey("down", "d2"): node("down", "d2", "127.0.0.22", api.StateUnhealthy),
		store.ServiceKey("gone"):    svc("gone", api.CheckNone, api.AnswerPolicy{WhenNoneHealthy: api.NoneHealthyEmpty}),
		store.NodeKey("gone", "g1"): node("gone", "g1", "127.0.0.31", api.StateUnhealthy),
	}
	for i := range 60 {
		id := fmt.Sprintf("b%02d", i)
		d[store.NodeKey("big", id)] = node("big", id, fmt.Sprintf("127.0.2.%d", i+1), "")
	}
	if _, err := st.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	changes := []api.Change{
		{Action: "CREATE", Record: api.Record{Name: "www", Type: "A", Values: []string{"192.0.2.1", "192.0.2.2"}}},
		{Action: "CREATE", Record: api.Record{Name: "alias", Type: "CNAME", Values: []string{"db"}}},
		{Action: "CREATE", Record: api.Record{Name: "chain", Type: "CNAME", Values: []string{"alias.cluster.test."}}},
		{Action: "CREATE", Record: api.Record{Name: "ext", Type: "CNAME", Values: []string{"www.example.org."}}},
		{Action: "CREATE", Record: api.Record{Name: "txt", Type: "TXT", Values: []string{"hello world", `say "hi"`}}},
		{Action: "CREATE", Record: api.Record{Name: "@", Type: "MX", Values: []string{"10 www"}}},
		{Action: "CREATE", Record: api.Record{Name: "_sip._udp", Type: "SRV", Values: []string{"0 5 5060 www"}}},
	}
	if _, err := st.ApplyChanges(ctx, zone, api.ChangeBatch{Changes: changes}); err != nil {
		t.Fatal(err)
	}
	w := registry.NewWatcher(st, nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	<-w.Ready()
	_, rev, _ := st.Load(ctx)
	w.WaitRevision(ctx, rev)
	// The fixture's tests poll from loopback as fast as answers come: not
	// a flood to limit (the rate limiting tests make their own servers).
	srv := New(Options{Addr: "127.0.0.1:0", Snapshots: w, RRL: RRL{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan struct{})
	go func() { defer close(sdone); srv.Serve(wctx) }()
	t.Cleanup(func() { cancel(); <-sdone; <-done })
	return &fixture{st: st, w: w, srv: srv, addr: srv.Addr().String()}
}

func (f *fixture) ask(t testing.TB, m *dns.Msg, network string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, f.addr)
	if err != nil && r == nil {
		t.Fatalf("exchange %v: %v", m.Question, err)
	}
	return r
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	return m
}

func values(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		f := strings.Fields(rr.String())
		out = append(out, f[3]+" "+strings.Join(f[4:], " "))
	}
	return out
}

// Conformance with miekg/dns exchanges: every rule of the issue, as a table.
func TestConformance(t *testing.T) {
	f := newFixture(t)
	edns := func(m *dns.Msg, size uint16, version uint8) *dns.Msg {
		m.SetEdns0(size, false)
		m.IsEdns0().SetVersion(version)
		return m
	}
	tests := []struct {
		name    string
		msg     *dns.Msg
		network string
		rcode   int
		check   func(t *testing.T, r *dns.Msg)
	}{
		{"service A answers healthy nodes, authoritative, no recursion", query("db.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 2 || !r.Authoritative || r.RecursionAvailable || !r.RecursionDesired {
				t.Fatalf("got %v aa=%v ra=%v rd=%v", values(r.Answer), r.Authoritative, r.RecursionAvailable, r.RecursionDesired)
			}
		}},
		{"service AAAA", query("db.cluster.test.", dns.TypeAAAA), "udp", dns.RcodeSuccess, wantValues("AAAA ::1")},
		{"names are case-insensitive and the question keeps its case", query("Db.CLUSTER.test.", dns.TypeAAAA), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if r.Question[0].Name != "Db.CLUSTER.test." || len(r.Answer) != 1 {
				t.Fatalf("got question %q, answers %v", r.Question[0].Name, values(r.Answer))
			}
		}},
		{"SRV with glue", query("_db._tcp.cluster.test.", dns.TypeSRV), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 3 || len(r.Extra) != 3 {
				t.Fatalf("got %d SRV, %d glue: %v / %v", len(r.Answer), len(r.Extra), values(r.Answer), values(r.Extra))
			}
			if got := values(r.Answer[:1])[0]; !strings.HasPrefix(got, "SRV 0 1 3000 db-") {
				t.Fatalf("got %q", got)
			}
		}},
		{"node name", query("db-a.node.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantValues("A 127.0.0.11")},
		{"NXDOMAIN with SOA, negative TTL", query("nope.cluster.test.", dns.TypeA), "udp", dns.RcodeNameError, wantNegative},
		{"NXDOMAIN below an existing name", query("x.db.cluster.test.", dns.TypeA), "udp", dns.RcodeNameError, wantNegative},
		{"NODATA: name exists, type does not", query("db.cluster.test.", dns.TypeMX), "udp", dns.RcodeSuccess, wantNegative},
		{"NODATA for an empty non-terminal", query("node.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantNegative},
		{"NODATA for _tcp", query("_tcp.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantNegative},
		{"outside every zone: REFUSED", query("example.org.", dns.TypeA), "udp", dns.RcodeRefused, func(t *testing.T, r *dns.Msg) {
			if r.Authoritative || len(r.Answer) != 0 {
				t.Fatal("REFUSED answer must not be authoritative or carry records")
			}
		}},
		{"apex SOA", query("cluster.test.", dns.TypeSOA), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			soa, ok := r.Answer[0].(*dns.SOA)
			if !ok || soa.Ns != "ns.cluster.test." || soa.Serial == 0 {
				t.Fatalf("got %v", values(r.Answer))
			}
		}},
		{"apex NS with glue", query("cluster.test.", dns.TypeNS), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || len(r.Extra) != 1 || values(r.Extra)[0] != "A 127.0.0.1" {
				t.Fatalf("got %v / %v", values(r.Answer), values(r.Extra))
			}
		}},
		{"static A", query("www.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantValues("A 192.0.2.1", "A 192.0.2.2")},
		{"CNAME chased inside our zones", query("chain.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			v := values(r.Answer)
			if len(v) != 4 || v[0] != "CNAME alias.cluster.test." || v[1] != "CNAME db.cluster.test." {
				t.Fatalf("got %v", v)
			}
		}},
		{"CNAME to another zone is not chased", query("ext.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantValues("CNAME www.example.org.")},
		{"CNAME asked for itself", query("alias.cluster.test.", dns.TypeCNAME), "udp", dns.RcodeSuccess, wantValues("CNAME db.cluster.test.")},
		{"TXT", query("txt.cluster.test.", dns.TypeTXT), "udp", dns.RcodeSuccess, wantValues(`TXT "hello world"`, `TXT "say \"hi\""`)},
		{"MX with glue", query("cluster.test.", dns.TypeMX), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if v := values(r.Answer); len(v) != 1 || v[0] != "MX 10 www.cluster.test." || len(r.Extra) != 2 {
				t.Fatalf("got %v / %v", v, values(r.Extra))
			}
		}},
		{"static SRV", query("_sip._udp.cluster.test.", dns.TypeSRV), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if v := values(r.Answer); len(v) != 1 || v[0] != "SRV 0 5 5060 www.cluster.test." {
				t.Fatalf("got %v", v)
			}
		}},
		{"ANY is answered minimally (RFC 8482)", query("www.cluster.test.", dns.TypeANY), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) == 0 || len(r.Answer) > 2 {
				t.Fatalf("got %v", values(r.Answer))
			}
		}},
		{"fail_open answers every node when none is healthy", query("down.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantValues("A 127.0.0.21", "A 127.0.0.22")},
		{"when_none_healthy empty is NODATA", query("gone.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, wantNegative},
		{"EDNS: OPT echoed with our size", edns(query("db.cluster.test.", dns.TypeA), 4096, 0), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if o := r.IsEdns0(); o == nil || o.UDPSize() != DefaultMaxUDPSize {
				t.Fatalf("got OPT %v", o)
			}
		}},
		{"EDNS version 1: BADVERS", edns(query("db.cluster.test.", dns.TypeA), 4096, 1), "udp", dns.RcodeBadVers, nil},
		{"no EDNS: 512 bytes, truncated with TC", query("big.cluster.test.", dns.TypeA), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			r.Compress = true // the wire form, as the server packed it
			if !r.Truncated || r.Len() > 512 {
				t.Fatalf("got tc=%v, %d bytes", r.Truncated, r.Len())
			}
		}},
		{"EDNS 4096 fits the big answer", edns(query("big.cluster.test.", dns.TypeA), 4096, 0), "udp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if r.Truncated || len(r.Answer) != 60 {
				t.Fatalf("got tc=%v, %d answers", r.Truncated, len(r.Answer))
			}
		}},
		{"TCP gives the full answer", query("big.cluster.test.", dns.TypeA), "tcp", dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if r.Truncated || len(r.Answer) != 60 {
				t.Fatalf("got tc=%v, %d answers", r.Truncated, len(r.Answer))
			}
		}},
		{"two questions: FORMERR", func() *dns.Msg {
			m := query("db.cluster.test.", dns.TypeA)
			m.Question = append(m.Question, dns.Question{Name: "www.cluster.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
			return m
		}(), "udp", dns.RcodeFormatError, nil},
		{"opcode STATUS: NOTIMP", func() *dns.Msg { m := query("db.cluster.test.", dns.TypeA); m.Opcode = dns.OpcodeStatus; return m }(), "udp", dns.RcodeNotImplemented, nil},
		{"class CHAOS: REFUSED", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(), "udp", dns.RcodeRefused, nil},
		{"AXFR over UDP: NOTIMP (RFC 5936 4.2), as NSD and Knot answer", query("cluster.test.", dns.TypeAXFR), "udp", dns.RcodeNotImplemented, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			network := tc.network
			for _, try := range []string{"first", "cached"} { // the second answer comes from the fast path's cache
				r := f.ask(t, tc.msg.Copy(), network)
				if r.Rcode != tc.rcode {
					t.Fatalf("%s: got rcode %s, want %s", try, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if r.Id != tc.msg.Id {
					t.Fatalf("%s: got ID %d, want %d", try, r.Id, tc.msg.Id)
				}
				if tc.check != nil {
					tc.check(t, r)
				}
			}
		})
	}
}

func wantValues(want ...string) func(t *testing.T, r *dns.Msg) {
	return func(t *testing.T, r *dns.Msg) {
		t.Helper()
		if got := values(r.Answer); strings.Join(got, ",") != strings.Join(want, ",") {
			// Rotation changes order; compare as sets.
			if len(got) != len(want) || !sameSet(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func wantNegative(t *testing.T, r *dns.Msg) {
	t.Helper()
	if len(r.Answer) != 0 || len(r.Ns) != 1 || !r.Authoritative {
		t.Fatalf("got answer %v, authority %v, aa=%v; want no answer and the SOA", values(r.Answer), values(r.Ns), r.Authoritative)
	}
	soa, ok := r.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Ttl != min(soa.Hdr.Ttl, soa.Minttl) || soa.Hdr.Ttl != uint32(DefaultSOAMinimum/time.Second) {
		t.Fatalf("got authority %v; want the SOA with TTL = its minimum %v", values(r.Ns), DefaultSOAMinimum)
	}
}

// Every query for a service gets the next rotation.
func TestRotation(t *testing.T) {
	f := newFixture(t)
	firsts := map[string]bool{}
	for range 6 {
		r := f.ask(t, query("db.cluster.test.", dns.TypeA), "udp")
		firsts[values(r.Answer)[0]] = true
	}
	if len(firsts) != 2 {
		t.Fatalf("got first answers %v over 6 queries, want both nodes in turn", firsts)
	}
}

// A malformed packet gets FORMERR with its ID, never a crash; a response
// is never answered.
func TestMalformedPackets(t *testing.T) {
	f := newFixture(t)
	c, err := net.Dial("udp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name   string
		pkt    []byte
		answer bool
	}{
		{"truncated question", []byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'd', 'b'}, true},
		{"label past the end", []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 60, 'a', 0, 0, 1, 0, 1}, true},
		{"compression loop", []byte{0x11, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, true},
		{"a response", []byte{0x22, 0x22, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 2, 'd', 'b', 0, 0, 1, 0, 1}, false},
		{"shorter than a header", []byte{1, 2, 3}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Write(tc.pkt); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			if !tc.answer {
				if err == nil {
					t.Fatalf("got an answer of %d bytes, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != dns.RcodeFormatError || r.Id != uint16(tc.pkt[0])<<8|uint16(tc.pkt[1]) {
				t.Fatalf("got rcode %s id %d", dns.RcodeToString[r.Rcode], r.Id)
			}
		})
	}
	// Still answering.
	if r := f.ask(t, query("db.cluster.test.", dns.TypeA), "udp"); len(r.Answer) != 2 {
		t.Fatal("server stopped answering after malformed packets")
	}
}

// A store write reaches DNS answers within the snapshot bound.
func TestChangeReachesAnswers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var lags []time.Duration
	for i := range 10 {
		n := api.Node{ID: fmt.Sprintf("new-%d", i), Service: "db", Address: netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 1)}), Source: api.SourceAPI}
		n.SetDefaults()
		t0 := time.Now()
		if _, _, err := f.st.PutNode(ctx, n, 0); err != nil {
			t.Fatal(err)
		}
		for {
			r := f.ask(t, query(n.ID+".node.cluster.test.", dns.TypeA), "udp")
			if r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
				break
			}
			if time.Since(t0) > 5*time.Second {
				t.Fatalf("node %s not in DNS 5s after the write", n.ID)
			}
		}
		lags = append(lags, time.Since(t0))
	}
	t.Logf("store write -> changed DNS answer: %v", lags)
	slices.Sort(lags)
	if median := lags[len(lags)/2]; median > 50*time.Millisecond {
		t.Fatalf("store write -> DNS answer: median %v, want within 50ms", median)
	}
}

// The same conformance points through the real dig, when it is installed.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed: apt-get install bind9-dnsutils (CI installs it)")
	}
	f := newFixture(t)
	host, port, _ := net.SplitHostPort(f.addr)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"db.cluster.test", "A"}, []string{"status: NOERROR", "flags: qr aa rd;", "127.0.0.11", "127.0.0.12"}},
		{[]string{"nope.cluster.test", "A"}, []string{"status: NXDOMAIN", "AUTHORITY: 1", "SOA"}},
		{[]string{"db.cluster.test", "MX"}, []string{"status: NOERROR", "ANSWER: 0", "AUTHORITY: 1"}},
		{[]string{"example.org", "A"}, []string{"status: REFUSED"}},
		{[]string{"_db._tcp.cluster.test", "SRV"}, []string{"ANSWER: 3", "ADDITIONAL: 4", "db-a.node.cluster.test."}},
		{[]string{"chain.cluster.test", "A"}, []string{"CNAME\talias.cluster.test.", "CNAME\tdb.cluster.test."}},
		{[]string{"big.cluster.test", "A", "+noedns", "+ignore"}, []string{"flags: qr aa tc rd;"}},
		{[]string{"big.cluster.test", "A", "+noedns"}, []string{"ANSWER: 60"}}, // dig retries over TCP on TC
		{[]string{"db.cluster.test", "A", "+edns=1", "+noednsneg"}, []string{"status: BADVERS"}},
		{[]string{"DB.Cluster.Test", "A"}, []string{";DB.Cluster.Test.\t", "ANSWER: 2"}},
		{[]string{"cluster.test", "ANY"}, []string{"status: NOERROR", "ANSWER: 1"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"@" + host, "-p", port, "+tries=1", "+time=2"}, tc.args...)
			out, err := exec.Command(dig, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("dig %v: %v\n%s", args, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("dig %v: output lacks %q:\n%s", args, w, out)
				}
			}
		})
	}
}

// The weighted policy draws max_answers nodes by weight, never one twice.
func TestWeightedPolicy(t *testing.T) {
	var rrs []dns.RR
	var ws []int
	for i, w := range []int{1, 1, 8} {
		rrs = append(rrs, addrRR("w.cluster.test.", netip.AddrFrom4([4]byte{127, 0, 4, byte(i + 1)}), 5))
		ws = append(ws, w)
	}
	p := &pool{policy: api.AnswerPolicy{Policy: api.PolicyWeighted, MaxAnswers: 2}, v4: rrs, w4: ws, variant: 16}
	first := map[string]int{}
	for v := range 1000 {
		got := p.addrs(dns.TypeA, v)
		if len(got) != 2 || got[0].String() == got[1].String() {
			t.Fatalf("variant %d: got %v, want 2 different nodes", v, got)
		}
		first[got[0].(*dns.A).A.String()]++
	}
	// The weight-8 node comes first about 8 times in 10.
	if n := first["127.0.4.3"]; n < 700 || n > 900 {
		t.Fatalf("heavy node first in %d of 1000 draws, want about 800 (%v)", n, first)
	}
}

// A weighted service spreads its answers over queries whether or not the
// answer is cached: a query with an EDNS option the cache does not key on
// (dig sends a cookie) gets its own draw, not always the first one.
func TestWeightedSpreadsUncachedQueries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	svc := api.Service{Name: "w", Port: 3000, Check: api.Check{Type: api.CheckNone}, Answers: api.AnswerPolicy{Policy: api.PolicyWeighted, MaxAnswers: 1}, Source: api.SourceAPI}
	svc.SetDefaults()
	if _, err := f.st.PutService(ctx, svc, true); err != nil {
		t.Fatal(err)
	}
	var rev int64
	for i, w := range []int{10, 20} {
		n := api.Node{ID: fmt.Sprintf("w%d", i), Service: "w", Address: netip.AddrFrom4([4]byte{127, 0, 4, byte(i + 1)}), Weight: w, Source: api.SourceAPI}
		n.SetDefaults()
		r, _, err := f.st.PutNode(ctx, n, 0)
		if err != nil {
			t.Fatal(err)
		}
		rev = r
	}
	if _, err := f.w.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	// The DNS table follows the snapshot on its own goroutine.
	for deadline := time.Now().Add(5 * time.Second); len(f.ask(t, query("w.cluster.test.", dns.TypeA), "udp").Answer) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("service w not answered 5s after its nodes were written")
		}
	}
	for _, cookie := range []bool{false, true} {
		seen := map[string]int{}
		for range 40 {
			m := query("w.cluster.test.", dns.TypeA)
			if cookie {
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
			}
			r := f.ask(t, m, "udp")
			if len(r.Answer) != 1 {
				t.Fatalf("cookie %v: got %d answers, want 1", cookie, len(r.Answer))
			}
			seen[r.Answer[0].(*dns.A).A.String()]++
		}
		if len(seen) != 2 {
			t.Errorf("cookie %v: 40 queries were answered only %v, want both nodes", cookie, seen)
		}
	}
}
