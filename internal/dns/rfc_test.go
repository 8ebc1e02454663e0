package dns

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// rfcRecords are the static records of zone example.test that the RFC
// behaviour tests and the differential test serve.
var rfcRecords = []api.Record{
	{Name: "www", Type: "A", Values: []string{"192.0.2.1", "192.0.2.2"}},
	{Name: "www", Type: "AAAA", Values: []string{"2001:db8::1"}},
	{Name: "www", Type: "TXT", Values: []string{"hello"}},
	{Name: "mail", Type: "A", Values: []string{"192.0.2.25"}},
	{Name: "@", Type: "MX", Values: []string{"10 mail"}},
	{Name: "alias", Type: "CNAME", Values: []string{"www"}},
	{Name: "chain", Type: "CNAME", Values: []string{"alias"}},
	{Name: "dangling", Type: "CNAME", Values: []string{"nowhere"}},
	{Name: "ext", Type: "CNAME", Values: []string{"www.example.org."}},
	{Name: "deep.ent.a.b", Type: "A", Values: []string{"192.0.2.3"}},
	// a delegation with glue below the cut and a name server elsewhere
	{Name: "sub", Type: "NS", Values: []string{"ns1.sub", "ns2.example.org."}},
	{Name: "ns1.sub", Type: "A", Values: []string{"192.0.2.53"}},
	{Name: "host.sub", Type: "A", Values: []string{"192.0.2.99"}}, // occluded
	// a delegation to a name server inside the zone, not below the cut
	{Name: "other", Type: "NS", Values: []string{"mail"}},
	// wildcards
	{Name: "*.wild", Type: "A", Values: []string{"192.0.2.7"}},
	{Name: "*.wild", Type: "TXT", Values: []string{"wild"}},
	{Name: "exists.wild", Type: "TXT", Values: []string{"exists"}},
	{Name: "*.wcname", Type: "CNAME", Values: []string{"www"}},
	{Name: "*.ent2", Type: "A", Values: []string{"192.0.2.8"}},
	{Name: "x.y.ent2", Type: "A", Values: []string{"192.0.2.9"}}, // y.ent2 is an ENT: blocks the wildcard
	{Name: "_sip._udp", Type: "SRV", Values: []string{"0 5 5060 www"}},
	// CNAMEs into a delegation, to a wildcard, in a loop
	{Name: "cn2sub", Type: "CNAME", Values: []string{"host.sub"}},
	{Name: "cn2wild", Type: "CNAME", Values: []string{"foo.wild"}},
	{Name: "loop1", Type: "CNAME", Values: []string{"loop2"}},
	{Name: "loop2", Type: "CNAME", Values: []string{"loop1"}},
	{Name: "mx2sub", Type: "MX", Values: []string{"10 host.sub"}},
}

const rfcZone = "example.test."

// rfcSnapshot is rfcRecords in zone example.test plus service svc with n
// healthy nodes (_svc._tcp SRV).
func rfcSnapshot(t testing.TB, nodes int) *registry.Snapshot {
	t.Helper()
	items := []store.Item{{Key: store.ZoneKey(rfcZone), Value: &api.Zone{Name: rfcZone}}}
	for _, r := range rfcRecords {
		r.Name = absRecordName(r.Name)
		r.SetDefaults()
		if err := r.Validate().Err(); err != nil {
			t.Fatalf("record %v: %v", r, err)
		}
		rr := r
		items = append(items, store.Item{Key: store.RecordKey(rfcZone, r.Name, r.Type), Value: &rr})
	}
	svc := &api.Service{Name: "svc", Port: 3000, Check: api.Check{Type: api.CheckNone}, Answers: api.AnswerPolicy{MaxAnswers: 64}}
	svc.SetDefaults()
	items = append(items, store.Item{Key: store.ServiceKey("svc"), Value: svc})
	for i := range nodes {
		id := fmt.Sprintf("node-%02d", i)
		n := &api.Node{ID: id, Service: "svc", Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}
		n.SetDefaults()
		items = append(items, store.Item{Key: store.NodeKey("svc", id), Value: n})
	}
	return registry.Build(items, 42)
}

func absRecordName(n string) string {
	if n == "@" {
		return rfcZone
	}
	return n + "." + rfcZone
}

func rfcTable(t testing.TB, nodes int) *table {
	tb := buildTable(rfcSnapshot(t, nodes), netip.MustParseAddr("127.0.45.1"), nil)
	return tb
}

