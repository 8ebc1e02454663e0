package netlimit

import (
	"sync"
	"sync/atomic"
	"time"
)

// Reason says why a surface turned a connection away.
type Reason string

// Reasons a connection is refused, evicted or waits.
const (
	// ReasonCap: the surface holds its maximum of connections.
	ReasonCap Reason = "cap"
	// ReasonBudget: the process's descriptor budget has nothing to spare.
	ReasonBudget Reason = "budget"
	// ReasonEvicted: the oldest idle connection was closed to make room.
	ReasonEvicted Reason = "evicted"
	// ReasonPaused: accepting paused at the cap (clients wait in the
	// kernel's backlog).
	ReasonPaused Reason = "paused"
)

// Surface is one cap of connections (the HTTP API, DNS over TCP, the
// balancer), each connection costing PerConn descriptors of a shared Budget.
type Surface struct {
	name    string
	max     atomic.Int64
	perConn int
	budget  *Budget

	active       atomic.Int64
	refused      [4]atomic.Uint64 // by reasonIndex
	acceptErrors atomic.Uint64

	mu    sync.Mutex
	freed chan struct{}
}

var reasons = [...]Reason{ReasonCap, ReasonBudget, ReasonEvicted, ReasonPaused}

func reasonIndex(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return 0
}

// NewSurface returns a surface named name (the metrics' surface label) of
// at most max connections (0: only the budget bounds it), each taking
// perConn descriptors of b (nil: no budget).
func NewSurface(name string, max, perConn int, b *Budget) *Surface {
	s := &Surface{name: name, perConn: max1(perConn), budget: b}
	s.max.Store(int64(max))
	return s
}

func max1(n int) int { return max(n, 1) }

// Name is the surface's name.
func (s *Surface) Name() string { return s.name }

// Max is the cap (0: none but the budget's).
func (s *Surface) Max() int { return int(s.max.Load()) }

// SetMax changes the cap; connections above a lowered cap stay.
func (s *Surface) SetMax(n int) { s.max.Store(int64(n)); s.wake() }

// Active is the number of connections held.
func (s *Surface) Active() int { return int(s.active.Load()) }

// Refused returns how many connections were turned away for r.
func (s *Surface) Refused(r Reason) uint64 { return s.refused[reasonIndex(r)].Load() }

// Count records one connection turned away (or one pause) for r.
func (s *Surface) Count(r Reason) { s.refused[reasonIndex(r)].Add(1) }

// TryAcquire takes a slot for one connection, or says why it cannot.
func (s *Surface) TryAcquire() (bool, Reason) {
	if m := s.max.Load(); s.active.Add(1) > m && m > 0 {
		s.active.Add(-1)
		return false, ReasonCap
	}
	if !s.budget.TryAcquire(s.perConn) {
		s.active.Add(-1)
		return false, ReasonBudget
	}
	return true, ""
}

// Room reports whether a TryAcquire would likely succeed now, without
// taking anything: loops that serve many ports wait for room and then accept,
// so that an idle port never holds a slot.
func (s *Surface) Room() bool {
	if m := s.max.Load(); m > 0 && s.active.Load() >= m {
		return false
	}
	return s.budget.Fits(s.perConn)
}

// Release gives a slot back.
func (s *Surface) Release() {
	s.active.Add(-1)
	s.budget.Release(s.perConn)
	s.wake()
}

func (s *Surface) wake() {
	s.mu.Lock()
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
	s.mu.Unlock()
}

// recheckEvery bounds a Wait when nothing is released.
const recheckEvery = time.Second

// Wait returns once a slot of the surface or descriptors of the budget may
// have freed (true), or when stop is closed (false). Callers try again.
func (s *Surface) Wait(stop <-chan struct{}) bool {
	s.mu.Lock()
	if s.freed == nil {
		s.freed = make(chan struct{})
	}
	mine := s.freed
	s.mu.Unlock()
	bf := s.budget.Freed()
	if s.Room() { // freed before the channels were taken
		return true
	}
	// Descriptors the rest of the process frees signal nothing: look again
	// after recheckEvery.
	t := time.NewTimer(recheckEvery)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-mine:
		return true
	case <-bf:
		return true
	case <-stop:
		return false
	}
}
