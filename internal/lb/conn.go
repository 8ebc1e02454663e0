package lb

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
)

// conn is one proxied connection: two bare non-blocking sockets owned by
// one relay loop (loop.go), which reads, writes and closes them. It goes
// through its states in order: the PROXY header from an upstream balancer
// is read (accept_proxy only), a backend is dialed (the next one on
// failure, up to the listener's retries), both directions are relayed
// (relay.go), and it is done.
//
// Side 0 is the client's socket, side 1 the backend's; direction 0 moves
// the client's bytes to the backend, direction 1 the backend's back.
type conn struct {
	loop *evloop
	gen  int32 // tags the loop's events for c's sockets
	port *port
	spec *api.Listener // the listener's settings when c was accepted

	// mu orders the loop closing the sockets against the reaper reading
	// the client's counters (a closed descriptor's number is reused).
	mu             sync.Mutex
	client, server int // -1 once closed (server: none yet)

	state  uint8
	queued bool // in the loop's again list
	// Readiness of each side's socket as the edge-triggered events told
	// it: readable (until a read finds it drained), writable (until a
	// write fills it), its peer's end or an error seen (read on to the
	// end), and its peer's FIN seen, cleanly (all the peer sent is queued
	// ahead of it: a read that drains the socket reached the end).
	rd, wr, hup, fin [2]bool
	dir              [2]relayDir

	// Dialing: the backend tried now, those tried before, and the
	// deadline of a connect or of the PROXY header (in the loop's timers
	// at tidx, -1 when not).
	be       *backend
	attempt  int
	skip     tried
	deadline time.Time
	tidx     int
	px       *proxyRead // while reading a PROXY header

	// For the connection log: the client as seen after any PROXY header,
	// the address it connected to, when it was accepted, how long the
	// backend took to answer, and why it ended when it did not end
	// cleanly.
	src, dst  netip.AddrPort
	start     time.Time
	connected time.Duration
	reason    atomic.Pointer[string]
	// firstEnd is the side that closed first cleanly ("client" or "server").
	firstEnd atomic.Pointer[string]

	// Reaper state (touched by the reaper only, until c leaves its port's
	// connections).
	in, out    uint64 // bytes counted so far
	lastActive time.Time
	nextSample time.Time
}

// States of a conn.
const (
	stProxy   = iota // reading the PROXY header
	stConnect        // a backend's connect is under way
	stRelay          // relaying both directions
	stDone           // closed
)

// Why a connection was cut, in the connection log.
var (
	endError       = "error"         // a read or write failed (a reset, mostly)
	endIdle        = "idle_timeout"  // nothing moved for idle_timeout
	endBackendDown = "backend_down"  // on_backend_down: cut
	endDrain       = "drain_timeout" // the listener was removed and drain_timeout passed
	endShutdown    = "shutdown"      // the server stopped
)

var sideClient, sideServer = "client", "server"

// cut closes c at once (a reset to the client) for reason; it may be
// called from any goroutine.
func (s *Server) cut(c *conn, reason *string) {
	c.loop.post(task{c: c, cut: reason})
}

// start takes a new client into the loop.
func (l *evloop) start(c *conn) {
	if l.gen++; l.gen < 0 {
		l.gen = 1
	}
	c.gen = l.gen
	c.start = time.Now()
	l.total.Add(1)
	l.active.Add(1)
	if err := l.watch(c, c.client); err != nil {
		l.drop(c, "no_backend", &c.port.stats.refused, err)
		return
	}
	if c.spec.AcceptProxy {
		if !trustedUpstream(c.spec.AcceptProxyFrom, c.src.Addr()) {
			l.drop(c, "untrusted_proxy", &c.port.stats.denied, nil)
			return
		}
		c.state, c.px = stProxy, &proxyRead{}
		l.setTimer(c, c.start.Add(c.spec.ConnectTimeout.D()))
		return // the socket's first event reads it
	}
	l.admit(c)
}

// admit checks the client against the allow and deny lists and dials.
func (l *evloop) admit(c *conn) {
	if !allowed(c.spec, c.src.Addr()) {
		l.drop(c, "denied", &c.port.stats.denied, nil)
		return
	}
	l.dialNext(c)
}

// event records what an event on side's socket tells and moves c on.
func (l *evloop) event(c *conn, fd int, ev uint32) {
	side := 0
	if fd == c.server {
		side = 1
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.rd[side] = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		c.hup[side] = true
		c.fin[side] = ev&(unix.EPOLLHUP|unix.EPOLLERR) == 0
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.wr[side] = true
	}
	switch c.state {
	case stProxy:
		if side == 0 {
			l.readProxy(c)
		}
	case stConnect:
		if side == 1 {
			switch {
			case ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0:
				l.dialFailed(c, connectError(fd))
			case ev&unix.EPOLLOUT != 0:
				l.connected(c)
			}
		}
	case stRelay:
		l.pump(c)
	}
}