func ednsQuery(name string, qtype uint16, size uint16) *dns.Msg {
	m := query(name, qtype)
	m.SetEdns0(size, false)
	return m
}

func TestRFCAnswers(t *testing.T) {
	tb := rfcTable(t, 3)
	type want struct {
		rcode       int
		aa, tc      bool
		answer, ns  []string // "name type" pairs
		extra       []string
		answerCount int // -1: do not check
	}
	rrs := func(rs []dns.RR) []string {
		var out []string
		for _, r := range rs {
			if r.Header().Rrtype == dns.TypeOPT {
				continue
			}
			out = append(out, strings.ToLower(r.Header().Name)+" "+dns.TypeToString[r.Header().Rrtype])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    *dns.Msg
		want want
	}{
		{"referral below a cut", query("host.sub.example.test.", dns.TypeA), want{rcode: 0, ns: []string{"sub.example.test. NS", "sub.example.test. NS"}, extra: []string{"ns1.sub.example.test. A"}}},
		{"referral at the cut for NS", query("sub.example.test.", dns.TypeNS), want{rcode: 0, ns: []string{"sub.example.test. NS", "sub.example.test. NS"}, extra: []string{"ns1.sub.example.test. A"}}},
		{"referral for the glue name", query("ns1.sub.example.test.", dns.TypeA), want{rcode: 0, ns: []string{"sub.example.test. NS", "sub.example.test. NS"}, extra: []string{"ns1.sub.example.test. A"}}},
		{"DS at the cut is the parent's", query("sub.example.test.", dns.TypeDS), want{rcode: 0, aa: true, ns: []string{"example.test. SOA"}}},
		{"referral to an in-zone server", query("a.other.example.test.", dns.TypeA), want{rcode: 0, ns: []string{"other.example.test. NS"}, extra: []string{"mail.example.test. A"}}},
		{"wildcard synthesis", query("x.wild.example.test.", dns.TypeA), want{rcode: 0, aa: true, answer: []string{"x.wild.example.test. A"}}},
		{"wildcard, deeper", query("a.b.wild.example.test.", dns.TypeTXT), want{rcode: 0, aa: true, answer: []string{"a.b.wild.example.test. TXT"}}},
		{"NODATA at a wildcard", query("x.wild.example.test.", dns.TypeMX), want{rcode: 0, aa: true, ns: []string{"example.test. SOA"}}},
		{"existing name beats the wildcard", query("exists.wild.example.test.", dns.TypeA), want{rcode: 0, aa: true, ns: []string{"example.test. SOA"}}},
		{"below an existing name no wildcard", query("a.exists.wild.example.test.", dns.TypeA), want{rcode: 3, aa: true, ns: []string{"example.test. SOA"}}},
		{"wildcard CNAME chased", query("q.wcname.example.test.", dns.TypeA), want{rcode: 0, aa: true, answer: []string{"q.wcname.example.test. CNAME", "www.example.test. A", "www.example.test. A"}}},
		{"ENT blocks the wildcard", query("z.y.ent2.example.test.", dns.TypeA), want{rcode: 3, aa: true, ns: []string{"example.test. SOA"}}},
		{"ENT itself is NODATA", query("y.ent2.example.test.", dns.TypeA), want{rcode: 0, aa: true, ns: []string{"example.test. SOA"}}},
		{"ANY at a CNAME owner", query("alias.example.test.", dns.TypeANY), want{rcode: 0, aa: true, answer: []string{"alias.example.test. CNAME"}}},
		{"ANY at a dangling CNAME", query("dangling.example.test.", dns.TypeANY), want{rcode: 0, aa: true, answer: []string{"dangling.example.test. CNAME"}}},
		{"dangling CNAME for A", query("dangling.example.test.", dns.TypeA), want{rcode: 3, aa: true, answer: []string{"dangling.example.test. CNAME"}, ns: []string{"example.test. SOA"}}},
		{"CNAME chain", query("chain.example.test.", dns.TypeA), want{rcode: 0, aa: true, answer: []string{"chain.example.test. CNAME", "alias.example.test. CNAME", "www.example.test. A", "www.example.test. A"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := tb.answer(tc.q, 0, false)
			if r.Rcode != tc.want.rcode || r.Authoritative != tc.want.aa || r.Truncated != tc.want.tc {
				t.Fatalf("got rcode %d aa %v tc %v, want rcode %d aa %v tc %v\n%v", r.Rcode, r.Authoritative, r.Truncated, tc.want.rcode, tc.want.aa, tc.want.tc, r)
			}
			for _, s := range []struct {
				name      string
				got, want []string
			}{{"answer", rrs(r.Answer), tc.want.answer}, {"authority", rrs(r.Ns), tc.want.ns}, {"additional", rrs(r.Extra), tc.want.extra}} {
				if strings.Join(s.got, ",") != strings.Join(s.want, ",") {
					t.Errorf("%s: got %v, want %v\n%v", s.name, s.got, s.want, r)
				}
			}
		})
	}
}

func TestSeveralOPTIsFormErr(t *testing.T) {
	tb := rfcTable(t, 1)
	m := ednsQuery("www.example.test.", dns.TypeA, 1232)
	m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 4096}})
	r, _ := tb.answer(m, 0, false)
	if r.Rcode != dns.RcodeFormatError {
		t.Fatalf("got rcode %s, want FORMERR", dns.RcodeToString[r.Rcode])
	}
}

