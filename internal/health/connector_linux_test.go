//go:build linux

package health

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// connectorModes are the two ways a connect ends: asked at once after
// connect (what loopback targets take), or through the epoll loop (what a
// target across a network takes).
var connectorModes = []struct {
	name      string
	epollOnly bool
}{
	{"asked at once", false},
	{"through epoll", true},
}

// startWait starts one probe on c and waits for its result.
func startWait(t *testing.T, c *connector, epollOnly bool, addr netip.AddrPort, timeout time.Duration) Result {
	t.Helper()
	ch := make(chan Result, 2)
	c.start(addr, timeout, epollOnly, func(r Result) { ch <- r })
	select {
	case r := <-ch:
		select {
		case r2 := <-ch:
			t.Fatalf("done called twice: %+v then %+v", r, r2)
		case <-time.After(20 * time.Millisecond):
		}
		return r
	case <-time.After(timeout + 2*time.Second):
		t.Fatalf("no result %v after the probe's timeout", 2*time.Second)
	}
	return Result{}
}

// loopback6 returns a listener on [::1]:0, or skips when the machine has no
// IPv6 loopback.
func loopback6(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here (%v): the IPv6 cases need ::1 on lo", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConnectorOutcomes(t *testing.T) {
	up := acceptAndClose(t)
	refused := closedPort(t)
	l6 := loopback6(t)
	up6 := addrOf(t, l6.Addr())
	l6b, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	refused6 := addrOf(t, l6b.Addr())
	l6b.Close()
	hole, holeOK := fullBacklog(t)
	// An IPv4-mapped IPv6 address is probed as IPv4.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(up.Addr().As16()), up.Port())

	const timeout = 200 * time.Millisecond
	for _, mode := range connectorModes {
		for _, tc := range []struct {
			name       string
			addr       netip.AddrPort
			wantOK     bool
			wantReason string
			skip       bool
		}{
			{"open port", up, true, "ok", false},
			{"refused", refused, false, "tcp connect: connection refused", false},
			{"ipv6 open port", up6, true, "ok", false},
			{"ipv6 refused", refused6, false, "tcp connect: connection refused", false},
			{"ipv4-mapped", mapped, true, "ok", false},
			{"multicast: fails in connect", netip.MustParseAddrPort("224.0.0.1:80"), false, "tcp connect: network is unreachable", false},
			{"SYNs dropped (full backlog)", hole, false, "timeout after 200ms", !holeOK},
		} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				if tc.skip {
					t.Skip("the accept queue never filled")
				}
				c := &connector{}
				defer c.close()
				start := time.Now()
				res := startWait(t, c, mode.epollOnly, tc.addr, timeout)
				took := time.Since(start)
				checkResult(t, res, tc.wantOK, tc.wantReason)
				if strings.HasPrefix(tc.wantReason, "timeout") {
					if took < timeout || took > timeout+time.Second {
						t.Errorf("returned after %v, want %v to %v", took, timeout, timeout+time.Second)
					}
					if res.Latency < timeout {
						t.Errorf("latency: got %v, want at least %v", res.Latency, timeout)
					}
				}
			})
		}
	}
}

// The target's service never accepts a probe: the connection is reset
// before the handshake's last ACK (or, on a loaded machine where the
// delayed ACK went out first, it is accepted already reset).
func TestConnectorTargetNeverAccepts(t *testing.T) {
	for _, mode := range connectorModes {
		t.Run(mode.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c := &connector{}
			defer c.close()
			for range 20 {
				checkResult(t, startWait(t, c, mode.epollOnly, addrOf(t, l.Addr()), time.Second), true, "ok")
			}
			l.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				conn, err := l.Accept()
				if err != nil {
					return // nothing (more) in the accept queue
				}
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
				if !strings.Contains(fmt.Sprint(err), "reset") {
					t.Fatalf("an accepted probe: read got %v, want a reset", err)
				}
			}
		})
	}
}

