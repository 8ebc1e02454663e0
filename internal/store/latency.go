package store

import (
	"math"
	"sync"
	"time"
)

// roundTrips keeps a high estimate of the store's recent round trip: it rises
// at once to any slower sample and decays toward faster ones with a half-life
// of latencyHalfLife. Liveness margins follow it (the silent-watch breaker,
// ha's lease confirmation), so a machine that is merely slow does not look
// like a store that is gone.
type roundTrips struct {
	now func() time.Time

	mu sync.Mutex
	v  time.Duration // the estimate at the time at
	at time.Time
}

const latencyHalfLife = 10 * time.Second

func newRoundTrips(now func() time.Time) *roundTrips {
	if now == nil {
		now = time.Now
	}
	return &roundTrips{now: now}
}

// decayed is the estimate at t. Called with mu held.
func (r *roundTrips) decayed(t time.Time) time.Duration {
	if r.v == 0 {
		return 0
	}
	age := t.Sub(r.at)
	if age <= 0 {
		return r.v
	}
	return time.Duration(float64(r.v) * math.Exp2(-float64(age)/float64(latencyHalfLife)))
}

// observe adds one measured round trip.
func (r *roundTrips) observe(d time.Duration) {
	if r == nil || d <= 0 {
		return
	}
	t := r.now()
	r.mu.Lock()
	r.v, r.at = max(r.decayed(t), d), t
	r.mu.Unlock()
}

// get is the current estimate.
func (r *roundTrips) get() time.Duration {
	if r == nil {
		return 0
	}
	t := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.decayed(t)
}

// silentLimit is how long a watch stream may answer nothing before it is
// taken for broken: watchSilentAfter, or silentFactor times the store's
// recent round trip when that is longer (a busy machine answers late, not
// never).
func silentLimit(rtt time.Duration) time.Duration {
	return max(watchSilentAfter, silentFactor*rtt)
}

const silentFactor = 4

// RoundTrip is a high estimate of the store's recent round trip (it rises at
// once with a slow answer and halves every 10 s after): the margin a holder
// of a lease keeps between the last confirmation and the lease's end.
func (s *Store) RoundTrip() time.Duration { return s.rtt.get() }

// RoundTrip is the store's RoundTrip (see Store.RoundTrip).
func (l *Lease) RoundTrip() time.Duration { return l.s.rtt.get() }
