package lb

import (
	"net/netip"

	"github.com/seamark/seamark/api"
)

// loopbackUpstreams are the upstreams trusted to send PROXY headers when a
// listener names none: only a balancer on this machine.
var loopbackUpstreams = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// trustedUpstream says whether a PROXY header from peer may be believed.
func trustedUpstream(from []netip.Prefix, peer netip.Addr) bool {
	if len(from) == 0 {
		from = loopbackUpstreams
	}
	return inAny(from, peer)
}

// allowed applies a listener's deny list, then its allow list, to a client.
func allowed(l *api.Listener, client netip.Addr) bool {
	if len(l.Deny) > 0 && inAny(l.Deny, client) {
		return false
	}
	return len(l.Allow) == 0 || inAny(l.Allow, client)
}

// inAny says whether a is in one of ps; an IPv4-mapped IPv6 address
// matches IPv4 networks.
func inAny(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
