package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// localProber passes every probe until told to fail them with a local error
// (as a socket() that got EMFILE does).
type localProber struct {
	local atomic.Bool
	calls atomic.Int64
}

func (p *localProber) Probe(ctx context.Context, t Target) Result {
	p.calls.Add(1)
	if p.local.Load() {
		err := &os.SyscallError{Syscall: "socket", Err: syscall.EMFILE}
		return Result{Reason: "tcp connect: " + err.Error(), Local: localError(err)}
	}
	return Result{OK: true, Reason: "ok"}
}

// advance moves fake time in steps, giving the checker real time to handle
// each step.
func advance(clock *FakeClock, total, step time.Duration) {
	for e := time.Duration(0); e < total; e += step {
		clock.Advance(step)
		time.Sleep(5 * time.Millisecond)
	}
}

func checkerRecord(w *world, id string) (api.Checker, bool) {
	for _, c := range w.w.Current().Checkers() {
		if c.ID == id {
			return c, true
		}
	}
	return api.Checker{}, false
}

func waitChecker(t *testing.T, w *world, id, what string, cond func(api.Checker) bool) api.Checker {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, ok := checkerRecord(w, id); ok && cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			c, _ := checkerRecord(w, id)
			t.Fatalf("checker %s never %s: %+v", id, what, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Local errors (EMFILE here) are not votes: a healthy node stays healthy,
// the checker says it is degraded and why, and says so no more once its
// probes work again.
func TestLocalErrorsAreNotVotes(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS, syscall.ENOMEM, syscall.EAGAIN} {
		if !localError(fmt.Errorf("dial: %w", &os.SyscallError{Syscall: "connect", Err: errno})) {
			t.Errorf("%v: not a local error", errno)
		}
	}
	if localError(syscall.ECONNREFUSED) || localError(syscall.EHOSTUNREACH) || localError(errors.New("timeout")) {
		t.Error("a refused or unreachable node counted as a local error")
	}

	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 1, Fall: 2}
	w.service("db", 3000, check)
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.44.31:3000"))
	clock := NewFakeClock()
	p := &localProber{}
	w.run(Options{ID: "c1", Clock: clock, Prober: p})
	advance(clock, 3*time.Second, 100*time.Millisecond)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	p.local.Store(true)
	before := p.calls.Load()
	advance(clock, 10*time.Second, 100*time.Millisecond)
	if n := p.calls.Load() - before; n < 5 {
		t.Fatalf("%d probes in 10s of local errors, want probing to go on", n)
	}
	c := waitChecker(t, w, "c1", "degraded", func(c api.Checker) bool { return c.Degraded != "" })
	if !strings.Contains(c.Degraded, "too many open files") {
		t.Errorf("degraded %q, want the reason", c.Degraded)
	}
	for _, e := range w.w.Current().Events() {
		if e.New == api.StateUnhealthy {
			t.Fatalf("a local error was a vote: %+v", e)
		}
	}
	w.waitNode("db", "db-a", "still healthy", time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	p.local.Store(false)
	advance(clock, 12*time.Second, 100*time.Millisecond)
	waitChecker(t, w, "c1", "recovered", func(c api.Checker) bool { return c.Degraded == "" })
}

// A checker whose process runs out of descriptors (the real prober, a real
// listener, RLIMIT_NOFILE cut to what is open) does not flip a healthy node.
func TestExhaustedDescriptorsDoNotFlip(t *testing.T) {
	w := newWorld(t)
	l := listen(t, "127.0.44.32:0")
	addr := netip.MustParseAddrPort(l.Addr().String())
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 1, Fall: 1}
	w.service("db", int(addr.Port()), check)
	w.node("db", "db-a", addr)
	clock := NewFakeClock()
	prober := &NetProber{}
	t.Cleanup(func() { prober.Close() })
	w.run(Options{ID: "c1", Clock: clock, Prober: prober})
	advance(clock, 3*time.Second, 100*time.Millisecond)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	// Fill the descriptor table: every probe's socket() gets EMFILE.
	var files []*os.File
	var mu sync.Mutex
	release := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	t.Cleanup(release)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("open: %v", err)
			}
			break
		}
		files = append(files, f)
		if len(files) > int(lim.Cur)+10 {
			t.Fatal("no EMFILE")
		}
	}
	advance(clock, 3*time.Second, 100*time.Millisecond)
	release()
	c := waitChecker(t, w, "c1", "degraded", func(c api.Checker) bool { return c.Degraded != "" })
	t.Logf("with %d descriptors held: degraded %q", lim.Cur, c.Degraded)
	for _, e := range w.w.Current().Events() {
		if e.New == api.StateUnhealthy {
			t.Fatalf("descriptor exhaustion flipped the node: %+v", e)
		}
	}
	w.waitNode("db", "db-a", "still healthy", time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
}
