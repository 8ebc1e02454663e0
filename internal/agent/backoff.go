package agent

import (
	"math/rand/v2"
	"time"
)

// backoff spaces retries while no server answers: the delay doubles from min
// up to max, and each delay is drawn from its upper half (jitter), so that
// many agents cut off by one outage do not come back in step.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // in [0, 1); injected by tests
	n        int
}

func newBackoff(lo, hi time.Duration) *backoff {
	return &backoff{min: lo, max: hi, rand: rand.Float64}
}

// next returns the delay before the next attempt and moves one step on.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if d < b.max {
		b.n++
	}
	return d/2 + time.Duration(b.rand()*float64(d/2))
}

// reset starts again from min after a success.
func (b *backoff) reset() { b.n = 0 }
