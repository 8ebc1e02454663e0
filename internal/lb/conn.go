package lb

import (
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// conn is one proxied connection. Both sides are sockets held as *os.File
// (Go's netpoller waits on them; nothing wraps them, so relay splices).
//
// Each direction (0: client to backend, 1: backend to client) is relayed by
// a goroutine of its own while data flows. A connection that moved nothing
// for parkAfter is parked by the reaper: both relays end, and the sockets
// wait in the poller's set (one shot) until one has data, when a relay
// starts again for that direction. A parked connection thus costs no
// goroutine stack: its structs and two descriptors only.
type conn struct {
	client, server *os.File
	be             *backend
	port           *port
	closed         atomic.Bool
	// For the connection log: the client as seen after any PROXY header,
	// when it was accepted, how long the backend took to answer, and why it
	// ended when it did not end cleanly.
	src       netip.AddrPort
	start     time.Time
	connected time.Duration
	reason    atomic.Pointer[string]
	// firstEnd is the side that closed first cleanly ("client" or "server").
	firstEnd atomic.Pointer[string]

	dir   [2]relayDir
	left  atomic.Int32         // directions not ended
	slot  atomic.Pointer[pref] // in the poller's table, once parked
	moved atomic.Bool          // a relay moved bytes since the reaper last looked

	// Reaper state (touched by the reaper only).
	in, out    uint64 // bytes counted so far
	lastActive time.Time
	nextSample time.Time
	quiet      int // reaper passes without a moved byte
}

// relayDir is one direction of a conn.
type relayDir struct {
	state atomic.Int32
	n     int64 // bytes relayed (by whoever runs the direction)
}

// States of a relayDir.
const (
	dirRunning = iota // a goroutine relays it
	dirParked         // it waits in the poller's set
	dirDone           // it ended
)

// Why a connection was cut, in the connection log.
var (
	endError       = "error"         // a read or write failed (a reset, mostly)
	endIdle        = "idle_timeout"  // nothing moved for idle_timeout
	endBackendDown = "backend_down"  // on_backend_down: cut
	endDrain       = "drain_timeout" // the listener was removed and drain_timeout passed
	endShutdown    = "shutdown"      // the server stopped
)

var errCut = errors.New("connection cut")

// cut closes both sides at once (a reset to the client), for reason, and
// ends the directions that were parked.
func (s *Server) cut(c *conn, reason *string) {
	c.reason.CompareAndSwap(nil, reason)
	if c.closed.Swap(true) {
		return
	}
	setLinger0(c.client)
	c.client.Close()
	c.server.Close()
	for d := range c.dir {
		if c.dir[d].state.CompareAndSwap(dirParked, dirDone) {
			s.parked.Add(-1)
			s.endDir(c, d, errCut)
		}
	}
}

// sides returns the destination and the source of direction d.
func (c *conn) sides(d int) (dst, src *os.File) {
	if d == 0 {
		return c.server, c.client
	}
	return c.client, c.server
}

// relayBoth starts relaying c both ways: direction 1 in a new goroutine,
// direction 0 in the caller's, which holds a share of s.wg.
func (s *Server) relayBoth(c *conn) {
	c.left.Store(2)
	s.wg.Add(1)
	go s.runDir(c, 1)
	s.runDir(c, 0)
}

// runDir relays direction d of c until it ends or is parked; it ends a
// share of s.wg.
func (s *Server) runDir(c *conn, d int) {
	defer s.wg.Done()
	dst, src := c.sides(d)
	for {
		n, err := relayMarking(dst, src, &c.moved)
		c.dir[d].n += n
		if errors.Is(err, os.ErrDeadlineExceeded) && s.park(c, d, src) {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // parking failed: relay on here
		}
		s.endDir(c, d, err)
		return
	}
}

// park moves direction d of c into the poller's set, reading src, and
// reports whether it left (false: relay on in this goroutine).
func (s *Server) park(c *conn, d int, src *os.File) bool {
	src.SetReadDeadline(time.Time{})
	ds := &c.dir[d]
	ds.state.Store(dirParked)
	s.parked.Add(1)
	slot := c.slot.Load()
	rc, err := src.SyscallConn()
	var cerr error
	if err == nil && slot != nil {
		err = rc.Control(func(fd uintptr) {
			const ev = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
			if cerr = s.poll.ctl(unix.EPOLL_CTL_MOD, int(fd), ev, *slot, int32(d)); cerr == unix.ENOENT {
				cerr = s.poll.ctl(unix.EPOLL_CTL_ADD, int(fd), ev, *slot, int32(d))
			}
		})
	}
	if err == nil && cerr == nil && slot != nil {
		return true
	}
	// Closed meanwhile (a cut ends the direction if it finds it parked) or
	// the set refused it.
	if ds.state.CompareAndSwap(dirParked, dirRunning) {
		s.parked.Add(-1)
		return false
	}
	return true
}

// ready restarts a parked direction whose socket has data or ended (the
// poller's event).
func (c *conn) ready(s *Server, _ uint32, d int32) {
	if c.dir[d].state.CompareAndSwap(dirParked, dirRunning) {
		s.parked.Add(-1)
		s.wg.Add(1)
		go s.runDir(c, int(d))
	}
}

// requestPark asks c's running relays to park (the reaper: nothing moved
// for parkAfter). A read deadline in the past wakes a relay waiting to
// read; one busy writing parks when it next reads.
func (s *Server) requestPark(c *conn) {
	if c.slot.Load() == nil {
		r := s.poll.add(c)
		c.slot.Store(&r)
	}
	past := time.Unix(1, 0)
	for d := range c.dir {
		if c.dir[d].state.Load() == dirRunning {
			_, src := c.sides(d)
			src.SetReadDeadline(past)
		}
	}
}

// endDir ends direction d of c with err (nil: its source ended cleanly). A
// clean end is passed on as a half close; an error cuts both sides. The
// last direction to end closes c and counts it out of its port and
// backend.
func (s *Server) endDir(c *conn, d int, err error) {
	c.dir[d].state.Store(dirDone)
	dst, _ := c.sides(d)
	if err != nil {
		if !c.closed.Load() {
			// Not one of our own cuts: the peer reset, or the network failed.
			c.port.stats.resets.Add(1)
			c.be.stats.resets.Add(1)
		}
		s.cut(c, &endError)
	} else {
		side := &sideClient
		if d == 1 {
			side = &sideServer
		}
		c.firstEnd.CompareAndSwap(nil, side)
		if c.left.Load() == 2 {
			// Pass the end on as a half close. When the other direction
			// is already over, the close below sends the same FIN: one
			// syscall less per connection.
			shutdownWrite(dst)
		}
	}
	if c.left.Add(-1) != 0 {
		return
	}
	p := c.port
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	if r := c.slot.Load(); r != nil {
		s.poll.remove(*r)
	}
	in, out := uint64(c.dir[0].n), uint64(c.dir[1].n)
	// The relays' counts are exact; the reaper's samples were a running
	// view (and it no longer sees c).
	c.addBytes(in, out)
	if !c.closed.Swap(true) {
		c.client.Close()
		c.server.Close()
	}
	c.be.stats.active.Add(-1)
	if p.spec.Load().Log {
		s.connLog.ended(c, in, out)
	}
	s.release(p)
}

var sideClient, sideServer = "client", "server"

// setLinger0 makes the next close of f a reset.
func setLinger0(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		})
	}
}

