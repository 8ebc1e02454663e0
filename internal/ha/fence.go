package ha

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
)

// newFencedMetric counts the active member's own step-downs.
func newFencedMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seamark_group_self_fenced_total",
		Help: "Times this server's active member stepped down on its own because the store had not confirmed its lease for the fast-failover fence time, by group and member.",
	}, []string{"group", "member"})
}

// fence is the active member's side of fast failover: once the store has not
// confirmed its lease for FenceAfter it must assume the observers may have
// ended it, and step down (the caller runs on_fault). "" while it may stay.
func (c *campaign) fence(ctx context.Context, g *api.Group, me api.Member, now time.Time) string {
	// A claim written on the lease is a confirmation too: the lease was live
	// in the store when the claim was sent.
	why := fenced(latest(c.lease.Renewed(), c.claimedAt), now, c.lease.RoundTrip())
	if why != "" && c.lastChance(ctx, RenewEvery) {
		return ""
	}
	if why != "" {
		c.m.fenced.WithLabelValues(g.Name, me.Name).Inc()
	}
	return why
}

// lastChance asks the store once more, for at most d, before the member
// steps down because the store has been silent: a process that got no CPU
// for a moment (a loaded machine) finds its confirmation waiting. A lease
// the store confirms now was never revoked (a revocation is final), so the
// role on it never moved, and staying is as safe as after any renewal. A
// store that is really cut off answers nothing: the step-down comes at most
// d later.
func (c *campaign) lastChance(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := c.lease.Renew(rctx); err != nil {
		return false
	}
	c.m.lastChances.Inc()
	return true
}

// setRenewing makes renewWhileActive confirm the lease while the member is
// active in a group with fast failover, and stop otherwise.
func (c *campaign) setRenewing(g *api.Group, role string, now time.Time) {
	if role == api.RoleActive && g.FastFailoverOn() {
		if c.renewing.Swap(c.lease) != c.lease {
			c.claimedAt = now // step's start: no later than the claim was sent
		}
	} else {
		c.renewing.Store(nil)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// renewWhileActive confirms the active member's lease with the store every
// RenewEvery, so that FenceAfter can be short without stepping down on a
// healthy store. It wakes the campaign when a renewal fails (at the latest
// when the fence is due), so the fence is checked at once.
func (c *campaign) renewWhileActive(ctx context.Context) {
	tick := time.NewTicker(RenewEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l := c.renewing.Load()
		if l == nil {
			continue
		}
		// A renewal that cannot get through gives up when the fence is due,
		// so the campaign steps down on time rather than at its next tick.
		due := l.Renewed().Add(fenceAfter(l.RoundTrip()) + time.Millisecond)
		if soon := time.Now().Add(RenewEvery); due.Before(soon) {
			due = soon
		}
		rctx, cancel := context.WithDeadline(ctx, due)
		err := l.Renew(rctx)
		cancel()
		if err != nil {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}
