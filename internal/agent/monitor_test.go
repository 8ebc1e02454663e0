package agent

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// fakeClock moves only on Advance. Its tickers deliver synchronously (the
// receiver has taken each tick before Advance goes on), its timers into a
// buffer of one.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
	timers  []*fakeTimer
}

type fakeTicker struct {
	c       chan time.Time
	every   time.Duration
	next    time.Time
	stopped bool
}

type fakeTimer struct {
	clk   *fakeClock
	c     chan time.Time
	at    time.Time
	armed bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time), every: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, c: make(chan time.Time, 1), at: c.now.Add(d), armed: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock by d: every due tick is taken by its receiver,
// then every due timer fires.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var ticks []*fakeTicker
	for _, t := range c.tickers {
		if !t.stopped && !t.next.After(now) {
			ticks = append(ticks, t)
			for !t.next.After(now) {
				t.next = t.next.Add(t.every)
			}
		}
	}
	var fire []*fakeTimer
	for _, t := range c.timers {
		if t.armed && !t.at.After(now) {
			t.armed = false
			fire = append(fire, t)
		}
	}
	c.mu.Unlock()
	for _, t := range ticks {
		t.c <- now
	}
	for _, t := range fire {
		select {
		case t.c <- now:
		default:
		}
	}
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.stopped = true } // read by Advance only after the monitor ended

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}
func (t *fakeTimer) Reset(d time.Duration) {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	t.at, t.armed = t.clk.now.Add(d), true
}

// The port monitor on a fake clock: the node turns unhealthy exactly when
// UnhealthyAfter has passed since the port's last answer (not a tick
// earlier, whatever the machine's load), and healthy at the first answer
// after.
func TestMonitorUnhealthyAfterOnClock(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.44.41:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	var served sync.WaitGroup // every accept loop ends before the test does
	defer served.Wait()
	defer l.Close()
	serve := func(l net.Listener) {
		served.Add(1)
		go func() {
			defer served.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	serve(l)
	const every, after = 100 * time.Millisecond, time.Second
	clk := newFakeClock()
	a := &Agent{log: slog.New(slog.DiscardHandler), clock: clk,
		cfg: Config{CheckInterval: api.Duration(every), UnhealthyAfter: api.Duration(after)}}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan bool, 1)
	done := make(chan struct{})
	go func() { defer close(done); a.monitor(ctx, addr, out) }()
	defer func() { cancel(); <-done }()
	// The monitor made its ticker before the first Advance.
	for {
		clk.mu.Lock()
		n := len(clk.tickers)
		clk.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case v := <-out:
			t.Fatalf("%s: got %v, want no change", what, v)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for range 5 {
		clk.Advance(every)
	}
	quiet("port answering")
	lastOK := clk.Now()
	l.Close()
	for clk.Now().Sub(lastOK) < after-every {
		clk.Advance(every)
		quiet("before unhealthy_after")
	}
	clk.Advance(every) // exactly unhealthy_after since the last answer
	select {
	case v := <-out:
		if v {
			t.Fatal("got healthy, want unhealthy")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("not unhealthy at %v since the last answer", clk.Now().Sub(lastOK))
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	serve(l2)
	clk.Advance(every)
	select {
	case v := <-out:
		if !v {
			t.Fatal("got unhealthy, want healthy again")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not healthy at the first answer")
	}
}
