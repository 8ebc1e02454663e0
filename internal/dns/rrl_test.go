package dns

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/seamark/seamark/internal/registry"
)

// TestLimiter drives the limiter with an injected clock.
func TestLimiter(t *testing.T) {
	var now int64 = 1
	l := newLimiter(RRL{ResponsesPerSecond: 10, Window: 2 * time.Second}, func() int64 { return now })
	a := netip.MustParseAddr("192.0.2.1")
	same := netip.MustParseAddr("192.0.2.200") // same /24
	other := netip.MustParseAddr("198.51.100.1")
	count := func(from netip.Addr, n int) (sent, dropped, slipped int) {
		for range n {
			switch l.check(from, 7) {
			case send:
				sent++
			case drop:
				dropped++
			case slip:
				slipped++
			}
		}
		return
	}
	// A burst of 100 in one instant: the first 10 go, then every other
	// limited answer slips (slip 2).
	if s, d, sl := count(a, 100); s != 10 || d != 45 || sl != 45 {
		t.Fatalf("burst: got sent %d dropped %d slipped %d, want 10 45 45", s, d, sl)
	}
	if s, _, _ := count(same, 1); s != 0 {
		t.Fatal("another address of the same /24 was answered; want it limited with its prefix")
	}
	if s, _, _ := count(other, 10); s != 10 {
		t.Fatalf("another prefix: got %d of 10 answered, want all", s)
	}
	ex := newLimiter(RRL{ResponsesPerSecond: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, func() int64 { return now })
	for range 100 {
		if ex.check(a, 7) != send {
			t.Fatal("an exempt source was limited")
		}
	}
	// The debt is capped at the window (2s x 10): after 2s it is paid.
	now += int64(time.Second)
	if s, _, _ := count(a, 1); s != 0 {
		t.Fatal("answered after 1s; want the debt of the flood still owed")
	}
	now += int64(2*time.Second + 200*time.Millisecond)
	if s, _, _ := count(a, 1); s != 1 {
		t.Fatal("not answered after the window; want the debt paid")
	}
	// A steady client at the rate is never limited.
	for range 50 {
		now += int64(100 * time.Millisecond)
		if s, _, _ := count(other, 1); s != 1 {
			t.Fatal("a client at the rate was limited")
		}
	}
}

// FuzzLimiter: any configuration (the config validates it; the limiter
// clamps what it does not) counts answers without a panic.
func FuzzLimiter(f *testing.F) {
	f.Add(200, int64(15e9), 2, 24, 56, int64(0))
	f.Add(-1, int64(-1), -2, 40, 7, int64(-5))
	f.Add(1, int64(1), 1, 32, 128, int64(1<<62))
	f.Fuzz(func(t *testing.T, rate int, window int64, slip, v4, v6 int, step int64) {
		r := RRL{ResponsesPerSecond: rate, Window: time.Duration(window), Slip: slip, IPv4PrefixLen: v4, IPv6PrefixLen: v6}
		now := int64(1)
		l := newLimiter(r, func() int64 { now += step; return now })
		for range 10 {
			l.check(netip.MustParseAddr("2001:db8::1"), 1)
			l.check(netip.MustParseAddr("192.0.2.1"), 1)
		}
	})
}

// fixedSnapshots serve one snapshot forever.
type fixedSnapshots struct{ s *registry.Snapshot }

func (f fixedSnapshots) Current() *registry.Snapshot             { return f.s }
func (f fixedSnapshots) Next(*registry.Snapshot) <-chan struct{} { return nil }

func startServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s := New(o)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for s.table.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	return s
}

// TestRRLFlood: 20 000 queries in about a second from 127.0.45.1 are mostly
// not answered (dropped, or slipped with TC) while 127.0.145.1 is answered
// every time; the metrics say so.
func TestRRLFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods the loopback")
	}
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Snapshots: fixedSnapshots{rfcSnapshot(t, 3)}, Registerer: reg})
	dial := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")), net.UDPAddrFromAddrPort(s.Addr()))
		if err != nil {
			t.Skipf("cannot use %s: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	flood, good := dial("127.0.45.1"), dial("127.0.145.1")
	q := query("www.example.test.", dns.TypeA)
	pkt, _ := q.Pack()

	var full, tc int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the flooder's answers
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			flood.SetReadDeadline(time.Now().Add(time.Second))
			n, err := flood.Read(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) == nil {
				if m.Truncated {
					tc++
				} else {
					full++
				}
			}
		}
	}()
	stop := make(chan struct{})
	goodDone := make(chan [2]int)
	go func() { // the other source, one query at a time
		asked, answered := 0, 0
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		for {
			select {
			case <-stop:
				goodDone <- [2]int{asked, answered}
				return
			default:
			}
			m := query("www.example.test.", dns.TypeA)
			asked++
			conn := &dns.Conn{Conn: good}
			if r, _, err := c.ExchangeWithConn(m, conn); err == nil && !r.Truncated && len(r.Answer) == 2 {
				answered++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	const total = 20000
	start := time.Now()
	for i := range total {
		pkt[0], pkt[1] = byte(i>>8), byte(i)
		flood.Write(pkt)
		// pace to 20 000/s
		if i%200 == 199 {
			if d := time.Duration(i+1)*time.Second/total - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	g := <-goodDone
	wg.Wait()
	dropped := testutil.ToFloat64(s.m.rrlDropped)
	slipped := testutil.ToFloat64(s.m.rrlSlipped)
	t.Logf("flood: %d sent in %v; %d full answers, %d TC received; metrics dropped %v slipped %v; other source %d/%d answered",
		total, time.Since(start).Round(time.Millisecond), full, tc, dropped, slipped, g[1], g[0])
	if full > total/10 {
		t.Errorf("the flooder got %d full answers of %d; want at most 10%%", full, total)
	}
	if dropped < total/3 || slipped < 100 {
		t.Errorf("metrics: dropped %v slipped %v; want most dropped and some slipped", dropped, slipped)
	}
	if g[0] < 10 || g[1] != g[0] {
		t.Errorf("other source: %d of %d answered; want every one", g[1], g[0])
	}
}

// TestSourcePrefix: the hand-masked source prefix is netip's Prefix, for
// every prefix length of both families.
func TestSourcePrefix(t *testing.T) {
	for _, s := range []string{"192.0.2.255", "255.255.255.255", "10.1.2.3", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::1", "fe80::1:2:3:4"} {
		a := netip.MustParseAddr(s)
		max := 128
		if a.Is4() {
			max = 32
		}
		for bits := 1; bits <= max; bits++ {
			p, err := a.Prefix(bits)
			if err != nil {
				t.Fatal(err)
			}
			want := p.Addr().As16()
			if got := sourcePrefix(a, bits, bits); got != want {
				t.Errorf("%s/%d: got %x, want %x", s, bits, got, want)
			}
		}
	}
}