// expire ends c's wait for its PROXY header or its backend.
func (l *evloop) expire(c *conn) {
	switch c.state {
	case stProxy:
		l.drop(c, "bad_proxy_header", &c.port.stats.refused, errProxyTimeout)
	case stConnect:
		l.dialFailed(c, errConnectTimeout)
	}
}

var errProxyTimeout = errors.New("read proxy header: timed out")

// readProxy reads what arrived of c's PROXY header; once it is whole, c
// is admitted as the client the header names.
func (l *evloop) readProxy(c *conn) {
	if !c.rd[0] {
		return
	}
	h, done, err := c.px.step(c.client)
	switch {
	case err != nil:
		l.drop(c, "bad_proxy_header", &c.port.stats.refused, err)
	case !done:
		c.rd[0] = false
	default:
		if h.Src.IsValid() {
			c.src, c.dst = h.Src, h.Dst
		}
		c.px = nil
		l.clearTimer(c)
		c.state = stConnect
		l.admit(c)
	}
}

// connected starts relaying c once its backend answered.
func (l *evloop) connected(c *conn) {
	l.clearTimer(c)
	be, p, spec := c.be, c.port, c.spec
	if spec.ProxyProtocol != "" {
		dst := c.dst
		if !spec.AcceptProxy && dst.Addr().IsUnspecified() {
			dst = localAddr(c.client)
		}
		// The socket's send buffer is empty: a header fits at once.
		var buf [64]byte
		h := appendProxyHeader(buf[:0], spec.ProxyProtocol, c.src, dst)
		if n, err := unix.Write(c.server, h); err != nil || n != len(h) {
			be.stats.connectErrors.Add(1)
			l.drop(c, "proxy_write_failed", &p.stats.refused, err)
			return
		}
	}
	c.state = stRelay
	c.connected = time.Since(c.start)
	c.wr[1] = true
	be.stats.active.Add(1)
	be.stats.total.Add(1)
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[*conn]struct{}{}
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	l.pump(c)
}

// drop closes a client that is not proxied, with a reset, counting it.
func (l *evloop) drop(c *conn, why string, counter *atomic.Uint64, err error) {
	counter.Add(1)
	if c.spec.Log { // before the close, so the line is out when the client sees it
		l.s.connLog.refused(c.port.key.name, c.src, why, err)
	}
	if err != nil {
		l.s.log.Debug("client dropped", "listener", c.port.key.name, "client", c.src.String(), "why", why, "err", err)
	}
	setLinger0(c.client)
	l.finish(c)
}

// fail cuts c after a read or write failed (the peer reset, mostly).
func (l *evloop) fail(c *conn) {
	c.port.stats.resets.Add(1)
	c.be.stats.resets.Add(1)
	l.cut(c, &endError)
}

// cut closes both sides at once (a reset to the client), for reason.
func (l *evloop) cut(c *conn, reason *string) {
	if c.state == stDone {
		return
	}
	c.reason.CompareAndSwap(nil, reason)
	setLinger0(c.client)
	l.finish(c)
}

// endDir ends direction d once its source ended and everything it read
// went out: the end is passed on as a half close, and the second end
// closes c.
func (l *evloop) endDir(c *conn, d int) {
	c.dir[d].done = true
	side := &sideClient
	if d == 1 {
		side = &sideServer
	}
	c.firstEnd.CompareAndSwap(nil, side)
	if !c.dir[1-d].done {
		// When the other direction is already over, the close below sends
		// the same FIN: one syscall less per connection.
		shutdownWrite(c.sock(1 - d))
		return
	}
	l.finish(c)
}

// sock is side's socket.
func (c *conn) sock(side int) int {
	if side == 0 {
		return c.client
	}
	return c.server
}

// finish closes c's sockets and counts it out of its port (and backend,
// once it was relayed).
func (l *evloop) finish(c *conn) {
	relayed := c.state == stRelay
	c.state = stDone
	l.clearTimer(c)
	for d := range c.dir {
		c.dir[d].release()
	}
	l.forget(c.client)
	l.forget(c.server)
	c.mu.Lock()
	closeFD(c.client)
	if c.server >= 0 {
		closeFD(c.server)
	}
	c.client, c.server = -1, -1
	c.mu.Unlock()
	l.active.Add(-1)
	p := c.port
	if relayed {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		in, out := uint64(c.dir[0].n), uint64(c.dir[1].n)
		// The relays' counts are exact; the reaper's samples were a
		// running view (and it no longer sees c).
		c.addBytes(in, out)
		c.be.stats.active.Add(-1)
		if c.spec.Log {
			l.s.connLog.ended(c, in, out)
		}
	}
	l.s.release(p)
}

// setLinger0 makes the next close of fd a reset.
func setLinger0(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// localAddr is the address fd is bound to.
func localAddr(fd int) netip.AddrPort {
	if sa, err := unix.Getsockname(fd); err == nil {
		return sockaddrPort(sa)
	}
	return netip.AddrPort{}
}
