package store

import (
	"testing"
	"time"
)

// The round-trip estimate rises at once with a slow answer and halves every
// half-life after; the silent-watch limit follows it, never below 1 s.
func TestRoundTripsDecay(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRoundTrips(func() time.Time { return now })
	if got := r.get(); got != 0 {
		t.Fatalf("fresh: got %v, want 0", got)
	}
	r.observe(5 * time.Millisecond)
	r.observe(400 * time.Millisecond)
	r.observe(10 * time.Millisecond) // a fast answer does not pull it down at once
	if got := r.get(); got != 400*time.Millisecond {
		t.Fatalf("after a slow answer: got %v, want 400ms", got)
	}
	now = now.Add(latencyHalfLife)
	if got := r.get(); got != 200*time.Millisecond {
		t.Fatalf("one half-life later: got %v, want 200ms", got)
	}
	now = now.Add(10 * latencyHalfLife)
	if got := r.get(); got > time.Millisecond {
		t.Fatalf("eleven half-lives later: got %v, want about 0", got)
	}
	for _, tc := range []struct{ rtt, want time.Duration }{
		{0, time.Second},
		{100 * time.Millisecond, time.Second},
		{250 * time.Millisecond, time.Second},
		{600 * time.Millisecond, 2400 * time.Millisecond},
	} {
		if got := silentLimit(tc.rtt); got != tc.want {
			t.Errorf("silentLimit(%v): got %v, want %v", tc.rtt, got, tc.want)
		}
	}
}

// A load's page may take loadPageTimeout, or loadPageRTTs measured round
// trips on a store measured slower than that allows.
func TestPageTimeoutFollowsRoundTrip(t *testing.T) {
	for _, tc := range []struct{ rtt, want time.Duration }{
		{0, loadPageTimeout},
		{100 * time.Millisecond, loadPageTimeout},
		{loadPageTimeout / loadPageRTTs, loadPageTimeout},
		{time.Second, 4 * time.Second},
	} {
		if got := pageTimeout(tc.rtt); got != tc.want {
			t.Errorf("pageTimeout(%v) = %v, want %v", tc.rtt, got, tc.want)
		}
	}
}
