package ha

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// campaign is one member's campaign in one group. Its state is touched by
// its own goroutine only, except role (read by Roles).
type campaign struct {
	m     *Member
	log   *slog.Logger
	group string
	since time.Time

	mu   sync.Mutex
	role string

	lease       *store.Lease
	retryAt     time.Time
	backoff     time.Duration
	fencing     int64 // our claim's revision while we hold the role
	own         api.Candidacy
	ownRev      int64 // revision of our last candidacy write
	written     bool
	betterSince time.Time
	lastAssert  time.Time
	newLease    bool // on_active runs again after a new lease (store reconnect)

	renewing  atomic.Pointer[store.Lease] // the lease renewWhileActive confirms (fast failover, active)
	claimedAt time.Time                   // when the winning claim was sent: the store knew the lease live then

	trackSpec []api.Track
	tracks    *trackSet
	wake      chan struct{}
	writes    sync.WaitGroup // event log appends under way
	closes    sync.WaitGroup // lost leases being revoked
}

func newCampaign(m *Member, g *api.Group) *campaign {
	return &campaign{
		m: m, log: m.log.With("group", g.Name), group: g.Name, since: time.Now(),
		role: api.RoleStandby, wake: make(chan struct{}, 1),
	}
}

func (c *campaign) roleNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.role
}

func (c *campaign) run(ctx context.Context) {
	defer func() {
		if c.tracks != nil {
			c.tracks.stop()
		}
		if c.m.frozen.Load() {
			c.handOver()
		} else {
			c.stepDown()
		}
		c.writes.Wait()
		c.closes.Wait()
	}()
	wctx, stopWatch := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); c.renewWhileActive(wctx) }()
	defer func() { stopWatch(); <-renewed }()
	tick := time.NewTicker(c.m.o.Tick)
	defer tick.Stop()
	snap := c.m.o.Snapshots.Current()
	for {
		c.step(ctx, snap, c.m.o.Now())
		select {
		case <-ctx.Done():
			return
		case <-c.m.o.Snapshots.Next(snap):
			snap = c.m.o.Snapshots.Current()
		case <-tick.C:
		case <-c.wake:
		}
	}
}

// leaseMargin is how long before the store could expire the lease a member
// already assumes it lost. The lease is renewed when the store receives the
// keep-alive, up to a round trip before the member hears of it, so the
// margin is the store's measured round trip (a high, decaying estimate),
// doubled, at least minLeaseMargin and at most half the ttl. A fixed margin
// made a member on a busy machine, whose renewals merely arrived late, fault
// although the store still held its lease.
func leaseMargin(ttl, rtt time.Duration) time.Duration {
	return min(max(2*rtt, minLeaseMargin), ttl/2)
}

const minLeaseMargin = 20 * time.Millisecond

