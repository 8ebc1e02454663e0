package agent

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name string
		rand float64
		want []time.Duration
	}{
		{"least jitter", 0, []time.Duration{50, 100, 200, 400, 500, 500}},
		{"most jitter", 0.999999, []time.Duration{99, 199, 399, 799, 999, 999}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(100*time.Millisecond, time.Second)
			b.rand = func() float64 { return tc.rand }
			for i, w := range tc.want {
				if got := b.next().Truncate(time.Millisecond); got != w*time.Millisecond {
					t.Fatalf("step %d: got %v, want %v", i, got, w*time.Millisecond)
				}
			}
			b.reset()
			if got := b.next().Truncate(time.Millisecond); got != tc.want[0]*time.Millisecond {
				t.Fatalf("after reset: got %v, want %v", got, tc.want[0]*time.Millisecond)
			}
		})
	}
}
