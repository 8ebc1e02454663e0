package dns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// transfer runs one AXFR or IXFR over TCP, signed with key when it is not
// empty, and returns the records, or the RCODE of a refusal.
func (f *primaryFixture) transfer(t testing.TB, m *dns.Msg, key, secret string) ([]dns.RR, int) {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: clientTimeout}
	conn, err := c.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tr := &dns.Transfer{Conn: conn, ReadTimeout: clientTimeout}
	if key != "" {
		tr.TsigSecret = map[string]string{key: secret}
		m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	}
	if err := tr.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	soas := 0
	for range 1000 { // bounded: a zone of this fixture is a few messages
		r, err := tr.ReadMsg()
		if r != nil && r.Rcode != dns.RcodeSuccess {
			return nil, r.Rcode // miekg does not verify a NOTAUTH answer: err says so
		}
		if err != nil {
			t.Fatalf("transfer: message %d: %v", len(rrs), err)
		}
		if key != "" && r.IsTsig() == nil {
			t.Fatal("transfer: a message is not signed")
		}
		for _, rr := range r.Answer {
			rrs = append(rrs, rr)
			if _, ok := rr.(*dns.SOA); ok {
				soas++
			}
		}
		if soas >= 2 || (soas == 1 && len(rrs) == 1 && m.Question[0].Qtype == dns.TypeIXFR) {
			return rrs, dns.RcodeSuccess
		}
	}
	t.Fatal("transfer: no closing SOA")
	return nil, 0
}

func xfrQuery(zone string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(zone, qtype)
	return m
}