// TestTruncation: TC only when the answer does not fit; additional records
// are dropped first (RFC 2181 9), and UDP answers never exceed the cap.
func TestTruncation(t *testing.T) {
	for _, tc := range []struct {
		nodes    int
		size     uint16 // 0: no EDNS
		wantTC   bool
		wantGlue bool // every additional present
	}{
		// An SRV's target is never compressed (RFC 2782): 45 bytes each here,
		// so 10 fit in 512 bytes and 24 in 1232, without their glue.
		{10, 0, false, false}, {12, 0, true, false}, {12, 1232, false, true}, {24, 1232, false, false},
		{24, 4096, false, false}, {60, 1232, true, false},
	} {
		t.Run(fmt.Sprintf("%d nodes at %d", tc.nodes, tc.size), func(t *testing.T) {
			tb := rfcTable(t, tc.nodes)
			q := query("_svc._tcp.example.test.", dns.TypeSRV)
			if tc.size > 0 {
				q = ednsQuery("_svc._tcp.example.test.", dns.TypeSRV, tc.size)
			}
			r, _ := tb.answer(q, 0, false)
			b, _ := r.Pack()
			limit := 512
			if tc.size > 0 {
				limit = min(int(tc.size), DefaultMaxUDPSize)
			}
			if len(b) > limit {
				t.Fatalf("answer is %d bytes, over %d", len(b), limit)
			}
			if r.Truncated != tc.wantTC {
				t.Fatalf("got TC %v, want %v (%d bytes)", r.Truncated, tc.wantTC, len(b))
			}
			if !tc.wantTC && len(r.Answer) != tc.nodes {
				t.Fatalf("got %d SRV, want all %d", len(r.Answer), tc.nodes)
			}
			extras := len(r.Extra)
			if tc.size > 0 {
				extras-- // the OPT
			}
			if tc.wantGlue && extras != tc.nodes {
				t.Fatalf("got %d glue records, want %d", extras, tc.nodes)
			}
		})
	}
}

// TestUDPCap: a query asking for 65535 bytes gets at most the server's cap.
func TestUDPCap(t *testing.T) {
	for _, cap := range []int{0, 512, 1232, 4000} {
		t.Run(fmt.Sprint(cap), func(t *testing.T) {
			tb := rfcTable(t, 200)
			tb.maxUDP = cap
			want := cap
			if cap == 0 {
				want = DefaultMaxUDPSize
			}
			for _, qt := range []uint16{dns.TypeSRV, dns.TypeA} {
				name := "_svc._tcp.example.test."
				if qt == dns.TypeA {
					name = "svc.example.test."
				}
				r, _ := tb.answer(ednsQuery(name, qt, 65535), 0, false)
				b, _ := r.Pack()
				if len(b) > want {
					t.Fatalf("%s: answer is %d bytes, over the cap %d", dns.TypeToString[qt], len(b), want)
				}
				if o := r.IsEdns0(); o == nil || int(o.UDPSize()) != want {
					t.Fatalf("advertised %v, want %d", o, want)
				}
			}
		})
	}
}

