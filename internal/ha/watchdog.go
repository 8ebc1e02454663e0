package ha

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/api"
)

// Locality names this host and network namespace: two processes with the
// same locality reach each other's loopback addresses.
func Locality() string {
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		if id, err = os.ReadFile("/var/lib/dbus/machine-id"); err != nil {
			return ""
		}
	}
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(id)) + "/" + ns
}

// watchEvery is how often a standby probes the active member's endpoint,
// and deadAfter how many refused connections in a row prove it dead.
const (
	watchEvery = 100 * time.Millisecond
	deadAfter  = 2
)

// watch is the fast path of failover: lease expiry takes lease_ttl and up to
// half a second more, but a member killed on a reachable host refuses
// connections at once. A standby that finds the active member's endpoint
// refusing twice in a row ends the active member's lease; the role record
// goes with it and the best standby claims the role. A timeout proves
// nothing (a partition, a frozen process) and is left to the lease.
func (c *campaign) watch(ctx context.Context) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	refused := 0
	var lastLease int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		snap := c.m.o.Snapshots.Current()
		role := snap.Role(c.group)
		if role == nil || role.Member == c.m.o.Name {
			refused = 0
			continue
		}
		var holder *api.Candidacy
		for _, cand := range snap.Candidates(c.group) {
			if cand.Member == role.Member && cand.Lease == role.Lease {
				holder = cand
			}
		}
		if holder == nil || !c.mayProbe(holder) {
			refused = 0
			continue
		}
		if role.Lease != lastLease {
			refused, lastLease = 0, role.Lease
		}
		if !connRefused(ctx, holder.Endpoint) {
			refused = 0
			continue
		}
		if refused++; refused < deadAfter {
			continue
		}
		c.log.Warn("the active member is dead: its endpoint refuses connections; ending its lease", "active", role.Member, "endpoint", holder.Endpoint, "lease", role.Lease)
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := c.m.o.Store.RevokeLease(rctx, role.Lease); err != nil {
			c.log.Warn("revoke the dead member's lease", "err", err)
		}
		cancel()
		refused = 0
	}
}

// mayProbe reports whether a refused connection to the holder's endpoint
// would prove anything: a loopback endpoint only in our own locality.
func (c *campaign) mayProbe(holder *api.Candidacy) bool {
	ap, err := netip.ParseAddrPort(holder.Endpoint)
	if err != nil || ap.Addr().IsUnspecified() {
		return false
	}
	if ap.Addr().IsLoopback() {
		return holder.Locality != "" && holder.Locality == c.m.o.Locality
	}
	return true
}

// connRefused reports whether a TCP connect to addr is refused outright.
func connRefused(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: 300 * time.Millisecond, KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
