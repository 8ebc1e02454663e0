package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Test keys: base64 of fixed bytes, so a failure can be replayed.
const (
	testKey       = "update-key."
	testSecret    = "c2VhbWFyay10ZXN0LXRzaWcta2V5LTMyLWJ5dGVzLSE=" // hmac-sha256
	otherKey      = "other-key."
	otherSecret   = "b3RoZXIta2V5LWZvci1zZWFtYXJrLXRlc3RzLXNoYTUxMi1rZXktYnl0ZXMhIQ==" // hmac-sha512
	wrongSecret   = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0="
	clientTimeout = 3 * time.Second
)

// primaryFixture is the fixture's data served by a second Server that has a
// Primary: signed updates, transfers, NOTIFY to secondaries.
type primaryFixture struct {
	*fixture
	p    *Primary
	ring *Keyring
	addr string // the Primary's server, UDP and TCP
}

func newPrimaryFixture(t testing.TB, o PrimaryOptions) *primaryFixture {
	t.Helper()
	f := newFixture(t)
	ring, err := NewKeyring([]TSIGKey{
		{Name: "update-key", Algorithm: "hmac-sha256", Secret: testSecret},
		{Name: "Other-Key.", Algorithm: "hmac-sha512", Secret: otherSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Store, o.Snapshots, o.Keys = f.st, f.w, ring
	p := NewPrimary(o)
	srv := New(Options{Addr: "127.0.0.1:0", Snapshots: f.w, Handler: p, TSIG: ring, Sockets: 2})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { srv.Serve(ctx); done <- struct{}{} }()
	go func() { p.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return &primaryFixture{fixture: f, p: p, ring: ring, addr: srv.Addr().String()}
}

// exchange sends m to the Primary's server, signed with key (secret) when
// key is not empty. The error is the client's verdict on the answer's
// signature.
func (f *primaryFixture) exchange(t testing.TB, m *dns.Msg, network, key, secret string) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: clientTimeout}
	if key != "" {
		alg := dns.HmacSHA256
		if key == otherKey {
			alg = dns.HmacSHA512
		}
		c.TsigSecret = map[string]string{key: secret}
		m.SetTsig(key, alg, 300, time.Now().Unix())
	}
	r, _, err := c.Exchange(m, f.addr)
	if r == nil {
		t.Fatalf("exchange: no answer: %v", err)
	}
	return r, err
}

// lookup is the answer values of name/type from the Primary's server.
func (f *primaryFixture) lookup(t testing.TB, name string, qtype uint16) []string {
	t.Helper()
	r, _ := f.exchange(t, query(name, qtype), "tcp", "", "")
	if r.Rcode == dns.RcodeNameError {
		return []string{"NXDOMAIN"}
	}
	v := values(r.Answer)
	if len(v) == 0 && !r.Authoritative && qtype == dns.TypeNS {
		v = values(r.Ns) // a delegation: the NS set comes as a referral
	}
	slices.Sort(v)
	return v
}

// eventually retries check for up to two seconds: the server swaps its table
// a moment after the update is acknowledged.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantLookup(f *primaryFixture, t testing.TB, name string, qtype uint16, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, name+" "+dns.TypeToString[qtype], func() error {
		if got := f.lookup(t, name, qtype); !slices.Equal(got, want) {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	})
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func updateMsg(zone string) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	return m
}