// shutdownWrite sends f's FIN.
func shutdownWrite(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
	}
}

// localAddr is the address f is bound to.
func localAddr(f *os.File) netip.AddrPort {
	var out netip.AddrPort
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				out = sockaddrPort(sa)
			}
		})
	}
	return out
}

var _ syscall.Conn = (*os.File)(nil)

// handle proxies one accepted client: it checks the PROXY header and the
// allow/deny lists, connects to a backend (trying others on failure), and
// goes on relaying the client's direction; it holds a share of s.wg.
func (s *Server) handle(p *port, client *os.File, src netip.AddrPort) {
	spec := p.spec.Load()
	start := time.Now()
	dst := p.key.addr
	// drop closes a client that is not proxied, with a reset.
	drop := func(why string, counter *atomic.Uint64, err error) {
		counter.Add(1)
		if spec.Log { // before the close, so the line is out when the client sees it
			s.connLog.refused(p.key.name, src, why, err)
		}
		setLinger0(client)
		client.Close()
		s.release(p)
		s.wg.Done()
	}
	if spec.AcceptProxy {
		if !trustedUpstream(spec.AcceptProxyFrom, src.Addr()) {
			drop("untrusted_proxy", &p.stats.denied, nil)
			return
		}
		h, err := readProxyHeader(client, time.Now().Add(spec.ConnectTimeout.D()))
		if err != nil {
			s.log.Debug("client dropped", "listener", p.key.name, "client", src.String(), "err", err)
			drop("bad_proxy_header", &p.stats.refused, err)
			return
		}
		if h.Src.IsValid() {
			src, dst = h.Src, h.Dst
		}
	}
	if !allowed(spec, src.Addr()) {
		drop("denied", &p.stats.denied, nil)
		return
	}
	server, be := s.connect(p, spec, src.Addr())
	if server == nil {
		drop("no_backend", &p.stats.refused, nil)
		return
	}
	if spec.ProxyProtocol != "" {
		if !spec.AcceptProxy && dst.Addr().IsUnspecified() {
			dst = localAddr(client)
		}
		var buf [64]byte
		if _, err := server.Write(appendProxyHeader(buf[:0], spec.ProxyProtocol, src, dst)); err != nil {
			be.stats.connectErrors.Add(1)
			server.Close()
			drop("proxy_write_failed", &p.stats.refused, err)
			return
		}
	}
	be.stats.active.Add(1)
	be.stats.total.Add(1)
	c := &conn{client: client, server: server, be: be, port: p, src: src, start: start, connected: time.Since(start)}
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[*conn]struct{}{}
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	if s.ctx.Err() != nil { // shutting down: the reaper may be gone
		s.cut(c, &endShutdown)
	}
	s.relayBoth(c)
}
