package lb

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/netlimit"
)

// portKey names one listening port: a listener and one address of its range.
type portKey struct {
	name string
	addr netip.AddrPort
}

// port is one listening socket and the connections it accepted.
type port struct {
	key  portKey
	spec atomic.Pointer[api.Listener]
	svc  atomic.Pointer[service]
	ln   *net.TCPListener

	stats counters
	freed chan struct{} // a connection ended (max_conns waits on it)

	// Guarded by Server.mu.
	err        error
	retryAt    time.Time
	closing    bool
	drainUntil time.Time
	recutAt    time.Time // when a timed-out drain may be cut again

	limit *netlimit.Surface // the balancer's cap, over every port

	mu    sync.Mutex
	conns map[*conn]struct{}
	stop  chan struct{}
}

func newPort(k portKey, l *api.Listener, svc *service) *port {
	p := &port{key: k, freed: make(chan struct{}, 1), conns: map[*conn]struct{}{}, stop: make(chan struct{})}
	p.spec.Store(l)
	p.svc.Store(svc)
	return p
}

// stopAccepting closes the listening socket; open connections stay.
func (p *port) stopAccepting() {
	if p.closing {
		return
	}
	p.closing = true
	close(p.stop)
	if p.ln != nil {
		p.ln.Close()
	}
}

// cutAll closes every open connection of p.
func (p *port) cutAll() {
	p.mu.Lock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.cut(&endDrain)
	}
}

// release counts a connection of p as ended.
func (p *port) release() {
	p.stats.active.Add(-1)
	if p.limit != nil {
		p.limit.Release()
	}
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// accept runs p's accept loop until the socket is closed.
func (s *Server) accept(p *port) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		// max_conns: leave further clients in the kernel's backlog.
		for spec, paused := p.spec.Load(), false; spec.MaxConns > 0 && p.stats.active.Load() >= int64(spec.MaxConns); spec = p.spec.Load() {
			if !paused && p.limit != nil {
				paused = true
				p.limit.Count(netlimit.ReasonPaused)
			}
			select {
			case <-p.freed:
			case <-p.stop:
				return
			}
		}
		// The global cap and the descriptor budget: wait for room.
		if !s.waitRoom(p) {
			return
		}
		c, err := p.ln.AcceptTCP()
		if err == nil && p.limit != nil {
			// Another port may have taken the room meanwhile.
			if ok, why := p.limit.TryAcquire(); !ok {
				p.limit.Count(why)
				p.stats.refused.Add(1)
				c.SetLinger(0)
				c.Close()
				continue
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or a transient error: back off, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				s.log.Error("accept failed", "listener", p.key.name, "addr", p.key.addr.String(), "err", err, "retry_in", backoff)
			}
			select {
			case <-time.After(backoff):
			case <-p.stop:
				return
			}
			continue
		}
		backoff = 0
		p.stats.active.Add(1)
		p.stats.total.Add(1)
		s.wg.Add(1)
		go s.handle(p, c)
	}
}

// waitRoom waits, not accepting, while the balancer's connection cap or the
// descriptor budget has no room; false when p stops. It takes nothing, so an
// idle port holds no slot.
func (s *Server) waitRoom(p *port) bool {
	if p.limit == nil {
		return true
	}
	paused := false
	for {
		if p.limit.Room() {
			return true
		}
		if !paused {
			paused = true
			p.limit.Count(netlimit.ReasonPaused)
		}
		if !p.limit.Wait(p.stop) {
			return false
		}
	}
}

// conn is one proxied connection.
type conn struct {
	client, server *net.TCPConn
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

	// Reaper state (touched by the reaper only).
	in, out     uint64 // bytes counted so far
	lastActive  time.Time
	nextSample  time.Time
	sampleEvery time.Duration
}

// Why a connection was cut, in the connection log.
var (
	endError       = "error"         // a read or write failed (a reset, mostly)
	endIdle        = "idle_timeout"  // nothing moved for idle_timeout
	endBackendDown = "backend_down"  // on_backend_down: cut
	endDrain       = "drain_timeout" // the listener was removed and drain_timeout passed
	endShutdown    = "shutdown"      // the server stopped
)

// cut closes both sides at once (a reset to the client), for reason.
func (c *conn) cut(reason *string) {
	c.reason.CompareAndSwap(nil, reason)
	if c.closed.Swap(true) {
		return
	}
	c.client.SetLinger(0)
	c.client.Close()
	c.server.Close()
}