// Prerequisites and every update form, signed, over UDP and TCP, checked
// against the answers that follow. The cases run in order on one zone.
func TestUpdate(t *testing.T) {
	f := newPrimaryFixture(t, PrimaryOptions{})
	const z = "cluster.test."
	type step struct {
		name    string
		msg     func() *dns.Msg
		network string
		key     string
		secret  string
		rcode   int
		check   func(t *testing.T)
	}
	signed := func(name string, rcode int, msg func() *dns.Msg, check func(t *testing.T)) step {
		return step{name: name, msg: msg, network: "udp", key: testKey, secret: testSecret, rcode: rcode, check: check}
	}
	steps := []step{
		{name: "unsigned: REFUSED, nothing changes", network: "udp", rcode: dns.RcodeRefused, msg: func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "new.cluster.test. 60 IN A 192.0.2.10")})
			return m
		}, check: func(t *testing.T) { wantLookup(f, t, "new.cluster.test.", dns.TypeA, "NXDOMAIN") }},
		signed("add A", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "new.cluster.test. 60 IN A 192.0.2.10")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "new.cluster.test.", dns.TypeA, "A 192.0.2.10") }),
		{name: "add a second A over TCP, signed with the sha512 key", network: "tcp", key: otherKey, secret: otherSecret, rcode: dns.RcodeSuccess, msg: func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "NEW.cluster.test. 30 IN A 192.0.2.11"), mustRR(t, "new.cluster.test. 30 IN A 192.0.2.10")})
			return m
		}, check: func(t *testing.T) { wantLookup(f, t, "new.cluster.test.", dns.TypeA, "A 192.0.2.10", "A 192.0.2.11") }},
		signed("add every static type", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{
				mustRR(t, `new.cluster.test. 60 IN TXT "v=1" "say \"hi\""`),
				mustRR(t, "new.cluster.test. 60 IN AAAA 2001:db8::10"),
				mustRR(t, "new.cluster.test. 60 IN MX 5 www.cluster.test."),
				mustRR(t, "_x._tcp.new.cluster.test. 60 IN SRV 1 2 3 www.cluster.test."),
				mustRR(t, "sub.new.cluster.test. 60 IN NS ns1.example.org."),
				mustRR(t, "cn.cluster.test. 60 IN CNAME www.cluster.test."),
			})
			return m
		}, func(t *testing.T) {
			wantLookup(f, t, "new.cluster.test.", dns.TypeTXT, `TXT "v=1say \"hi\""`)
			wantLookup(f, t, "new.cluster.test.", dns.TypeAAAA, "AAAA 2001:db8::10")
			wantLookup(f, t, "new.cluster.test.", dns.TypeMX, "MX 5 www.cluster.test.")
			wantLookup(f, t, "_x._tcp.new.cluster.test.", dns.TypeSRV, "SRV 1 2 3 www.cluster.test.")
			wantLookup(f, t, "sub.new.cluster.test.", dns.TypeNS, "NS ns1.example.org.")
			wantLookup(f, t, "cn.cluster.test.", dns.TypeCNAME, "CNAME www.cluster.test.")
		}),
		signed("prerequisite: name in use holds", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.NameUsed([]dns.RR{mustRR(t, "new.cluster.test. 0 IN A 0.0.0.0")})
			m.Insert([]dns.RR{mustRR(t, "p1.cluster.test. 60 IN A 192.0.2.21")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p1.cluster.test.", dns.TypeA, "A 192.0.2.21") }),
		signed("prerequisite: name in use fails: NXDOMAIN", dns.RcodeNameError, func() *dns.Msg {
			m := updateMsg(z)
			m.NameUsed([]dns.RR{mustRR(t, "absent.cluster.test. 0 IN A 0.0.0.0")})
			m.Insert([]dns.RR{mustRR(t, "p2.cluster.test. 60 IN A 192.0.2.22")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p2.cluster.test.", dns.TypeA, "NXDOMAIN") }),
		signed("prerequisite: an empty non-terminal is not in use", dns.RcodeNameError, func() *dns.Msg {
			m := updateMsg(z)
			m.NameUsed([]dns.RR{mustRR(t, "_tcp.new.cluster.test. 0 IN A 0.0.0.0")})
			return m
		}, nil),
		signed("prerequisite: name not in use fails: YXDOMAIN", dns.RcodeYXDomain, func() *dns.Msg {
			m := updateMsg(z)
			m.NameNotUsed([]dns.RR{mustRR(t, "db.cluster.test. 0 IN A 0.0.0.0")})
			m.Insert([]dns.RR{mustRR(t, "p2.cluster.test. 60 IN A 192.0.2.22")})
			return m
		}, nil),
		signed("prerequisite: RRset exists (a service's pool) holds", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.RRsetUsed([]dns.RR{mustRR(t, "db.cluster.test. 0 IN A 0.0.0.0")})
			m.NameNotUsed([]dns.RR{mustRR(t, "p2.cluster.test. 0 IN A 0.0.0.0")})
			m.Insert([]dns.RR{mustRR(t, "p2.cluster.test. 60 IN A 192.0.2.22")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p2.cluster.test.", dns.TypeA, "A 192.0.2.22") }),
		signed("prerequisite: RRset exists fails: NXRRSET", dns.RcodeNXRrset, func() *dns.Msg {
			m := updateMsg(z)
			m.RRsetUsed([]dns.RR{mustRR(t, "www.cluster.test. 0 IN MX 0 .")})
			return m
		}, nil),
		signed("prerequisite: RRset does not exist fails: YXRRSET", dns.RcodeYXRrset, func() *dns.Msg {
			m := updateMsg(z)
			m.RRsetNotUsed([]dns.RR{mustRR(t, "www.cluster.test. 0 IN A 0.0.0.0")})
			return m
		}, nil),
		signed("prerequisite: value-dependent, the whole set, holds", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Used([]dns.RR{mustRR(t, "www.cluster.test. 0 IN A 192.0.2.2"), mustRR(t, "WWW.cluster.test. 0 IN A 192.0.2.1")})
			m.Used([]dns.RR{mustRR(t, "db.cluster.test. 0 IN A 127.0.0.11"), mustRR(t, "db.cluster.test. 0 IN A 127.0.0.12")})
			m.Insert([]dns.RR{mustRR(t, "p3.cluster.test. 60 IN A 192.0.2.23")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p3.cluster.test.", dns.TypeA, "A 192.0.2.23") }),
		signed("prerequisite: value-dependent, part of the set: NXRRSET", dns.RcodeNXRrset, func() *dns.Msg {
			m := updateMsg(z)
			m.Used([]dns.RR{mustRR(t, "www.cluster.test. 0 IN A 192.0.2.1")})
			m.Insert([]dns.RR{mustRR(t, "p4.cluster.test. 60 IN A 192.0.2.24")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p4.cluster.test.", dns.TypeA, "NXDOMAIN") }),
		signed("prerequisite with a TTL: FORMERR", dns.RcodeFormatError, func() *dns.Msg {
			m := updateMsg(z)
			m.Answer = append(m.Answer, &dns.ANY{Hdr: dns.RR_Header{Name: "www.cluster.test.", Rrtype: dns.TypeANY, Class: dns.ClassANY, Ttl: 5}})
			return m
		}, nil),
		signed("prerequisite outside the zone: NOTZONE", dns.RcodeNotZone, func() *dns.Msg {
			m := updateMsg(z)
			m.NameUsed([]dns.RR{mustRR(t, "www.example.org. 0 IN A 0.0.0.0")})
			return m
		}, nil),
		signed("delete one RR", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Remove([]dns.RR{mustRR(t, "new.cluster.test. 0 IN A 192.0.2.10")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "new.cluster.test.", dns.TypeA, "A 192.0.2.11") }),
		signed("delete an RRset", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveRRset([]dns.RR{mustRR(t, "new.cluster.test. 0 IN TXT \"\"")})
			return m
		}, func(t *testing.T) {
			wantLookup(f, t, "new.cluster.test.", dns.TypeTXT)
			wantLookup(f, t, "new.cluster.test.", dns.TypeAAAA, "AAAA 2001:db8::10")
		}),
		signed("delete every RRset of a name", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveName([]dns.RR{mustRR(t, "new.cluster.test. 0 IN A 0.0.0.0")})
			return m
		}, func(t *testing.T) {
			wantLookup(f, t, "new.cluster.test.", dns.TypeA) // NODATA: _x._tcp.new still exists below it
			wantLookup(f, t, "new.cluster.test.", dns.TypeMX)
		}),
		signed("delete and add in one message is atomic", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveRRset([]dns.RR{mustRR(t, "www.cluster.test. 0 IN A 0.0.0.0")})
			m.Insert([]dns.RR{mustRR(t, "www.cluster.test. 60 IN A 192.0.2.99")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "www.cluster.test.", dns.TypeA, "A 192.0.2.99") }),
		signed("a CNAME beside other data is ignored", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "www.cluster.test. 60 IN CNAME db.cluster.test.")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "www.cluster.test.", dns.TypeCNAME) }),
		signed("a CNAME replaces a CNAME", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "cn.cluster.test. 60 IN CNAME db.cluster.test.")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "cn.cluster.test.", dns.TypeCNAME, "CNAME db.cluster.test.") }),
		signed("deleting the apex SOA and NS is ignored", dns.RcodeSuccess, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveRRset([]dns.RR{mustRR(t, "cluster.test. 0 IN SOA . . 0 0 0 0 0"), mustRR(t, "cluster.test. 0 IN NS .")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "cluster.test.", dns.TypeNS, "NS ns.cluster.test.") }),
		signed("a service name: REFUSED", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "db.cluster.test. 60 IN A 192.0.2.66")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "db.cluster.test.", dns.TypeAAAA, "AAAA ::1") }),
		signed("a node name: REFUSED", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveName([]dns.RR{mustRR(t, "db-a.node.cluster.test. 0 IN A 0.0.0.0")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "db-a.node.cluster.test.", dns.TypeA, "A 127.0.0.11") }),
		signed("a service's SRV name: REFUSED", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.RemoveRRset([]dns.RR{mustRR(t, "_db._tcp.cluster.test. 0 IN SRV 0 0 0 .")})
			return m
		}, nil),
		signed("a type static records cannot have: REFUSED", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "p5.cluster.test. 60 IN PTR www.cluster.test.")})
			return m
		}, nil),
		signed("adding the apex NS: REFUSED", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "cluster.test. 60 IN NS ns2.example.org.")})
			return m
		}, nil),
		signed("one bad RR refuses the whole message", dns.RcodeRefused, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "p6.cluster.test. 60 IN A 192.0.2.26"), mustRR(t, "db.cluster.test. 60 IN A 192.0.2.66")})
			return m
		}, func(t *testing.T) { wantLookup(f, t, "p6.cluster.test.", dns.TypeA, "NXDOMAIN") }),
		signed("an update RR outside the zone: NOTZONE", dns.RcodeNotZone, func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "www.example.org. 60 IN A 192.0.2.1")})
			return m
		}, nil),
		signed("add with class ANY and data: FORMERR", dns.RcodeFormatError, func() *dns.Msg {
			m := updateMsg(z)
			a := mustRR(t, "p7.cluster.test. 0 IN A 192.0.2.27")
			a.Header().Class = dns.ClassANY
			m.Ns = append(m.Ns, a)
			return m
		}, nil),
		signed("a zone not served: NOTAUTH", dns.RcodeNotAuth, func() *dns.Msg {
			m := updateMsg("example.org.")
			m.Insert([]dns.RR{mustRR(t, "www.example.org. 60 IN A 192.0.2.1")})
			return m
		}, nil),
		signed("two zones: FORMERR", dns.RcodeFormatError, func() *dns.Msg {
			m := updateMsg(z)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, nil),
		{name: "wrong secret: NOTAUTH/BADSIG, nothing changes", network: "udp", key: testKey, secret: wrongSecret, rcode: dns.RcodeNotAuth, msg: func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "bad.cluster.test. 60 IN A 192.0.2.31")})
			return m
		}, check: func(t *testing.T) { wantLookup(f, t, "bad.cluster.test.", dns.TypeA, "NXDOMAIN") }},
		{name: "wrong secret over TCP: NOTAUTH", network: "tcp", key: testKey, secret: wrongSecret, rcode: dns.RcodeNotAuth, msg: func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "bad.cluster.test. 60 IN A 192.0.2.31")})
			return m
		}, check: func(t *testing.T) { wantLookup(f, t, "bad.cluster.test.", dns.TypeA, "NXDOMAIN") }},
		{name: "unknown key: NOTAUTH/BADKEY", network: "udp", key: "nobody.", secret: testSecret, rcode: dns.RcodeNotAuth, msg: func() *dns.Msg {
			m := updateMsg(z)
			m.Insert([]dns.RR{mustRR(t, "bad.cluster.test. 60 IN A 192.0.2.31")})
			return m
		}, check: func(t *testing.T) { wantLookup(f, t, "bad.cluster.test.", dns.TypeA, "NXDOMAIN") }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			m := s.msg()
			r, err := f.exchange(t, m, s.network, s.key, s.secret)
			if r.Rcode != s.rcode {
				t.Fatalf("got rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[s.rcode])
			}
			if r.Id != m.Id || r.Opcode != dns.OpcodeUpdate || !r.Response {
				t.Fatalf("got id %d opcode %d qr %v, want the request's id %d, UPDATE, a response", r.Id, r.Opcode, r.Response, m.Id)
			}
			switch {
			case s.key != "" && s.secret == wrongSecret || s.key == "nobody.":
				tr := r.IsTsig()
				want := uint16(dns.RcodeBadSig)
				if s.key == "nobody." {
					want = dns.RcodeBadKey
				}
				if tr == nil || tr.Error != want || tr.MAC != "" {
					t.Fatalf("got TSIG %v, want an unsigned TSIG with error %s", tr, dns.RcodeToString[int(want)])
				}
			case s.key != "" && r.Rcode == dns.RcodeNotAuth:
				// miekg's client does not verify a NOTAUTH answer; it is
				// signed all the same.
				if r.IsTsig() == nil || r.IsTsig().MAC == "" {
					t.Fatal("answer not signed")
				}
			case s.key != "":
				if r.IsTsig() == nil || err != nil {
					t.Fatalf("answer not signed, or its signature does not verify: %v", err)
				}
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}
}

// A secondary asking with a stale time gets BADTIME, signed (RFC 8945 5.2.3).
func TestUpdateBadTime(t *testing.T) {
	f := newPrimaryFixture(t, PrimaryOptions{})
	m := updateMsg("cluster.test.")
	m.Insert([]dns.RR{mustRR(t, "late.cluster.test. 60 IN A 192.0.2.40")})
	m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Add(-time.Hour).Unix())
	c := &dns.Client{Net: "udp", Timeout: clientTimeout, TsigSecret: map[string]string{testKey: testSecret}}
	r, _, _ := c.Exchange(m, f.addr)
	if r == nil || r.Rcode != dns.RcodeNotAuth || r.IsTsig() == nil || r.IsTsig().Error != dns.RcodeBadTime || r.IsTsig().MAC == "" {
		t.Fatalf("got %v, want NOTAUTH with a signed TSIG, error BADTIME", r)
	}
	wantLookup(f, t, "late.cluster.test.", dns.TypeA, "NXDOMAIN")
}

