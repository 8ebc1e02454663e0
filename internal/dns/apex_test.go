package dns

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestApex: a configured NS set (with glue for the names inside the zone)
// and SOA fields; the default is ns.<zone> at the server's address.
func TestApex(t *testing.T) {
	snap := rfcSnapshot(t, 1)
	cfg := map[string]Zone{rfcZone: {
		NS: []NameServer{
			{Name: "ns1", Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
			{Name: "NS2.Example.Net."},
		},
		SOA: SOA{RName: "admin.example.net.", Refresh: 5 * time.Minute, Retry: time.Minute, Expire: 168 * time.Hour, Minimum: 30 * time.Second},
	}}
	for _, tc := range []struct {
		name   string
		cfg    map[string]Zone
		ns     []string
		glue   []string
		soa    string
		negTTL uint32
	}{
		{"configured", cfg, []string{"ns1.example.test.", "ns2.example.net."}, []string{"192.0.2.53", "2001:db8::53"},
			"ns1.example.test. admin.example.net. 42 300 60 604800 30", 30},
		{"default", nil, []string{"ns.example.test."}, []string{"127.0.45.1"},
			"ns.example.test. hostmaster.example.test. 42 60 10 3600 5", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := buildTable(snap, netip.MustParseAddr("127.0.45.1"), tc.cfg)
			r, _ := tb.answer(query(rfcZone, dns.TypeNS), 0, false)
			var ns, glue []string
			for _, rr := range r.Answer {
				ns = append(ns, rr.(*dns.NS).Ns)
			}
			for _, rr := range r.Extra {
				switch v := rr.(type) {
				case *dns.A:
					glue = append(glue, v.A.String())
				case *dns.AAAA:
					glue = append(glue, v.AAAA.String())
				}
			}
			slices.Sort(ns)
			slices.Sort(glue)
			if !slices.Equal(ns, tc.ns) || !slices.Equal(glue, tc.glue) {
				t.Fatalf("got NS %v glue %v, want %v %v", ns, glue, tc.ns, tc.glue)
			}
			r, _ = tb.answer(query(rfcZone, dns.TypeSOA), 0, false)
			soa := r.Answer[0].(*dns.SOA)
			if got := soa.String()[len(soa.Hdr.String()):]; got != tc.soa {
				t.Fatalf("got SOA %q, want %q", got, tc.soa)
			}
			r, _ = tb.answer(query("nx."+rfcZone, dns.TypeA), 0, false)
			if r.Ns[0].Header().Ttl != tc.negTTL {
				t.Fatalf("negative TTL %d, want %d", r.Ns[0].Header().Ttl, tc.negTTL)
			}
		})
	}
}

// TestTCPCap: connections over max_tcp_connections are closed at once and
// counted; the ones inside keep working.
func TestTCPCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Snapshots: fixedSnapshots{rfcSnapshot(t, 1)}, Registerer: reg, MaxTCPConnections: 3})
	var held []*dns.Conn
	for range 3 {
		c, err := dns.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	ask := func(c *dns.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := c.WriteMsg(query("www.example.test.", dns.TypeA)); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	for _, c := range held {
		if err := ask(c); err != nil {
			t.Fatalf("a connection inside the cap: %v", err)
		}
	}
	over, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if err := ask(&dns.Conn{Conn: over}); err == nil {
		t.Fatal("a connection over the cap was answered; want it closed")
	}
	if n := testutil.ToFloat64(s.m.tcpRefused); n != 1 {
		t.Fatalf("seamark_dns_tcp_refused_total = %v, want 1", n)
	}
	held[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := dns.Dial("tcp", s.Addr().String())
		if err == nil {
			err = ask(c)
			c.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot freed by a close was not reused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ask(held[1]); err != nil {
		t.Fatalf("a held connection stopped working: %v", err)
	}
}

// TestTCPIdleTimeout: an idle connection is closed after the idle timeout.
func TestTCPIdleTimeout(t *testing.T) {
	s := startServer(t, Options{Snapshots: fixedSnapshots{rfcSnapshot(t, 1)}, TCPIdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from an idle connection; want it closed")
	}
	if d := time.Since(t0); d > 4*time.Second {
		t.Fatalf("idle connection closed after %v; want about 200ms", d)
	}
}

// emfileListener fails Accept with EMFILE n times, then accepts.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptPausesOnEMFILE: out of descriptors, accepting waits (5 ms
// doubling) instead of spinning, counts, and goes on when they are back.
func TestAcceptPausesOnEMFILE(t *testing.T) {
	s := New(Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	l := &capListener{Listener: &emfileListener{Listener: ln, n: 4}, s: s}
	t0 := time.Now()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if d := time.Since(t0); d < 75*time.Millisecond {
		t.Fatalf("4 EMFILEs took %v; want pauses of 5+10+20+40 ms, not a spin", d)
	}
	if n := testutil.ToFloat64(s.m.tcpConns.WithLabelValues("emfile")); n != 4 {
		t.Fatalf("emfile errors counted %v, want 4", n)
	}
}

// TestDefaultNSResolves: listening on every address, the default ns.<zone>
// gets the machine's own address (when it has one), not none.
func TestDefaultNSResolves(t *testing.T) {
	want := hostAddr(true)
	if !want.IsValid() {
		t.Skip("this machine has no global unicast address")
	}
	s := New(Options{Addr: "0.0.0.0:9453"}) // not bound: 0.0.0.0 binds [::]
	addr := s.defaultNSAddr(netip.IPv6Unspecified())
	tb := buildTable(rfcSnapshot(t, 1), addr, nil)
	r, _ := tb.answer(query("ns.example.test.", dns.TypeA), 0, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want.String() {
		t.Fatalf("ns.example.test A: got %v, want %s", r.Answer, want)
	}
	if got := s.defaultNSAddr(netip.MustParseAddr("127.0.45.1")); got.String() != "127.0.45.1" {
		t.Fatalf("bound to 127.0.45.1: got %s", got)
	}
}
