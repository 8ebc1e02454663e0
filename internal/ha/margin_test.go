package ha

import (
	"testing"
	"time"
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
