package seed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/seedtest"
	"github.com/seamark/seamark/seed"
)

// leakCheck records the goroutine and open-file counts and, at cleanup,
// waits (bounded) for them to come back.
func leakCheck(t *testing.T) {
	t.Helper()
	g0, f0 := runtime.NumGoroutine(), openFiles(t)
	t.Cleanup(func() {
		var g, f int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if g, f = runtime.NumGoroutine(), openFiles(t); g <= g0 && f <= f0 {
				return
			}
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("leak: goroutines %d -> %d, open files %d -> %d\n%s", g0, g, f0, f, buf)
	})
}

func openFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// liveSet is a live service on one loopback address and dead addresses on
// the same port, served under one name by a DNS server with a fixed order.
type liveSet struct {
	dns  *seedtest.DNS
	live *seedtest.Service
	ip   netip.Addr
	dead []netip.Addr
	port uint16
}

// newLiveSet listens on live and, with fill set, blackholes dead with full
// accept queues (see seedtest.Blackhole), all on one port. Without fill the
// caller has blackholed dead some other way.
func newLiveSet(t *testing.T, live netip.Addr, dead []netip.Addr, fill bool) *liveSet {
	t.Helper()
	var lns []net.Listener
	var port uint16
	var err error
	if fill {
		lns, port, err = seedtest.ListenSamePort(append([]netip.Addr{live}, dead...))
	} else {
		lns, port, err = seedtest.ListenSamePort([]netip.Addr{live})
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns[1:] {
		ln.Close()
	}
	if fill {
		bh, err := seedtest.NewBlackhole(dead, port)
		if err != nil {
			lns[0].Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { bh.Close() })
	}
	svc := seedtest.NewService(lns[0])
	t.Cleanup(func() { svc.Close() })
	d, err := seedtest.NewDNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &liveSet{dns: d, live: svc, ip: live, dead: dead, port: port}
}

// order puts the live address at position pos among the dead ones.
func (s *liveSet) order(pos int) []netip.Addr {
	out := slices.Clone(s.dead[:pos])
	out = append(out, s.ip)
	return append(out, s.dead[pos:]...)
}

// traceLog collects trace events.
type traceLog struct {
	mu     sync.Mutex
	events []seed.Event
}

func (l *traceLog) add(e seed.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *traceLog) of(kind seed.EventKind) []seed.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []seed.Event
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// testBlackholedPositions dials a name listing 20 blackholed addresses and one
// live one, with the live one in every position, through a real DNS server.
// The attempts are staggered on a fake clock the test moves from one attempt
// start to the next, so it asserts the schedule exactly (the live attempt
// starts, and connects, at the sum of the gaps before it) instead of a
// wall-clock bound that a loaded machine overran (532-746 ms for 500 ms).
func testBlackholedPositions(t *testing.T, s *liveSet) {
	name := "db.cluster.test"
	for pos := 0; pos <= len(s.dead); pos++ {
		t.Run(fmt.Sprintf("live-at-%d", pos+1), func(t *testing.T) {
			s.dns.Set(name, s.order(pos))
			var log traceLog
			clk := newFakeClock()
			type result struct {
				c   net.Conn
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				c, err := seed.Dial(context.Background(), fmt.Sprintf("%s:%d", name, s.port), seed.WithDNSServer(s.dns.Addr()),
					seed.WithTrace(log.add), seed.WithClock(clk.Now, clk.After))
				done <- result{c, err}
			}()
			var r result
		dialing:
			for {
				// The dead ones never answer: move the clock to the next
				// start until the live one has started, then only wait.
				wait := clk.armed
				if len(log.of(seed.EventAttempt)) > pos {
					wait = nil
				}
				select {
				case r = <-done:
					break dialing
				case <-wait:
					// A launch traces its attempt before it arms the
					// clock: look again before moving it.
					if len(log.of(seed.EventAttempt)) <= pos {
						clk.fireNext()
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("dial did not end within 10s; %d attempts", len(log.of(seed.EventAttempt)))
				}
			}
			took := time.Since(start)
			if r.err != nil {
				t.Fatalf("dial: %v", r.err)
			}
			r.c.Close()
			if got, want := netip.MustParseAddrPort(r.c.RemoteAddr().String()).Addr(), s.ip; got != want {
				t.Fatalf("connected to %v, want %v", got, want)
			}
			res := log.of(seed.EventResolved)
			if len(res) != 1 || len(res[0].Addrs) != len(s.dead)+1 || res[0].Addrs[pos].Addr() != s.ip {
				t.Fatalf("resolved %v, want %d addresses with the live one at %d", res, len(s.dead)+1, pos)
			}
			if n := len(log.of(seed.EventAttempt)); n != pos+1 {
				t.Errorf("%d attempts started, want %d (the dead ones before the live one, and it)", n, pos+1)
			}
			if n := len(log.of(seed.EventCancelled)); n != pos {
				t.Errorf("%d attempts cancelled, want %d", n, pos)
			}
			// The schedule: gaps start at the attempt delay and halve down
			// to the minimum.
			var want time.Duration
			gap := seed.DefaultAttemptDelay
			for range pos {
				want += gap
				gap = max(gap/2, seed.MinAttemptDelay)
			}
			conn := log.of(seed.EventConnected)
			if len(conn) != 1 || conn[0].Elapsed != want {
				t.Errorf("connected %v, want once at %v on the dial's clock", conn, want)
			}
			t.Logf("live at %2d: connected at %v on the dial's clock (%v real)", pos+1, want, took.Round(time.Millisecond))
		})
	}
}

// fakeClock is a dial's clock that moves only when the test fires the next
// pending wait.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []fakeWait
	armed chan struct{} // one token per After call
}

type fakeWait struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waits = append(c.waits, fakeWait{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	c.armed <- struct{}{}
	return ch
}

// fireNext moves the clock to the earliest pending wait and ends it.
func (c *fakeClock) fireNext() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waits) == 0 {
		return
	}
	i := 0
	for j, w := range c.waits {
		if w.at.Before(c.waits[i].at) {
			i = j
		}
	}
	w := c.waits[i]
	c.waits = append(c.waits[:i], c.waits[i+1:]...)
	if w.at.After(c.now) {
		c.now = w.at
	}
	w.ch <- c.now
}