// step brings the campaign in line with snap: lease, candidacy, role, hooks.
func (c *campaign) step(ctx context.Context, snap *registry.Snapshot, now time.Time) {
	if c.m.frozen.Load() {
		return // a successor campaigns as this member (Freeze)
	}
	g, ok := snap.Group(c.group)
	if !ok {
		return
	}
	var me api.Member
	for _, m := range g.Members {
		if m.Name == c.m.o.Name {
			me = m
		}
	}
	if tracks := ownTracks(g.Track, me.Address); !reflect.DeepEqual(c.trackSpec, tracks) {
		if c.tracks != nil {
			c.tracks.stop()
		}
		c.trackSpec = tracks
		c.tracks = startTracks(ctx, tracks, c.m.o.Probe, c.wake, c.log)
	}
	ttl := g.LeaseTTL.D()
	if ttl <= 0 {
		ttl = time.Second
	}

	// The lease: lost when the store says so, or when the store has not
	// confirmed it for ttl minus a margin (cut off: step down on our own,
	// before the store could give the role to another).
	if c.lease != nil {
		lost := ""
		select {
		case <-c.lease.Done():
			lost = "the store ended the lease"
		default:
			if silent := time.Since(c.lease.Renewed()); silent > c.lease.TTL()-leaseMargin(c.lease.TTL(), c.lease.RoundTrip()) {
				// The last chance may not outlast the lease: it ends one
				// round trip before the store could expire it (Renewed is
				// when the answer came, up to a round trip after the
				// request the store counts from).
				rtt := c.lease.RoundTrip()
				if !c.lastChance(ctx, min(max(RenewEvery, 2*rtt), c.lease.TTL()-silent-rtt)) {
					lost = fmt.Sprintf("the store has not confirmed the lease for %v", silent.Round(time.Millisecond))
				}
			} else if c.fencing != 0 && g.FastFailoverOn() {
				lost = c.fence(ctx, g, me, now)
			}
		}
		if lost != "" {
			c.log.Warn("lease lost: stepping down", "reason", lost)
			old := c.lease
			c.renewing.Store(nil)
			// Revoking may wait for an unreachable store (2 s at most):
			// not here, but run waits for it before it returns.
			c.closes.Add(1)
			go func() { defer c.closes.Done(); old.Close() }()
			c.setRole(g, me, api.RoleFault, lost) // the hook sees the fencing revision given up
			c.lease, c.fencing, c.written = nil, 0, false
		}
	}
	if c.lease == nil {
		if now.Before(c.retryAt) {
			return
		}
		lctx, cancel := context.WithTimeout(ctx, ttl)
		l, err := c.m.o.Store.GrantLease(lctx, ttl)
		cancel()
		if err != nil {
			c.backoff = min(max(2*c.backoff, 100*time.Millisecond), 2*time.Second)
			c.retryAt = now.Add(c.backoff)
			c.setRole(g, me, api.RoleFault, "store unreachable: "+err.Error())
			return
		}
		c.lease, c.backoff, c.newLease = l, 0, true
		c.log.Info("campaigning", "lease", fmt.Sprintf("%x", l.ID()), "ttl", l.TTL())
	}

	eff, fault, reason := effective(me.Priority, c.tracks.results())
	own := api.Candidacy{
		Group: c.group, Member: me.Name, Address: me.Address, Priority: me.Priority,
		Effective: eff, Fault: fault, Reason: reason, Role: c.roleNow(), Server: c.m.o.Server, Since: c.since,
		Endpoint: c.endpoint(me), Locality: c.m.o.Locality,
	}
	// Be seen before claiming anything.
	if !c.written || c.own.Effective != own.Effective || c.own.Fault != own.Fault || c.own.Address != own.Address {
		if !c.writeCandidacy(ctx, own) {
			return
		}
	}

	role := snap.Role(c.group)
	holding := c.holds(role, snap.Revision)
	v := decide(g, role, snap.Candidates(c.group), &own, holding)
	if v == claim && snap.Revision < c.ownRev {
		// Claim only once the snapshot shows our own candidacy: then it
		// also shows every member that bid before us.
		v = stay
	}
	if v == waitBest {
		if c.betterSince.IsZero() {
			c.betterSince = now
			c.log.Info("better than the active member: preempting after preempt_delay", "active", role.Member, "delay", g.PreemptDelay.D())
		}
		if now.Sub(c.betterSince) >= g.PreemptDelay.D() {
			v = claim
		}
	} else {
		c.betterSince = time.Time{}
	}
	switch v {
	case claim:
		var expect int64
		if role != nil {
			expect = role.Fencing
		}
		cctx, cancel := context.WithTimeout(ctx, ttl)
		rev, won, err := c.m.o.Store.ClaimRole(cctx, api.Role{Group: c.group, Member: me.Name, Address: me.Address, Since: now}, c.lease, expect)
		cancel()
		switch {
		case err != nil:
			c.log.Warn("claim failed", "err", err)
		case won:
			c.fencing, holding = rev, true
			c.betterSince = time.Time{}
		}
	case release:
		c.releaseRole(ctx, ttl)
		holding = false
	}

	next := api.RoleStandby
	switch {
	case holding:
		next = api.RoleActive
	case fault:
		next = api.RoleFault
	}
	why := reason
	if next == api.RoleActive && why == "" {
		why = "highest effective priority"
	}
	c.setRenewing(g, next, now)
	changed := c.setRole(g, me, next, why)
	if !changed && next == api.RoleActive && (c.newLease || now.Sub(c.lastAssert) >= g.ReassertInterval.D()) {
		// Level-triggered: whatever someone else did to the address in the
		// meantime, on_active puts it back.
		c.log.Info("reasserting the active role", "fencing", c.fencing, "new_lease", c.newLease)
		c.fire(g, me, api.RoleActive, "reassert")
		c.lastAssert = now
	}
	c.newLease = false
	own.Role = next
	if c.own.Role != own.Role {
		c.writeCandidacy(ctx, own)
	}
}

// endpoint is where peers probe this member: the server's HTTP address, with
// the member's address for an unspecified host.
func (c *campaign) endpoint(me api.Member) string {
	ep := c.m.o.Endpoint
	if !ep.IsValid() {
		return ""
	}
	if ep.Addr().IsUnspecified() {
		ep = netip.AddrPortFrom(me.Address, ep.Port())
	}
	return ep.String()
}

// ownTracks resolves tracked checks whose address has no host (":443") to
// the member's own address.
func ownTracks(tracks []api.Track, own netip.Addr) []api.Track {
	out := make([]api.Track, len(tracks))
	for i, t := range tracks {
		if port, ok := strings.CutPrefix(t.Check.Address, ":"); ok {
			t.Check.Address = net.JoinHostPort(own.String(), port)
		}
		out[i] = t
	}
	return out
}

