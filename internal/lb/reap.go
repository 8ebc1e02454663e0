package lb

import (
	"time"

	"github.com/seamark/seamark/api"
)

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
	for _, p := range ports {
		spec := p.spec.Load()
		idle := spec.IdleTimeout.D()
		every := min(max(idle/4, reapEvery), 5*time.Second)
		cutDown := spec.OnBackendDown == api.BackendDownCut
		drain := spec.DrainTimeout.D()
		p.mu.Lock()
		var cut []*conn
		var reasons []*string
		for c := range p.conns {
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
	}
}
