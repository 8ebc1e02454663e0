package seed

import (
	"net/netip"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

// Kinds of Event, in the order they happen.
const (
	// EventResolved: Host resolved to Addrs (in the order they are tried).
	EventResolved EventKind = iota + 1
	// EventAttempt: a connection attempt to Addr started.
	EventAttempt
	// EventFailed: the attempt to Addr failed with Err after Took.
	EventFailed
	// EventCancelled: the attempt to Addr was stopped because another won
	// (or the dial was given up).
	EventCancelled
	// EventConnected: the attempt to Addr won after Took.
	EventConnected
	// EventIdentity: the node Node answered its identity at Addr; its own
	// address is Access, and Balancer says a load balancer or NAT stands
	// between (Addr is not one of the node's addresses).
	EventIdentity
	// EventNodeAdded and EventNodeRemoved: the cluster's node map changed.
	EventNodeAdded
	EventNodeRemoved
	// EventReseed: the node map is empty and the cluster goes back to its
	// seeds (Err says why it was seeding again, when it failed).
	EventReseed
	// EventTend: tend round Round finished with Nodes nodes.
	EventTend
)

var kindNames = map[EventKind]string{
	EventResolved: "resolved", EventAttempt: "attempt", EventFailed: "failed",
	EventCancelled: "cancelled", EventConnected: "connected", EventIdentity: "identity",
	EventNodeAdded: "node-added", EventNodeRemoved: "node-removed", EventReseed: "reseed",
	EventTend: "tend",
}

// String names the kind.
func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event is one step of a dial or of a cluster's life, for WithTrace and
// Config.Trace. Which fields are set depends on Kind.
type Event struct {
	Kind EventKind
	// Host and Addrs: the name resolved and its addresses (EventResolved).
	Host  string
	Addrs []netip.AddrPort
	// Addr is the address an attempt or identity request went to.
	Addr netip.AddrPort
	// Elapsed is the time since the dial started; Took is the time the
	// attempt (or resolution) itself took.
	Elapsed time.Duration
	Took    time.Duration
	Err     error
	// Node, Access and Balancer describe a node (EventIdentity,
	// EventNodeAdded, EventNodeRemoved).
	Node     string
	Access   netip.AddrPort
	Balancer bool
	// Round and Nodes report a tend round (EventTend).
	Round int
	Nodes int
}