// holds reports whether this campaign holds the role: its claim is the
// snapshot's role record, or the snapshot is older than the claim.
func (c *campaign) holds(role *api.Role, rev int64) bool {
	if c.fencing == 0 {
		return false
	}
	if role != nil && role.Fencing == c.fencing {
		return true
	}
	if rev < c.fencing {
		return true // the snapshot has not caught up with our claim yet
	}
	c.log.Info("role taken by another member", "now", roleMember(role))
	c.fencing = 0
	return false
}

func roleMember(r *api.Role) string {
	if r == nil {
		return "(none)"
	}
	return r.Member
}

func (c *campaign) writeCandidacy(ctx context.Context, own api.Candidacy) bool {
	wctx, cancel := context.WithTimeout(ctx, c.lease.TTL())
	defer cancel()
	rev, err := c.m.o.Store.PutCandidacy(wctx, own, c.lease)
	if err != nil {
		c.log.Warn("write candidacy", "err", err)
		return false
	}
	c.own, c.written, c.ownRev = own, true, rev
	return true
}

func (c *campaign) releaseRole(ctx context.Context, ttl time.Duration) {
	if c.fencing == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
	defer cancel()
	if _, err := c.m.o.Store.ReleaseRole(rctx, c.group, c.fencing); err != nil {
		c.log.Warn("release role", "err", err)
	}
	c.fencing = 0
}

// setRole records a role change: log, event log and hook. It reports
// whether the role changed.
func (c *campaign) setRole(g *api.Group, me api.Member, role, reason string) bool {
	c.mu.Lock()
	old := c.role
	c.role = role
	c.mu.Unlock()
	if old == role {
		return false
	}
	c.log.Info("role changed", "old", old, "new", role, "reason", reason, "fencing", c.fencing)
	if role == api.RoleActive {
		c.lastAssert = c.m.o.Now()
	}
	e := c.fire(g, me, role, reason)
	c.writes.Add(1)
	go func() {
		defer c.writes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.m.o.Store.AppendEvent(ctx, e, c.m.o.Server+"-"+c.group+"-"+me.Name)
	}()
	return true
}

// fire runs the group's hook for role with the event.
func (c *campaign) fire(g *api.Group, me api.Member, role, reason string) api.Event {
	e := api.Event{
		Time: time.Now(), Kind: "role", Group: c.group, Member: me.Name, Address: me.Address.String(),
		Role: role, Fencing: c.fencing, Reason: reason, Checker: c.m.o.Server,
	}
	hook := ""
	switch role {
	case api.RoleActive:
		hook = g.Hooks.OnActive
	case api.RoleStandby:
		hook = g.Hooks.OnStandby
	case api.RoleFault:
		hook = g.Hooks.OnFault
	}
	if hook != "" && c.m.o.Hooks != nil {
		c.m.o.Hooks.FireFor(g.Source, hook, e)
	}
	return e
}

// handOver ends a frozen campaign: it keeps the lease (and with it the role
// record) until the snapshot shows the successor's own candidacy and, if
// this campaign held the role, the successor's claim on it; then revokes it.
func (c *campaign) handOver() {
	if c.lease == nil {
		return
	}
	wait := 2 * c.lease.TTL()
	deadline := time.Now().Add(wait)
	snap := c.m.o.Snapshots.Current()
	for time.Now().Before(deadline) {
		took := false
		for _, cd := range snap.Candidates(c.group) {
			if cd.Member == c.m.o.Name && !cd.Since.Equal(c.since) {
				took = true
			}
		}
		if r := snap.Role(c.group); took && (c.fencing == 0 || r == nil || r.Fencing != c.fencing) {
			c.log.Info("handed over to the new process", "fencing", c.fencing)
			break
		}
		select {
		case <-c.m.o.Snapshots.Next(snap):
			snap = c.m.o.Snapshots.Current()
		case <-time.After(time.Until(deadline)):
		}
	}
	if time.Now().After(deadline) {
		c.log.Warn("the new process did not take the member over in time; letting go", "waited", wait)
	}
	c.lease.Close()
	c.lease = nil
}

// stepDown ends the campaign gracefully: the role first (a standby takes it
// at once), then the candidacy and the lease.
func (c *campaign) stepDown() {
	if c.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c.fencing != 0 {
		if _, err := c.m.o.Store.ReleaseRole(ctx, c.group, c.fencing); err != nil {
			c.log.Warn("release role on stop", "err", err)
		} else {
			c.log.Info("released the active role", "fencing", c.fencing)
		}
		c.fencing = 0
	}
	c.m.o.Store.DeleteCandidacy(ctx, c.group, c.m.o.Name)
	c.lease.Close()
	c.lease = nil
}
