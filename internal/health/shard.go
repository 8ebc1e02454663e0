package health

import (
	"slices"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
)

// Sharding: a checker probes only the targets it owns, the check.replicas
// live checkers that rendezvous hashing places on each node
// (registry.Placement); every server computes the same owners from the
// same snapshot. When the live checkers change, targets move with no gap
// (docs/health.md):
//
//   - a new owner starts probing at once (its first probe within one
//     interval) and writes its verdict as soon as it is sure;
//   - a former owner that is still alive keeps probing and keeps its
//     verdict, which the registry counts in place of an owner that has not
//     written yet, until every owner has written; then it withdraws;
//   - a former owner that died takes its verdicts with its lease; while no
//     verdict counts, the registry holds the node's last decision.

// replace takes the placement of s (with this checker in it, also before
// its own record shows in a snapshot) and reports whether it changed since
// the last sync, so that targets must move.
func (c *Checker) replace(s *registry.Snapshot) bool {
	p := s.Placement()
	if !p.Has(c.o.ID) {
		p = p.With(api.Checker{ID: c.o.ID, Degraded: c.degraded})
	}
	if c.place != nil && p.Equal(c.place) {
		return false
	}
	first := c.place == nil
	c.place = p
	if !first {
		c.log.Info("live checkers changed: targets move", "checkers", p.Len())
	}
	return !first
}

// firstProbe is when a new target's first probe is due: spread over one
// interval, so that thousands of new targets do not fire together, or over
// a quarter of it for targets taken over from a checker that left (nobody
// has probed them since it died).
func (c *Checker) firstProbe(check api.Check) time.Duration {
	if c.moving {
		return jitter(check.Interval.D() / 4)
	}
	return jitter(check.Interval.D())
}

// owns reports whether this checker is one of t's owners.
func (c *Checker) owns(t Target) bool {
	if c.place == nil {
		return true
	}
	return c.place.Owns(c.o.ID, registry.NodeKey(t.Service, t.Node), c.place.K(t.Check))
}

// disown handles a target this checker no longer owns: it is kept, and
// probed, as a handoff until released (true), or removed now (false; the
// caller drops it from its service's map).
func (c *Checker) disown(t *target, v *registry.ServiceView) bool {
	if c.released(t, v) {
		c.remove(t)
		return false
	}
	if !t.handoff {
		t.handoff = true
		c.handoffs[t.Key()] = t
	}
	return true
}

// reown makes a handoff target owned again.
func (c *Checker) reown(t *target) {
	t.handoff = false
	delete(c.handoffs, t.Key())
}

// released reports whether this checker's verdict on t, which it does not
// own, no longer matters: it has none, the node is not served (a candidate
// that is not passing, or gone), it is in maint (no owner probes it), or
// every owner has written its own.
func (c *Checker) released(t *target, v *registry.ServiceView) bool {
	if !t.said || t.paused {
		return true
	}
	n, ok := v.Node(t.Node)
	if !ok {
		return true
	}
	var buf [api.MaxReplicas]string
	for _, o := range c.place.Owners(registry.NodeKey(t.Service, t.Node), c.place.K(t.Check), buf[:0]) {
		if !slices.ContainsFunc(n.Checks, func(v api.Verdict) bool { return v.Checker == o }) {
			return false
		}
	}
	return true
}

// reviewHandoffs releases the handoff targets whose nodes changed in d
// (every one after a change of placement or with no delta).
func (c *Checker) reviewHandoffs(s *registry.Snapshot, d *registry.Delta, all bool) {
	if len(c.handoffs) == 0 {
		return
	}
	check := func(t *target) {
		if v, ok := s.Service(t.Service); ok && c.released(t, v) {
			c.remove(t)
			delete(c.bySvc[t.Service], t.Key())
		}
	}
	if all || d == nil {
		for _, t := range c.handoffs {
			check(t)
		}
		return
	}
	for name, sd := range d.Services {
		if sd.Whole {
			for _, t := range c.bySvc[name] {
				if t.handoff {
					check(t)
				}
			}
			continue
		}
		for _, id := range sd.Nodes {
			if t := c.handoffs[name+"/"+id]; t != nil {
				check(t)
			}
		}
	}
}