// TestOPTOnEveryReply: every reply to an EDNS query carries an OPT: UPDATE
// answers, refused transfers, and every message of a transfer.
func TestOPTOnEveryReply(t *testing.T) {
	snaps := fixedSnapshots{rfcSnapshot(t, 60)}
	ring, err := NewKeyring([]TSIGKey{{Name: "update-key", Algorithm: "hmac-sha256", Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPrimary(PrimaryOptions{Store: &blockingStore{}, Snapshots: snaps, Keys: ring,
		AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.45.0/24")}})
	s := startServer(t, Options{Addr: "127.0.45.20:0", Snapshots: snaps, Handler: p, TSIG: ring})
	withEDNS := func(m *dns.Msg) *dns.Msg { m.SetEdns0(1232, true); return m }
	axfr := func() *dns.Msg { m := new(dns.Msg); m.SetAxfr(rfcZone); return m }
	ixfr := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetIxfr(rfcZone, 1, "ns.example.test.", "hostmaster.example.test.")
		return m
	}
	update := func() *dns.Msg {
		m := updateMsg(rfcZone)
		m.Insert([]dns.RR{mustRR(t, "x.example.test. 60 IN A 192.0.2.1")})
		return m
	}
	for _, tc := range []struct {
		name, src, network string
		m                  *dns.Msg
		rcode              int
	}{
		{"unsigned UPDATE", "127.0.0.1", "udp", withEDNS(update()), dns.RcodeRefused},
		{"AXFR over UDP", "127.0.0.1", "udp", withEDNS(axfr()), dns.RcodeNotImplemented},
		{"AXFR refused", "127.0.0.1", "tcp", withEDNS(axfr()), dns.RcodeRefused},
		{"IXFR refused", "127.0.0.1", "tcp", withEDNS(ixfr()), dns.RcodeRefused},
		{"NOTIFY", "127.0.0.1", "udp", withEDNS(func() *dns.Msg { m := query(rfcZone, dns.TypeSOA); m.Opcode = dns.OpcodeNotify; return m }()), dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &dns.Client{Net: tc.network, Timeout: 3 * time.Second}
			r, _, err := c.Exchange(tc.m, s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode || r.IsEdns0() == nil || !r.IsEdns0().Do() {
				t.Fatalf("got %s with OPT %v, want %s with an OPT (DO echoed)", dns.RcodeToString[r.Rcode], r.IsEdns0(), dns.RcodeToString[tc.rcode])
			}
		})
	}
	t.Run("every message of an AXFR", func(t *testing.T) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.45.21")}}
		nc, err := d.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Skipf("cannot use 127.0.45.21: %v", err)
		}
		c := &dns.Conn{Conn: nc}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMsg(withEDNS(axfr())); err != nil {
			t.Fatal(err)
		}
		soas, msgs := 0, 0
		for soas < 2 {
			r, err := c.ReadMsg()
			if err != nil {
				t.Fatalf("after %d messages: %v", msgs, err)
			}
			msgs++
			if r.Rcode != dns.RcodeSuccess || r.IsEdns0() == nil {
				t.Fatalf("message %d: %s, OPT %v; want NOERROR with an OPT", msgs, dns.RcodeToString[r.Rcode], r.IsEdns0())
			}
			for _, rr := range r.Answer {
				if rr.Header().Rrtype == dns.TypeSOA {
					soas++
				}
			}
		}
		t.Logf("%d messages, each with an OPT", msgs)
	})
}

// TestUDPCapOnTheWire: a query asking for 65 535 bytes gets at most the
// configured cap over UDP (and the whole answer over TCP).
func TestUDPCapOnTheWire(t *testing.T) {
	s := startServer(t, Options{Snapshots: fixedSnapshots{rfcSnapshot(t, 200)}, MaxUDPSize: 1000})
	for _, name := range []string{"_svc._tcp.example.test.", "svc.example.test."} {
		qt := dns.TypeSRV
		if name == "svc.example.test." {
			qt = dns.TypeA
		}
		c, err := net.Dial("udp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ednsQuery(name, qt, 65535).Pack()
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n > 1000 {
			t.Fatalf("%s: a %d-byte UDP answer, over the 1000-byte cap", name, n)
		}
		r, _, err := (&dns.Client{Net: "tcp"}).Exchange(ednsQuery(name, qt, 65535), s.Addr().String())
		if err != nil || r.Truncated || len(r.Answer) < 64 {
			t.Fatalf("%s over TCP: %v, %d answers, TC %v; want the whole answer", name, err, len(r.Answer), r != nil && r.Truncated)
		}
		t.Logf("%s: %d bytes over UDP, %d records over TCP", name, n, len(r.Answer))
	}
}