// A signed plain query is answered and the answer signed (a secondary's SOA
// check before a transfer is one).
func TestSignedQuery(t *testing.T) {
	f := newPrimaryFixture(t, PrimaryOptions{})
	for _, network := range []string{"udp", "tcp"} {
		m := query("cluster.test.", dns.TypeSOA)
		m.SetEdns0(1232, false)
		r, err := f.exchange(t, m, network, testKey, testSecret)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.IsTsig() == nil {
			t.Fatalf("%s: got %v (%v), want the SOA, signed", network, r, err)
		}
	}
}

// The real nsupdate, with a key file: add, see, delete; a wrong key and no
// key change nothing.
func TestNsupdate(t *testing.T) {
	nsupdate, err := exec.LookPath("nsupdate")
	if err != nil {
		t.Skip("nsupdate not installed: apt-get install bind9-dnsutils (CI installs it)")
	}
	f := newPrimaryFixture(t, PrimaryOptions{})
	host, port, _ := net.SplitHostPort(f.addr)
	dir := t.TempDir()
	keyFile := func(name, secret string) string {
		p := filepath.Join(dir, name+".key")
		conf := fmt.Sprintf("key %q {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", strings.TrimSuffix(testKey, "."), secret)
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, bad := keyFile("good", testSecret), keyFile("bad", wrongSecret)
	run := func(t *testing.T, script string, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, nsupdate, append([]string{"-t", "3", "-u", "1", "-r", "1"}, args...)...)
		cmd.Stdin = strings.NewReader(fmt.Sprintf("server %s %s\nzone cluster.test\n%ssend\n", host, port, script))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Run("add, then seen", func(t *testing.T) {
		if out, err := run(t, "update add added.cluster.test 60 A 192.0.2.77\nupdate add added.cluster.test 60 TXT \"from nsupdate\"\n", "-k", good); err != nil {
			t.Fatalf("nsupdate: %v\n%s", err, out)
		}
		wantLookup(f, t, "added.cluster.test.", dns.TypeA, "A 192.0.2.77")
		wantLookup(f, t, "added.cluster.test.", dns.TypeTXT, `TXT "from nsupdate"`)
	})
	t.Run("wrong key: NOTAUTH, nothing changes", func(t *testing.T) {
		out, err := run(t, "update add wrong.cluster.test 60 A 192.0.2.78\n", "-k", bad)
		if err == nil || !strings.Contains(out, "NOTAUTH") {
			t.Fatalf("nsupdate with a wrong key: got %v\n%s\nwant a failure naming NOTAUTH", err, out)
		}
		wantLookup(f, t, "wrong.cluster.test.", dns.TypeA, "NXDOMAIN")
	})
	t.Run("no key: REFUSED, nothing changes", func(t *testing.T) {
		out, err := run(t, "update delete added.cluster.test A\n")
		if err == nil || !strings.Contains(out, "REFUSED") {
			t.Fatalf("nsupdate without a key: got %v\n%s\nwant a failure naming REFUSED", err, out)
		}
		wantLookup(f, t, "added.cluster.test.", dns.TypeA, "A 192.0.2.77")
	})
	t.Run("delete over TCP, then gone", func(t *testing.T) {
		if out, err := run(t, "update delete added.cluster.test A\nupdate delete added.cluster.test TXT\n", "-v", "-k", good); err != nil {
			t.Fatalf("nsupdate -v: %v\n%s", err, out)
		}
		wantLookup(f, t, "added.cluster.test.", dns.TypeA, "NXDOMAIN")
	})
}

// fuzzWriter is a ResponseWriter for calling the handler directly: it
// reports the signature verified, as the server does for a good one.
type fuzzWriter struct{ dns.ResponseWriter }

func (fuzzWriter) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (fuzzWriter) RemoteAddr() net.Addr        { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5353} }
func (fuzzWriter) TsigStatus() error           { return nil }
func (fuzzWriter) WriteMsg(*dns.Msg) error     { return nil }
func (fuzzWriter) Write(b []byte) (int, error) { return len(b), nil }
func (fuzzWriter) TsigTimersOnly(bool)         {}

