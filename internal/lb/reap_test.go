package lb

import "testing"

// The reaper gives parked stacks back only when they are worth two
// process-wide collections: at least releaseAfter of them, and at least a
// sixteenth of the live heap.
func TestWorthReleasing(t *testing.T) {
	for _, c := range []struct {
		parked int
		live   uint64
		want   bool
	}{
		{255, 0, false},                   // too few, whatever the heap
		{256, 32 << 20, true},             // 2 MiB of stacks, 32 MiB heap
		{256, 600 << 20, false},           // the same against a 600 MB registry
		{5000, 600 << 20, true},           // 40 MiB of stacks against it
		{4800, 4800 * 8 << 10 * 16, true}, // exactly a sixteenth
	} {
		if got := worthReleasing(c.parked, c.live); got != c.want {
			t.Errorf("worthReleasing(%d, %d) = %v, want %v", c.parked, c.live, got, c.want)
		}
	}
}