func TestDialBlackholedInEveryPosition(t *testing.T) {
	leakCheck(t)
	s := newLiveSet(t, netip.MustParseAddr("127.0.8.1"), seedtest.Loopbacks(8, 2, 20), true)
	testBlackholedPositions(t, s)
}

func TestDialRefusedFailsFast(t *testing.T) {
	leakCheck(t)
	// Nothing listens on 127.0.9.2-21: each attempt is refused at once, so
	// the next starts at once and the live one is reached without waiting
	// for the attempt delay.
	lns, port, err := seedtest.ListenSamePort(seedtest.Loopbacks(9, 1, 21))
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns[1:] {
		ln.Close()
	}
	svc := seedtest.NewService(lns[0])
	defer svc.Close()
	var addrs []netip.AddrPort
	for _, ip := range seedtest.Loopbacks(9, 2, 20) {
		addrs = append(addrs, netip.AddrPortFrom(ip, port))
	}
	addrs = append(addrs, netip.MustParseAddrPort(svc.Addr().String()))
	var log traceLog
	start := time.Now()
	c, err := seed.DialAddrs(context.Background(), addrs, seed.WithAttemptDelay(time.Second), seed.WithTrace(log.add))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("took %v with 20 refused addresses and an attempt delay of 1s, want well under the delay", took)
	}
	if n := len(log.of(seed.EventFailed)); n != 20 {
		t.Errorf("%d failed attempts, want 20", n)
	}
}

func TestDialAllDead(t *testing.T) {
	leakCheck(t)
	port, err := seedtest.FreePort(seedtest.Loopbacks(10, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	bh, err := seedtest.NewBlackhole(seedtest.Loopbacks(10, 1, 1), port)
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	addrs := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.10.1"), port), // blackholed
		netip.AddrPortFrom(netip.MustParseAddr("127.0.10.2"), port), // refused
		netip.AddrPortFrom(netip.MustParseAddr("127.0.10.3"), port), // refused
	}
	t.Run("attempt timeout", func(t *testing.T) {
		start := time.Now()
		_, err := seed.DialAddrs(context.Background(), addrs, seed.WithAttemptTimeout(200*time.Millisecond))
		if err == nil {
			t.Fatal("dial succeeded, want every address failed")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "all 3 addresses failed") {
			t.Errorf("got %v, want all 3 failed, refused among them", err)
		}
		if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
			t.Errorf("took %v, want about the attempt timeout (200ms)", took)
		}
	})
	t.Run("overall timeout", func(t *testing.T) {
		start := time.Now()
		_, err := seed.DialAddrs(context.Background(), addrs[:1], seed.WithTimeout(150*time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want the deadline exceeded", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v, want about the timeout (150ms)", took)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := seed.DialAddrs(ctx, addrs[:1])
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want the context's deadline", err)
		}
	})
}