// FuzzUpdate feeds arbitrary messages to the update handler, past the
// signature check, over a real store: never a panic, always an RCODE.
func FuzzUpdate(f *testing.F) {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	seed := func(build func(m *dns.Msg)) {
		m := updateMsg("cluster.test.")
		build(m)
		f.Add(pack(m))
	}
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{mustRR(f, "f.cluster.test. 60 IN A 192.0.2.1")}) })
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{mustRR(f, `f.cluster.test. 60 IN TXT "a\\b" "\"c\""`)}) })
	seed(func(m *dns.Msg) { m.Remove([]dns.RR{mustRR(f, "www.cluster.test. 0 IN A 192.0.2.1")}) })
	seed(func(m *dns.Msg) { m.RemoveRRset([]dns.RR{mustRR(f, "txt.cluster.test. 0 IN TXT \"\"")}) })
	seed(func(m *dns.Msg) { m.RemoveName([]dns.RR{mustRR(f, "alias.cluster.test. 0 IN A 0.0.0.0")}) })
	seed(func(m *dns.Msg) {
		m.Used([]dns.RR{mustRR(f, "www.cluster.test. 0 IN A 192.0.2.1")})
		m.NameNotUsed([]dns.RR{mustRR(f, "g.cluster.test. 0 IN A 0.0.0.0")})
		m.Insert([]dns.RR{mustRR(f, "g.cluster.test. 60 IN CNAME www.cluster.test.")})
	})
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{mustRR(f, "db.cluster.test. 60 IN A 192.0.2.1")}) })
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{mustRR(f, "cluster.test. 60 IN MX 1 www.cluster.test.")}) })
	f.Add([]byte{0, 1, 0x28, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 6, 0, 1, 0})
	p := newPrimaryFixture(f, PrimaryOptions{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m := new(dns.Msg)
		if m.Unpack(pkt) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		addr := netip.MustParseAddr("127.0.0.1")
		if rc := p.p.update(ctx, m, addr, testKey, addr); dns.RcodeToString[rc] == "" {
			t.Fatalf("got rcode %d", rc)
		}
		if r := p.p.ServeExtra(context.Background(), fuzzWriter{}, m, false); r != nil && r.Id != m.Id {
			t.Fatalf("answer ID %d for request %d", r.Id, m.Id)
		}
	})
}