// Many probes at once, of every outcome: each gets its own result, once.
func TestConnectorManyConcurrent(t *testing.T) {
	up := acceptAndClose(t)
	refused := closedPort(t)
	hole, holeOK := fullBacklog(t)
	for _, mode := range connectorModes {
		t.Run(mode.name, func(t *testing.T) {
			c := &connector{}
			defer c.close()
			const n = 600
			const timeout = 300 * time.Millisecond
			type want struct {
				ok     bool
				reason string
			}
			targets := []struct {
				addr netip.AddrPort
				want want
			}{
				{up, want{true, "ok"}},
				{refused, want{false, "tcp connect: connection refused"}},
			}
			if holeOK {
				targets = append(targets, struct {
					addr netip.AddrPort
					want want
				}{hole, want{false, "timeout after 300ms"}})
			}
			var mu sync.Mutex
			got := make([]int, n) // results per probe
			var wg sync.WaitGroup
			wg.Add(n)
			start := time.Now()
			for i := range n {
				tg := targets[i%len(targets)]
				c.start(tg.addr, timeout, mode.epollOnly, func(r Result) {
					mu.Lock()
					got[i]++
					if r.OK != tg.want.ok || r.Reason != tg.want.reason {
						t.Errorf("probe %d of %v: got %v %q, want %v %q", i, tg.addr, r.OK, r.Reason, tg.want.ok, tg.want.reason)
					}
					mu.Unlock()
					wg.Done()
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(timeout + 5*time.Second):
				t.Fatalf("not every probe ended within %v", timeout+5*time.Second)
			}
			t.Logf("%d probes in %v", n, time.Since(start))
			time.Sleep(20 * time.Millisecond) // a second call of done would show now
			mu.Lock()
			defer mu.Unlock()
			for i, k := range got {
				if k != 1 {
					t.Fatalf("probe %d: done called %d times", i, k)
				}
			}
		})
	}
}

// settleCounts waits (up to 3 s) until cond holds.
func settleCounts(cond func() bool) {
	for deadline := time.Now().Add(3 * time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// Close ends the probes in flight ("probe canceled") and leaves no
// descriptor or goroutine; an idle loop ends by itself; a closed connector
// runs probes again.
func TestConnectorCloseAndIdleLeaveNothing(t *testing.T) {
	hole, ok := fullBacklog(t)
	if !ok {
		t.Skip("the accept queue never filled: no blackholed target")
	}
	up := acceptAndClose(t)
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), openFDs()

	c := &connector{idleExit: 50 * time.Millisecond}
	const n = 50
	results := make(chan Result, n)
	for range n {
		c.start(hole, time.Minute, false, func(r Result) { results <- r })
	}
	if fd := openFDs(); fd < fd0+n {
		t.Fatalf("open fds with %d probes in flight: got %d, want at least %d", n, fd, fd0+n)
	}
	c.close()
	for range n {
		select {
		case r := <-results:
			checkResult(t, r, false, "probe canceled")
		case <-time.After(time.Second):
			t.Fatal("a probe in flight got no result from close")
		}
	}
	// A probe whose delayed ACK went out first (a loaded machine) was
	// accepted by the target, which closes it in a moment: wait for that.
	settleCounts(func() bool { return openFDs() <= fd0 })
	if fd := openFDs(); fd > fd0 {
		t.Errorf("open fds after close: got %d, want %d", fd, fd0)
	}
	settleCounts(func() bool { return runtime.NumGoroutine() <= g0 })
	if g := runtime.NumGoroutine(); g > g0 {
		t.Errorf("goroutines after close: got %d, want %d", g, g0)
	}

	// Usable again; idle, its loop ends by itself.
	checkResult(t, startWait(t, c, false, hole, 50*time.Millisecond), false, "timeout after 50ms")
	checkResult(t, startWait(t, c, false, up, time.Second), true, "ok")
	settleCounts(func() bool { return runtime.NumGoroutine() <= g0 && openFDs() <= fd0 })
	if g, fd := runtime.NumGoroutine(), openFDs(); g > g0 || fd > fd0 {
		t.Errorf("after idling: %d goroutines, %d fds; want %d, %d", g, fd, g0, fd0)
	}
}

// A probe started while the loop sleeps towards a later deadline wakes it:
// its shorter timeout holds.
func TestConnectorShorterTimeoutWakesLoop(t *testing.T) {
	hole, ok := fullBacklog(t)
	if !ok {
		t.Skip("the accept queue never filled: no blackholed target")
	}
	c := &connector{}
	defer c.close()
	long := make(chan Result, 1)
	c.start(hole, 5*time.Second, false, func(r Result) { long <- r })
	time.Sleep(20 * time.Millisecond) // the loop now sleeps towards +5s
	start := time.Now()
	res := startWait(t, c, false, hole, 100*time.Millisecond)
	checkResult(t, res, false, "timeout after 100ms")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a 100ms probe ended after %v", took)
	}
}

// NetProber's synchronous Probe: ctx ends a tcp probe early, and the
// reason says how.
func TestProbeTCPContext(t *testing.T) {
	hole, ok := fullBacklog(t)
	if !ok {
		t.Skip("the accept queue never filled: no blackholed target")
	}
	p := &NetProber{}
	defer p.Close()
	tg := Target{Service: "svc", Node: "n1", Addr: hole, Check: api.Check{Type: api.CheckTCP, Timeout: api.Duration(time.Minute)}}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	checkResult(t, p.Probe(ctx, tg), false, "probe canceled")

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	checkResult(t, p.Probe(ctx, tg), false, "timeout after 1m0s")

	tg.Check.Timeout = api.Duration(50 * time.Millisecond)
	checkResult(t, p.Probe(context.Background(), tg), false, "timeout after 50ms")
}

// StartProbe takes tcp probes only, and only without an injected Dial.
func TestStartProbeTakes(t *testing.T) {
	up := acceptAndClose(t)
	zoned := netip.AddrPortFrom(netip.MustParseAddr("fe80::1%lo"), 80)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) { return nil, syscall.ECONNREFUSED }
	for _, tc := range []struct {
		name   string
		p      *NetProber
		target Target
		want   bool
	}{
		{"tcp", &NetProber{}, Target{Addr: up, Check: api.Check{Type: api.CheckTCP, Timeout: api.Duration(time.Second)}}, true},
		{"type defaults to tcp", &NetProber{}, Target{Addr: up, Check: api.Check{Timeout: api.Duration(time.Second)}}, true},
		{"no timeout", &NetProber{}, Target{Addr: up, Check: api.Check{Type: api.CheckTCP}}, false},
		{"http", &NetProber{}, Target{Addr: up, Check: api.Check{Type: api.CheckHTTP, Timeout: api.Duration(time.Second)}}, false},
		{"injected dial", &NetProber{Dial: dial}, Target{Addr: up, Check: api.Check{Type: api.CheckTCP, Timeout: api.Duration(time.Second)}}, false},
		{"ipv6 with a zone", &NetProber{}, Target{Addr: zoned, Check: api.Check{Type: api.CheckTCP, Timeout: api.Duration(time.Second)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.p.Close()
			ch := make(chan Result, 1)
			if got := tc.p.StartProbe(tc.target, func(r Result) { ch <- r }); got != tc.want {
				t.Fatalf("StartProbe: got %v, want %v", got, tc.want)
			}
			if tc.want {
				checkResult(t, <-ch, true, "ok")
			}
		})
	}
}

// One probe round trip (connect, close, result) on the connector, per way
// a connect ends. cpu-µs/probe is the process's CPU time (user + system,
// the target's side of the handshake included: it runs in this process on
// loopback) per probe.
func BenchmarkConnector(b *testing.B) {
	up := acceptAndClose(b)
	for _, mode := range connectorModes {
		b.Run(strings.ReplaceAll(mode.name, " ", "-"), func(b *testing.B) {
			c := &connector{}
			defer c.close()
			ch := make(chan Result, 1)
			done := func(r Result) { ch <- r }
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			for b.Loop() {
				c.start(up, time.Second, mode.epollOnly, done)
				if r := <-ch; !r.OK {
					b.Fatalf("probe failed: %s", r.Reason)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/probe")
		})
	}
}

// BenchmarkProbeTCP is NetProber.Probe of a tcp target, as callers other
// than the Checker run it.
func BenchmarkProbeTCP(b *testing.B) {
	up := acceptAndClose(b)
	p := &NetProber{}
	defer p.Close()
	tg := Target{Addr: up, Check: api.Check{Type: api.CheckTCP, Timeout: api.Duration(time.Second)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(ctx, tg); !r.OK {
			b.Fatalf("probe failed: %s", r.Reason)
		}
	}
}

// processCPU is this process's user + system time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Probes started from several goroutines while the connector is closed
// again and again: every probe gets exactly one result, and nothing is
// left open.
func TestConnectorCloseWhileStarting(t *testing.T) {
	up := acceptAndClose(t)
	hole, ok := fullBacklog(t)
	if !ok {
		hole = closedPort(t)
	}
	fd0 := openFDs()
	c := &connector{}
	const workers, each = 4, 200
	var mu sync.Mutex
	calls := make([]int, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := range each {
				i := w*each + k
				addr := up
				if k%2 == 1 {
					addr = hole
				}
				c.start(addr, time.Minute, true, func(Result) {
					mu.Lock()
					calls[i]++
					mu.Unlock()
				})
			}
		})
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for range 20 {
			c.close()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	<-stopped
	c.close()
	mu.Lock()
	defer mu.Unlock()
	for i, n := range calls {
		if n != 1 {
			t.Fatalf("probe %d: done called %d times, want once", i, n)
		}
	}
	settleCounts(func() bool { return openFDs() <= fd0 })
	if fd := openFDs(); fd > fd0 {
		t.Errorf("open fds: got %d, want %d", fd, fd0)
	}
}