// handle proxies one client connection: it picks a backend, connects (trying
// others on failure), and hands both to relayBoth, which copies both ways
// until both sides are done.
func (s *Server) handle(p *port, client *net.TCPConn) {
	handedOff := false // to relayBoth, which ends the connection
	defer func() {
		if !handedOff {
			p.release()
			s.wg.Done()
		}
	}()
	spec := p.spec.Load()
	start := time.Now()
	src, dst := tcpAddr(client.RemoteAddr()), tcpAddr(client.LocalAddr())
	// drop closes a client that is not proxied, with a reset.
	drop := func(why string, counter *atomic.Uint64, err error) {
		counter.Add(1)
		client.SetLinger(0)
		client.Close()
		if spec.Log {
			s.connLog.refused(p.key.name, src, why, err)
		}
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
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	if s.ctx.Err() != nil { // shutting down: the reaper may be gone
		c.cut(&endShutdown)
	}

	s.relayBoth(c)
	handedOff = true
}

// connect dials a backend for a client from src, trying the next one on
// failure up to the listener's retries; it returns nil when none answered.
func (s *Server) connect(p *port, spec *api.Listener, src netip.Addr) (*net.TCPConn, *backend) {
	pl := p.svc.Load().pool.Load()
	d := net.Dialer{Timeout: spec.ConnectTimeout.D(), KeepAlive: -1}
	var skip tried
	retries := spec.RetryCount()
	for attempt := 0; attempt <= retries; attempt++ {
		be := pl.pick(spec.Balance, src, skip)
		if be == nil {
			return nil, nil
		}
		if attempt > 0 {
			p.stats.retries.Add(1)
			be.stats.retries.Add(1)
		}
		addr := be.addr
		if spec.TargetPort != 0 {
			addr = netip.AddrPortFrom(addr.Addr(), uint16(spec.TargetPort))
		}
		c, err := d.DialContext(s.ctx, "tcp", addr.String())
		if err == nil {
			return c.(*net.TCPConn), be
		}
		if s.ctx.Err() != nil {
			return nil, nil
		}
		p.stats.connectErrors.Add(1)
		be.stats.connectErrors.Add(1)
		if s.o.Failures != nil {
			s.o.Failures.ConnectFailed(be.service, be.node)
		}
		s.log.Debug("backend connect failed", "listener", p.key.name, "node", be.node, "addr", be.addr.String(), "err", err, "attempt", attempt+1)
		skip = append(skip, be)
	}
	return nil, nil
}

func tcpAddr(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// tcpBytes reads the kernel's counters of a client socket: bytes received
// from the client and bytes the client acknowledged.
func tcpBytes(c *net.TCPConn) (in, out uint64, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return 0, 0, false
	}
	in, out = info.Bytes_received, info.Bytes_acked
	// A FIN takes one sequence number, which both counters include once it
	// has been received (or, for ours, acknowledged).
	switch info.State {
	case tcpCloseWait, tcpLastAck, tcpClosing:
		in = sub1(in)
	case tcpFinWait2:
		out = sub1(out)
	case tcpTimeWait:
		in, out = sub1(in), sub1(out)
	}
	return in, out, true
}

// TCP states of tcp_info (include/net/tcp_states.h).
const (
	tcpFinWait2  = 5
	tcpTimeWait  = 6
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)

func sub1(x uint64) uint64 {
	if x == 0 {
		return 0
	}
	return x - 1
}

// account adds c's bytes since the last sample to its port and backend, and
// reports whether any moved.
func (s *Server) account(c *conn) bool {
	in, out, ok := tcpBytes(c.client)
	if !ok {
		return false
	}
	return c.addBytes(in, out)
}

// addBytes raises c's byte counts to in and out (never lowers them) and
// reports whether they moved.
func (c *conn) addBytes(in, out uint64) bool {
	moved := false
	if in > c.in {
		c.port.stats.bytesIn.Add(in - c.in)
		c.be.stats.bytesIn.Add(in - c.in)
		c.in, moved = in, true
	}
	if out > c.out {
		c.port.stats.bytesOut.Add(out - c.out)
		c.be.stats.bytesOut.Add(out - c.out)
		c.out, moved = out, true
	}
	return moved
}

// reap runs every reapEvery: it samples connections (byte counters and idle
// timeouts), cuts connections of backends that went down when the listener
// says cut, ends drains, and retries ports that could not bind.
func (s *Server) reap(now time.Time) {
	s.mu.Lock()
	ports := make([]*port, 0, len(s.ports)+len(s.draining))
	for _, p := range s.ports {
		if p.err != nil && now.After(p.retryAt) {
			s.listenLocked(p)
		}
		ports = append(ports, p)
	}
	for p := range s.draining {
		if p.stats.active.Load() == 0 {
			delete(s.draining, p)
			continue
		}
		if now.After(p.drainUntil) && now.After(p.recutAt) {
			// Once per port at the info level; a cut is owned by s.wg,
			// and the next comes only recutEvery later.
			if p.recutAt.IsZero() {
				s.log.Info("drain timeout: cutting connections", "listener", p.key.name, "addr", p.key.addr.String(), "connections", p.stats.active.Load())
			}
			p.recutAt = now.Add(recutEvery)
			s.cuts.Add(1)
			s.wg.Add(1)
			go func() { defer s.wg.Done(); p.cutAll() }()
		}
		ports = append(ports, p)
	}
	s.mu.Unlock()
	for _, p := range ports {
		spec := p.spec.Load()
		idle := spec.IdleTimeout.D()
		every := min(max(idle/4, reapEvery), 5*time.Second)
		cutDown := spec.OnBackendDown == api.BackendDownCut
		drain := spec.DrainTimeout.D()
		p.mu.Lock()
		var cut []*conn
		var reasons []*string
		for c := range p.conns {
			if c.lastActive.IsZero() {
				c.lastActive, c.nextSample = now, now.Add(every)
				continue
			}
			if cutDown {
				if since := c.be.downSince.Load(); since != 0 && now.Sub(time.Unix(0, since)) > drain {
					cut = append(cut, c)
					reasons = append(reasons, &endBackendDown)
					continue
				}
			}
			if now.Before(c.nextSample) {
				continue
			}
			c.nextSample = now.Add(every)
			if s.account(c) {
				c.lastActive = now
			} else if idle > 0 && now.Sub(c.lastActive) >= idle {
				cut = append(cut, c)
				reasons = append(reasons, &endIdle)
			}
		}
		p.mu.Unlock()
		for i, c := range cut {
			c.cut(reasons[i])
		}
	}
}