// A transfer holds the whole zone, SOA first and last; only clients with a
// key, a secondary's address or an allow_transfer prefix get one.
func TestTransfer(t *testing.T) {
	f := newPrimaryFixture(t, PrimaryOptions{})
	rrs, rc := f.transfer(t, xfrQuery("cluster.test.", dns.TypeAXFR), testKey, testSecret)
	if rc != dns.RcodeSuccess || len(rrs) < 2 {
		t.Fatalf("got rcode %s, %d records", dns.RcodeToString[rc], len(rrs))
	}
	first, ok1 := rrs[0].(*dns.SOA)
	last, ok2 := rrs[len(rrs)-1].(*dns.SOA)
	if !ok1 || !ok2 || first.Serial != last.Serial || first.Serial == 0 {
		t.Fatalf("got first %v, last %v: want the SOA at both ends", rrs[0], rrs[len(rrs)-1])
	}
	count := map[string]int{}
	for _, rr := range rrs[1 : len(rrs)-1] {
		if _, ok := rr.(*dns.SOA); ok {
			t.Fatalf("an SOA inside the transfer: %v", rr)
		}
		count[strings.ToLower(rr.Header().Name)+" "+dns.TypeToString[rr.Header().Rrtype]]++
	}
	for key, want := range map[string]int{
		"big.cluster.test. A":          60, // the whole pool: not max_answers, not one rotation
		"_big._tcp.cluster.test. SRV":  60,
		"db.cluster.test. A":           2,
		"db.cluster.test. AAAA":        1,
		"_db._tcp.cluster.test. SRV":   3,
		"db-a.node.cluster.test. A":    1,
		"db-c.node.cluster.test. AAAA": 1,
		"down.cluster.test. A":         2, // fail_open, as answers are
		"gone.cluster.test. A":         0, // when_none_healthy empty
		"g1.node.cluster.test. A":      1,
		"cluster.test. NS":             1,
		"ns.cluster.test. A":           1,
		"cluster.test. MX":             1,
		"www.cluster.test. A":          2,
		"txt.cluster.test. TXT":        2,
		"alias.cluster.test. CNAME":    1,
		"chain.cluster.test. CNAME":    1,
		"ext.cluster.test. CNAME":      1,
		"_sip._udp.cluster.test. SRV":  1,
	} {
		if count[key] != want {
			t.Errorf("%s: got %d records, want %d", key, count[key], want)
		}
	}

	t.Run("unsigned from an address not allowed: REFUSED", func(t *testing.T) {
		if _, rc := f.transfer(t, xfrQuery("cluster.test.", dns.TypeAXFR), "", ""); rc != dns.RcodeRefused {
			t.Fatalf("got %s, want REFUSED", dns.RcodeToString[rc])
		}
	})
	t.Run("a wrong key: NOTAUTH", func(t *testing.T) {
		m := xfrQuery("cluster.test.", dns.TypeAXFR)
		m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{Net: "tcp", Timeout: clientTimeout, TsigSecret: map[string]string{testKey: wrongSecret}}
		r, _, _ := c.Exchange(m, f.addr)
		if r == nil || r.Rcode != dns.RcodeNotAuth || len(r.Answer) != 0 {
			t.Fatalf("got %v, want NOTAUTH and no records", r)
		}
	})
	t.Run("a zone not served: NOTAUTH", func(t *testing.T) {
		if _, rc := f.transfer(t, xfrQuery("example.org.", dns.TypeAXFR), testKey, testSecret); rc != dns.RcodeNotAuth {
			t.Fatalf("got %s, want NOTAUTH", dns.RcodeToString[rc])
		}
	})
	t.Run("AXFR over UDP: NOTIMP, as NSD and Knot answer", func(t *testing.T) {
		r, _ := f.exchange(t, xfrQuery("cluster.test.", dns.TypeAXFR), "udp", testKey, testSecret)
		if r.Rcode != dns.RcodeNotImplemented {
			t.Fatalf("got %s, want NOTIMP", dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("IXFR over UDP: the SOA, to come back over TCP", func(t *testing.T) {
		r, err := f.exchange(t, xfrQuery("cluster.test.", dns.TypeIXFR), "udp", testKey, testSecret)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("got %v (%v), want the SOA alone", r, err)
		}
	})
	t.Run("IXFR from the current serial: the SOA alone", func(t *testing.T) {
		m := xfrQuery("cluster.test.", dns.TypeIXFR)
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "cluster.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: ".", Mbox: ".", Serial: first.Serial}}
		rrs, rc := f.transfer(t, m, testKey, testSecret)
		if rc != dns.RcodeSuccess || len(rrs) != 1 {
			t.Fatalf("got %s, %d records, want the SOA alone", dns.RcodeToString[rc], len(rrs))
		}
	})
	t.Run("IXFR from an old serial: the whole zone, serial grown by the change", func(t *testing.T) {
		n := api.Node{ID: "late", Service: "db", Address: netip.MustParseAddr("127.0.0.77"), Source: api.SourceAPI}
		n.SetDefaults()
		if _, _, err := f.st.PutNode(context.Background(), n, 0); err != nil {
			t.Fatal(err)
		}
		eventually(t, "late node in the transfer", func() error {
			m := xfrQuery("cluster.test.", dns.TypeIXFR)
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "cluster.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: ".", Mbox: ".", Serial: first.Serial}}
			rrs, rc := f.transfer(t, m, testKey, testSecret)
			if rc != dns.RcodeSuccess || len(rrs) < 3 {
				return fmt.Errorf("got %s, %d records", dns.RcodeToString[rc], len(rrs))
			}
			if s := rrs[0].(*dns.SOA).Serial; s <= first.Serial {
				return fmt.Errorf("serial %d, want more than %d", s, first.Serial)
			}
			for _, rr := range rrs {
				if strings.HasPrefix(rr.Header().Name, "late.node.") {
					return nil
				}
			}
			return errors.New("no late.node record")
		})
	})
}

func TestTransferAllowedByAddress(t *testing.T) {
	tests := []struct {
		name string
		o    PrimaryOptions
		want int
	}{
		{"a secondary's address, any port", PrimaryOptions{Secondaries: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}}, dns.RcodeSuccess},
		{"allow_transfer prefix", PrimaryOptions{AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, dns.RcodeSuccess},
		{"another prefix", PrimaryOptions{AllowTransfer: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, dns.RcodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newPrimaryFixture(t, tc.o)
			if _, rc := f.transfer(t, xfrQuery("cluster.test.", dns.TypeAXFR), "", ""); rc != tc.want {
				t.Fatalf("got %s, want %s", dns.RcodeToString[rc], dns.RcodeToString[tc.want])
			}
		})
	}
}

// notifyCatcher is a UDP socket that records the NOTIFYs it gets and
// answers them, except the first `drop` (to test retries).
type notifyCatcher struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []*dns.Msg
	drop int
}

func newNotifyCatcher(t testing.TB, drop int) *notifyCatcher {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyCatcher{conn: c, drop: drop}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:k]) != nil {
				continue
			}
			n.mu.Lock()
			n.got = append(n.got, m)
			skip := len(n.got) <= n.drop
			n.mu.Unlock()
			if skip {
				continue
			}
			r := new(dns.Msg)
			r.SetReply(m)
			b, _ := r.Pack()
			c.WriteToUDPAddrPort(b, from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

func (n *notifyCatcher) addr() netip.AddrPort {
	return n.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (n *notifyCatcher) serials() []uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []uint32
	for _, m := range n.got {
		if len(m.Answer) == 1 {
			out = append(out, m.Answer[0].(*dns.SOA).Serial)
		}
	}
	return out
}

// NOTIFY goes to every secondary at start and after every change, with the
// new serial, signed with the first key, tried again when unanswered, and
// at most once per notifyEvery for a burst of changes.
func TestNotify(t *testing.T) {
	answering, dropping := newNotifyCatcher(t, 0), newNotifyCatcher(t, 1)
	f := newPrimaryFixture(t, PrimaryOptions{Secondaries: []netip.AddrPort{answering.addr(), dropping.addr()}})
	eventually(t, "NOTIFY at start", func() error {
		if len(answering.serials()) == 0 || len(dropping.serials()) < 2 {
			return fmt.Errorf("got %v and %v", answering.serials(), dropping.serials())
		}
		return nil
	})
	answering.mu.Lock()
	m := answering.got[0]
	answering.mu.Unlock()
	if m.Opcode != dns.OpcodeNotify || !m.Authoritative || len(m.Question) != 1 || m.Question[0].Name != "cluster.test." ||
		m.Question[0].Qtype != dns.TypeSOA || m.IsTsig() == nil || m.IsTsig().Hdr.Name != testKey {
		t.Fatalf("got %v, want a NOTIFY for cluster.test. SOA, signed with %s", m, testKey)
	}
	if s := dropping.serials(); s[0] != s[1] {
		t.Fatalf("the retry has serial %d, the first try %d", s[1], s[0])
	}
	before := answering.serials()
	start := before[len(before)-1]
	t0 := time.Now()
	for i := range 10 { // a burst of changes
		n := api.Node{ID: fmt.Sprintf("burst-%d", i), Service: "db", Address: netip.AddrFrom4([4]byte{127, 0, 4, byte(i + 1)}), Source: api.SourceAPI}
		n.SetDefaults()
		if _, _, err := f.st.PutNode(context.Background(), n, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, rev, _ := f.st.Load(context.Background())
	f.w.WaitRevision(context.Background(), rev)
	eventually(t, "NOTIFY with the last serial", func() error {
		s := answering.serials()
		if s[len(s)-1] < uint32(rev) {
			return fmt.Errorf("got serials %v, want %d last", s, rev)
		}
		return nil
	})
	elapsed := time.Since(t0)
	s := answering.serials()
	sent := len(s) - len(before)
	if limit := int(elapsed/notifyEvery) + 2; sent > limit {
		t.Fatalf("%d NOTIFYs for 10 changes in %v (serials %v), want at most %d", sent, elapsed, s, limit)
	}
	if s[len(s)-1] <= start {
		t.Fatalf("serial did not grow: %v", s)
	}
}

// A real BIND secondary transfers the zone with the TSIG key and follows a
// change after NOTIFY.
func TestBINDSecondary(t *testing.T) {
	const named = "/usr/sbin/named"
	if _, err := os.Stat(named); err != nil {
		t.Skip("named not installed: apt-get install bind9 (CI installs it)")
	}
	if testing.Short() {
		t.Skip("starts BIND")
	}
	port := freePort(t)
	secondary := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	f := newPrimaryFixture(t, PrimaryOptions{Secondaries: []netip.AddrPort{secondary}})
	_, pport, _ := net.SplitHostPort(f.addr)
	dir := t.TempDir()
	conf := fmt.Sprintf(`key "update-key" { algorithm hmac-sha256; secret %q; };
options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %q;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
zone "cluster.test" {
	type secondary;
	primaries port %s { 127.0.0.1 key "update-key"; };
	file %q;
};
`, testSecret, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), dir, port, pport, filepath.Join(dir, "cluster.test.db"))
	confPath := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(named, "-g", "-n", "1", "-c", confPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
		cmd.Wait()
		if t.Failed() {
			t.Logf("named log:\n%s", logs.String())
		}
	})
	ask := func(name string, qtype uint16) ([]string, error) {
		c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
		r, _, err := c.Exchange(query(name, qtype), secondary.String())
		if err != nil {
			return nil, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		return values(r.Answer), nil
	}
	waitFor := func(what string, limit time.Duration, ok func() error) time.Duration {
		t0 := time.Now()
		for {
			err := ok()
			if err == nil {
				return time.Since(t0)
			}
			if time.Since(t0) > limit {
				t.Fatalf("%s: not within %v: %v", what, limit, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	took := waitFor("named transfers the zone", 10*time.Second, func() error {
		v, err := ask("db.cluster.test.", dns.TypeA)
		if err != nil {
			return err
		}
		if !sameSet(v, []string{"A 127.0.0.11", "A 127.0.0.12"}) {
			return fmt.Errorf("got %v", v)
		}
		return nil
	})
	t.Logf("named answers the zone %v after start", took)
	n := api.Node{ID: "joined", Service: "db", Address: netip.MustParseAddr("127.0.0.88"), Source: api.SourceAPI}
	n.SetDefaults()
	if _, _, err := f.st.PutNode(context.Background(), n, 0); err != nil {
		t.Fatal(err)
	}
	took = waitFor("a change reaches named after NOTIFY", 5*time.Second, func() error {
		v, err := ask("db.cluster.test.", dns.TypeA)
		if err != nil {
			return err
		}
		if !sameSet(v, []string{"A 127.0.0.11", "A 127.0.0.12", "A 127.0.0.88"}) {
			return fmt.Errorf("got %v", v)
		}
		return nil
	})
	t.Logf("store write -> answered by named: %v", took)
	if v, err := ask("joined.node.cluster.test.", dns.TypeA); err != nil || len(v) != 1 {
		t.Fatalf("joined.node at named: got %v, %v", v, err)
	}
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1 a moment
// ago (named is then told to listen on it).
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			l.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}
