package ha

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// The lease margin follows the store's measured round trip: a slow store
// (a busy machine) widens it, so late renewals are not taken for a lost
// lease, and it never exceeds half the ttl nor falls below the floor.
func TestLeaseMarginFollowsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ttl, rtt, want time.Duration
	}{
		{time.Second, 0, minLeaseMargin},
		{time.Second, 2 * time.Millisecond, minLeaseMargin},
		{time.Second, 50 * time.Millisecond, 100 * time.Millisecond},
		{time.Second, 200 * time.Millisecond, 400 * time.Millisecond},
		{time.Second, 2 * time.Second, 500 * time.Millisecond},
		{3 * time.Second, time.Second, 1500 * time.Millisecond},
	} {
		if got := leaseMargin(tc.ttl, tc.rtt); got != tc.want {
			t.Errorf("leaseMargin(%v, %v): got %v, want %v", tc.ttl, tc.rtt, got, tc.want)
		}
	}
	// The case of the report: lease_ttl 1s, renewals heard 825 ms apart on a
	// loaded machine whose store answers in about 60 ms: not a lost lease.
	if silent, ttl := 825*time.Millisecond, time.Second; silent > ttl-leaseMargin(ttl, 60*time.Millisecond) {
		t.Errorf("825ms of silence at a 60ms round trip counted as a lost lease")
	}
}

// manualClock is a member's clock that moves only when the test says.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A preferred member that comes back takes the role exactly when
// preempt_delay has passed on its clock: not a moment before, however long
// the wall clock runs meanwhile.
func TestPreemptDelayOnClock(t *testing.T) {
	e := newEnv(t)
	e.group(api.Group{Name: "lb", Members: members(151, 150), PreemptDelay: api.Duration(5 * time.Second)})
	e.start("lb2", nil)
	e.waitActive("lb", addr2, 5*time.Second)

	clk := &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(e.ctx)
	logs := &syncBuffer{}
	m := New(Options{Name: "lb1", Server: "srv-lb1", Store: e.st, Snapshots: e.w, Probe: tcpProbe, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// lb1 starts its preempt_delay at clock 0.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "preempting after preempt_delay"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lb1 never started its preempt_delay:\n%s", logs.String())
		}
	}
	clk.Advance(5*time.Second - time.Millisecond)
	time.Sleep(300 * time.Millisecond) // several more ticks, 1ms short of the delay
	if a := e.w.Current().Role("lb"); a == nil || a.Member != "lb2" {
		t.Fatalf("role %+v 1ms before preempt_delay on lb1's clock, want lb2 still", a)
	}
	clk.Advance(time.Millisecond)
	e.waitActive("lb", addr1, 5*time.Second)
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
