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
// the listener's retries, before the client notices; a dial that fails for
// want of descriptors, ports or memory here is not the node's fault and is
// not reported. Live counters are
// served through Stats and Prometheus metrics.
//
// The data path is one relay loop per core (loop.go), each an epoll set
// and the one goroutine that owns it. Every listening socket is in every
// loop's set (poller.go; a port costs no goroutine): the loop whose wait
// sees a port ready accepts a few of its clients (accept.go), and each
// client stays in that loop for its whole life. The loop checks it (PROXY
// header, allow and deny lists), dials a backend without blocking, trying
// the next on failure (dial.go), sends the client's first bytes with the
// connect, and relays both directions as the edge-triggered events of its
// two sockets come (relay.go). Only the loop reads, writes or closes them;
// others ask it to cut one through a task. So a connection costs no
// goroutine, busy or idle, and an event costs its read and write: the
// socket calls are raw, outside Go's scheduler (rawsys.go), as every one
// is non-blocking. An idle loop parks in Go's netpoller.
//
// Small messages are copied through the loop's buffer, bulk streams
// spliced (splice(2)) through the loop's pipe, as HAProxy's splice-auto
// does; a direction keeps a buffer or a pipe only while its destination
// cannot take what it read, so an idle connection costs two descriptors
// and its structs. A PROXY header to a backend is written first, and one
// from an upstream balancer is read exactly (peeked, then consumed), so
// nothing wraps the connections. Byte counters and the idle timeout come
// from the kernel's TCP_INFO of the client socket, sampled by one reaper,
// and the relays' exact counts when a connection ends.
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
