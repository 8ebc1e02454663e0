// Package lb is seamark's TCP load balancer: thousands of listening ports,
// each proxying to the healthy nodes of one service, every change applied
// live.
//
// What it reads: the registry snapshot only. Its listeners (one per port of
// a listener's port range) are the snapshot's listeners; a listener's
// backends are the healthy nodes of its service, with their weights. Each new
// snapshot is diffed against the running set: a new port starts listening, a
// removed one stops accepting and drains its connections for up to its
// drain_timeout, a changed one (balance, timeouts, retries...) takes the new
// settings for its next connections; no other listener is touched. A node
// that leaves the healthy set (down or draining) gets no new connections and
// keeps its open ones (or loses them after drain_timeout with
// on_backend_down: cut).
//
// What it writes: nothing to the store. A failed connect is reported to the
// health checker through the FailureReporter it is given (the passive check
// that moves the node to fast probes), and the next backend is tried, up to
// the listener's retries, before the client notices. Live counters are
// served through Stats and Prometheus metrics.
//
// One epoll set (poller.go) holds every listening socket, as a bare
// descriptor, and every parked connection; one goroutine waits for it in
// Go's netpoller and accepts on ready ports (accept.go), so a port costs no
// goroutine. Each accepted client is an *os.File; handle (conn.go) checks
// it, dials a backend by hand (dial.go) and relays both directions, one
// goroutine each while bytes flow. A connection idle for half a second
// parks: its goroutines end and its sockets wait in the epoll set until one
// has data.
//
// The data path keeps both sides bare sockets and relays them itself
// (relay.go): small messages through a pooled buffer, bulk streams with
// splice(2) through a pooled pipe, and neither held while a connection is
// idle, so an idle connection costs two descriptors. A PROXY header to a
// backend is written before the relay and one from an upstream balancer is
// read exactly (peeked, then consumed), so nothing wraps the connections.
// Byte counters and the idle timeout come from the kernel's TCP_INFO of the
// client socket, sampled by one reaper, not from a counting reader in the
// relay.
//
// Connections of every port together are one netlimit.Surface (surface "lb",
// two descriptors each) of the server's descriptor budget, with an optional
// global cap (Options.MaxConns) beside each listener's max_conns. At a cap a
// port stops accepting (clients wait in the kernel's backlog); it takes
// nothing while it waits, so an idle port never holds a slot.
//
// Upgrade in place: with Options.Handover a port takes the listening socket
// its predecessor process handed over (internal/upgrade) instead of binding,
// and passes its own on; Handoff stops every port accepting (the successor
// holds the kernel's sockets and their backlogs), binds nothing any more and
// drains the open connections up to each listener's drain_timeout.
package lb
