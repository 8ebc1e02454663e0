package lb

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/seamark/seamark/api"
)

// parkAfter is how long a connection moves nothing before its relays
// park: parkPasses of the reaper. Once releaseAfter connections parked,
// the freed goroutine stacks (stackEstimate each) go back to the OS on the
// next pass, at most every releaseEvery (two collections each time): else
// Go keeps them until collections it seldom runs on an idle server. The
// collections are process-wide and cost about the live heap, so they run
// only when the stacks to release are at least 1/releaseShare of it: a
// server that holds a large registry does not mark its whole heap twice
// to give back a few megabytes.
const (
	parkAfter     = 500 * time.Millisecond
	parkPasses    = int(parkAfter / reapEvery)
	releaseAfter  = 256
	releaseEvery  = 5 * time.Second
	releaseShare  = 16
	stackEstimate = 8 << 10
)

// heapLive is the heap the last collection marked live.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// worthReleasing reports whether parked connections' stacks are worth two
// process-wide collections.
func worthReleasing(parked int, live uint64) bool {
	return parked >= releaseAfter && uint64(parked)*stackEstimate*releaseShare >= live
}

// running reports whether a relay goroutine runs for c.
func (c *conn) running() bool {
	return c.dir[0].state.Load() == dirRunning || c.dir[1].state.Load() == dirRunning
}

// reap runs every reapEvery: it samples connections (byte counters and idle
// timeouts), cuts connections of backends that went down when the listener
// says cut, ends drains, and retries ports that could not bind.
func (s *Server) reap(now time.Time) {
	s.mu.Lock()
	ports := make([]*port, 0, len(s.ports)+len(s.draining))
	for _, p := range s.ports {
		if p.err != nil && now.After(p.retryAt) {
			s.listenLocked(p)
		}
		if p.stats.active.Load() > 0 { // a port without connections has nothing to sample
			ports = append(ports, p)
		}
	}
	for p := range s.draining {
		if p.stats.active.Load() == 0 {
			delete(s.draining, p)
			continue
		}
		if now.After(p.drainUntil) && now.After(p.recutAt) {
			// Once per port at the info level; a cut is owned by s.wg,
			// and the next comes only recutEvery later.
			if p.recutAt.IsZero() {
				s.log.Info("drain timeout: cutting connections", "listener", p.key.name, "addr", p.key.addr.String(), "connections", p.stats.active.Load())
			}
			p.recutAt = now.Add(recutEvery)
			s.cuts.Add(1)
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.cutAll(p) }()
		}
		ports = append(ports, p)
	}
	s.mu.Unlock()
	// Stacks of relays parked on the last pass go back to the OS now,
	// rather than when the next collection lowers the heap's goal.
	if s.releaseStacks {
		s.releaseStacks = false
		s.lastRelease = now
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// The first collection frees the dead goroutines' stacks, the
			// second their spans; then the heap goes back to the OS.
			runtime.GC()
			debug.FreeOSMemory()
		}()
	}
	parkedNow := 0
	for _, p := range ports {
		spec := p.spec.Load()
		idle := spec.IdleTimeout.D()
		every := min(max(idle/4, reapEvery), 5*time.Second)
		cutDown := spec.OnBackendDown == api.BackendDownCut
		drain := spec.DrainTimeout.D()
		p.mu.Lock()
		var cut, park []*conn
		var reasons []*string
		for c := range p.conns {
			// Park a connection whose relays moved nothing for parkAfter.
			// Asked again every parkAfter while a relay still runs (one
			// busy writing parks when it next reads).
			if c.moved.Swap(false) {
				c.quiet = 0
			} else if c.quiet++; c.quiet%parkPasses == 0 && c.running() {
				park = append(park, c)
			}
			if c.lastActive.IsZero() {
				c.lastActive, c.nextSample = now, now.Add(every)
				continue
			}
			if cutDown {
				if since := c.be.downSince.Load(); since != 0 && now.Sub(time.Unix(0, since)) > drain {
					cut = append(cut, c)
					reasons = append(reasons, &endBackendDown)
					continue
				}
			}
			if now.Before(c.nextSample) {
				continue
			}
			c.nextSample = now.Add(every)
			if s.account(c) {
				c.lastActive = now
			} else if idle > 0 && now.Sub(c.lastActive) >= idle {
				cut = append(cut, c)
				reasons = append(reasons, &endIdle)
			}
		}
		p.mu.Unlock()
		for i, c := range cut {
			s.cut(c, reasons[i])
		}
		for _, c := range park {
			s.requestPark(c)
		}
		parkedNow += len(park)
	}
	s.parkedSince += parkedNow
	if s.parkedSince >= releaseAfter && now.Sub(s.lastRelease) >= releaseEvery && worthReleasing(s.parkedSince, heapLive()) {
		s.releaseStacks, s.parkedSince = true, 0
	}
}
