package health

import (
	"context"
	"net/netip"
	"time"

	"github.com/seamark/seamark/api"
)

// Target is one thing to probe: a node of a service, or one address of a
// service's candidate pool.
type Target struct {
	Service string
	// Node is the node's ID, or the candidate's ID (see CandidateID).
	Node string
	// Addr is the address and port probed.
	Addr  netip.AddrPort
	Check api.Check
	// Candidate is set for addresses of a candidate pool.
	Candidate bool
}

// Key identifies a target across snapshots.
func (t Target) Key() string { return t.Service + "/" + t.Node }

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Reason says why, in words an operator reads in the event log:
	// "tcp connect: connection refused", "timeout after 1s",
	// "http: status 503, want 200-399", "ok".
	Reason  string
	Latency time.Duration
	// Local marks a failure of this machine's, not the target's: no
	// descriptor, no local port, no buffer or memory for the socket. Such a
	// result is not a vote: the checker keeps its verdict and says it is
	// degraded.
	Local bool
}

// Prober runs one probe. It must return by ctx's deadline (the check's
// timeout), whatever the target does.
type Prober interface {
	Probe(ctx context.Context, t Target) Result
}
