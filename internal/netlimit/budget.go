package netlimit

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RaiseFileLimit raises the soft open-file limit to the hard one and
// returns both as they are afterwards.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return r.Cur, r.Max, fmt.Errorf("raise the open-file limit from %d to %d: %w", r.Cur, r.Max, err)
		}
		r = want
	}
	return r.Cur, r.Max, nil
}

// FileLimit returns the soft open-file limit.
func FileLimit() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 1024
	}
	return r.Cur
}

// DefaultReserve is how many descriptors a Budget keeps free for limit:
// a quarter, at least 128 and at most 4096.
func DefaultReserve(limit int) int {
	return min(max(limit/4, 128), 4096)
}

// sampleEvery bounds how often a Budget counts the open descriptors.
const sampleEvery = 100 * time.Millisecond

// Budget is the descriptors every network surface of a process shares. A
// surface takes descriptors for a connection with TryAcquire and gives them
// back with Release. The budget refuses once the surfaces hold limit-reserve
// descriptors, or once the process as a whole (counted from /proc/self/fd)
// would leave less than half the reserve free: so the store and the checker,
// which do not ask, always find descriptors.
type Budget struct {
	limit, reserve int
	held           atomic.Int64

	mu         sync.Mutex
	sampledAt  time.Time
	sampled    int   // descriptors open at sampledAt (-1: cannot count)
	heldAt     int64 // held at sampledAt
	freed      chan struct{}
	countOpen  func() int
	refusedFDs atomic.Uint64
}

// NewBudget returns a budget of limit descriptors keeping reserve free.
// Call SetAside before any surface uses it.
func NewBudget(limit, reserve int) *Budget {
	return &Budget{limit: limit, reserve: min(reserve, limit), countOpen: countOpenFDs}
}

// ProcessBudget returns a budget of the process's soft open-file limit with
// the DefaultReserve.
func ProcessBudget() *Budget {
	l := int(min(FileLimit(), 1<<30))
	return NewBudget(l, DefaultReserve(l))
}

// SetAside adds n to the reserve, for a surface that must never be starved
// by the others (the HTTP API): that surface is made without a budget, with
// a cap of n.
func (b *Budget) SetAside(n int) { b.reserve = min(b.reserve+n, b.limit) }

// Limit and Reserve are the budget's settings; Held is what surfaces hold.
func (b *Budget) Limit() int   { return b.limit }
func (b *Budget) Reserve() int { return b.reserve }
func (b *Budget) Held() int    { return int(b.held.Load()) }

// Open returns the number of descriptors open at the last sample (-1 when
// they cannot be counted).
func (b *Budget) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sampleLocked(time.Now())
	return b.sampled
}

// Available is how many more descriptors surfaces may take.
func (b *Budget) Available() int { return b.limit - b.reserve - int(b.held.Load()) }

// TryAcquire takes n descriptors, or reports false when the budget cannot
// spare them.
func (b *Budget) TryAcquire(n int) bool {
	if b == nil {
		return true
	}
	if b.held.Add(int64(n)) > int64(b.limit-b.reserve) {
		b.held.Add(-int64(n))
		return false
	}
	if !b.processFits(0) {
		b.held.Add(-int64(n))
		b.refusedFDs.Add(1)
		return false
	}
	return true
}

// Fits reports whether n more descriptors would fit now, taking nothing.
func (b *Budget) Fits(n int) bool {
	if b == nil {
		return true
	}
	return int(b.held.Load())+n <= b.limit-b.reserve && b.processFits(n)
}

// processFits reports whether the process as a whole, with extra more
// descriptors, leaves at least half the reserve free (by the last sample,
// plus what surfaces took since).
func (b *Budget) processFits(extra int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sampleLocked(time.Now())
	return b.sampled < 0 || b.sampled+int(b.held.Load()-b.heldAt)+extra < b.limit-b.reserve/2
}

// Release gives back n descriptors and wakes surfaces waiting for them.
func (b *Budget) Release(n int) {
	if b == nil {
		return
	}
	b.held.Add(-int64(n))
	b.mu.Lock()
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}

// Freed returns a channel closed at the next Release.
func (b *Budget) Freed() <-chan struct{} {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freed == nil {
		b.freed = make(chan struct{})
	}
	return b.freed
}

func (b *Budget) sampleLocked(now time.Time) {
	if !b.sampledAt.IsZero() && now.Sub(b.sampledAt) < sampleEvery {
		return
	}
	b.sampledAt = now
	b.heldAt = b.held.Load()
	b.sampled = b.countOpen()
}

// countOpenFDs counts the entries of /proc/self/fd, or returns -1.
func countOpenFDs() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	return n - 1 // the directory itself
}
