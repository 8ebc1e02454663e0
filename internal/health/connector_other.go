//go:build !linux

package health

import (
	"net/netip"
	"time"
)

// connector is Linux's epoll loop of tcp probes; elsewhere tcp probes use
// the net package's dialer.
type connector struct{}

type probeID struct{}

func (c *connector) supported(netip.AddrPort) bool { return false }

func (c *connector) start(netip.AddrPort, time.Duration, bool, func(Result)) (probeID, bool) {
	panic("health: no tcp connector on this system")
}

func (c *connector) cancel(probeID) bool { return false }

func (c *connector) close() {}