func TestDialConcurrencyCap(t *testing.T) {
	leakCheck(t)
	s := newLiveSet(t, netip.MustParseAddr("127.0.11.1"), seedtest.Loopbacks(11, 2, 4), true)
	var addrs []netip.AddrPort
	for _, ip := range s.order(4) {
		addrs = append(addrs, netip.AddrPortFrom(ip, s.port))
	}
	// Two attempts at once, each given 150ms: the live fifth address can
	// start only when the fourth dead one times out, at about 300ms.
	var log traceLog
	start := time.Now()
	c, err := seed.DialAddrs(context.Background(), addrs, seed.WithAttemptDelay(0),
		seed.WithMaxConcurrent(2), seed.WithAttemptTimeout(150*time.Millisecond), seed.WithTrace(log.add))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	took := time.Since(start)
	inflight, most := 0, 0
	for _, e := range log.events {
		switch e.Kind {
		case seed.EventAttempt:
			inflight++
			most = max(most, inflight)
		case seed.EventFailed, seed.EventConnected, seed.EventCancelled:
			inflight--
		}
	}
	if most != 2 {
		t.Errorf("at most %d attempts in flight, want 2", most)
	}
	if took < 300*time.Millisecond {
		t.Errorf("connected after %v, want after two rounds of 150ms timeouts", took)
	}
}

func TestDialBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, address string
		opts          []seed.Option
		want          string
	}{
		{"no port", "db.example.com", nil, "is not host:port"},
		{"bad port", "db.example.com:http", nil, `port "http"`},
		{"port zero", "db.example.com:0", nil, "from 1 to 65535"},
		{"no host", ":3000", nil, "has no host"},
		{"bad dns server", "db.example.com:3000", []seed.Option{seed.WithDNSServer("ns.example.com")}, "is not an IP address and port"},
		{"bad network", "db.example.com:3000", []seed.Option{seed.WithNetwork("udp")}, "is not tcp, tcp4 or tcp6"},
		{"negative delay", "db.example.com:3000", []seed.Option{seed.WithAttemptDelay(-1)}, "is negative"},
		{"zero cap", "db.example.com:3000", []seed.Option{seed.WithMaxConcurrent(0)}, "less than 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := seed.Dial(context.Background(), tc.address, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestDialUnknownName(t *testing.T) {
	d, err := seedtest.NewDNS()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = seed.Dial(context.Background(), "nothere.cluster.test:3000", seed.WithDNSServer(d.Addr()))
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("got %v, want a not-found DNS error", err)
	}
}

func BenchmarkDialLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svc := seedtest.NewService(ln)
	defer svc.Close()
	addr := svc.Addr().String()
	b.ReportAllocs()
	for b.Loop() {
		c, err := seed.Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// Attempts that lose the race are closed: with two live addresses started at
// once, both may connect, and only the winner stays open.
func TestDialLoserClosed(t *testing.T) {
	leakCheck(t)
	var svcs []*seedtest.Service
	var addrs []netip.AddrPort
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		svc := seedtest.NewService(ln)
		defer svc.Close()
		svcs = append(svcs, svc)
		addrs = append(addrs, netip.MustParseAddrPort(ln.Addr().String()))
	}
	for round := 0; round < 20; round++ {
		var log traceLog
		c, err := seed.DialAddrs(context.Background(), addrs, seed.WithAttemptDelay(0), seed.WithTrace(log.add))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(log.of(seed.EventAttempt)); n != 2 {
			t.Fatalf("%d attempts, want both started at once", n)
		}
		waitFor(t, 5*time.Second, "only the winner's connection open", func() bool {
			return svcs[0].Open()+svcs[1].Open() == 1
		})
		c.Close()
		waitFor(t, 5*time.Second, "no connection open", func() bool { return svcs[0].Open()+svcs[1].Open() == 0 })
	}
	t.Logf("accepted %d and %d connections over 20 dials (the losers' included)", svcs[0].Accepted.Load(), svcs[1].Accepted.Load())
}
