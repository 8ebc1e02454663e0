package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/internal/netlimit"
	"github.com/seamark/seamark/internal/upgrade"
)

// listenFD is a port's listening socket: a bare non-blocking descriptor in
// the relay loops' sets, not in Go's netpoller, so that a port costs no
// goroutine and no runtime poll descriptor. mu orders accepting against
// closing (a descriptor number is reused as soon as it is closed).
//
// It is a syscall.Conn so that internal/upgrade can pass it on.
type listenFD struct {
	mu     sync.Mutex
	fd     int  // -1 once closed
	armed  bool // in the loops' sets
	capped bool // out of the set at max_conns, until a connection ends
}

var errListenerClosed = errors.New("listener closed")

func (l *listenFD) SyscallConn() (syscall.RawConn, error) { return l, nil }

// Control runs f on the descriptor, or fails once it is closed.
func (l *listenFD) Control(f func(fd uintptr)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return errListenerClosed
	}
	f(uintptr(l.fd))
	return nil
}

func (l *listenFD) Read(func(fd uintptr) bool) error  { return errors.ErrUnsupported }
func (l *listenFD) Write(func(fd uintptr) bool) error { return errors.ErrUnsupported }

var _ syscall.RawConn = (*listenFD)(nil)

// openListener binds p's address (or adopts the socket a predecessor handed
// over) into p.lfd.
func (s *Server) openListener(p *port) error {
	_, err := upgrade.Adopt(s.o.Handover, "lb/"+p.key.addr.String(),
		func(f *os.File) (*listenFD, error) {
			rc, err := f.SyscallConn()
			if err != nil {
				return nil, err
			}
			nfd := -1
			var derr error
			if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
				return nil, err
			}
			if derr != nil {
				return nil, derr
			}
			if err := prepareListener(nfd); err != nil {
				unix.Close(nfd)
				return nil, err
			}
			p.lfd.fd = nfd
			return &p.lfd, nil
		},
		func() (*listenFD, error) {
			fd, err := bindListener(p.key.addr)
			if err != nil {
				return nil, err
			}
			p.lfd.fd = fd
			return &p.lfd, nil
		})
	return err
}

// bindListener opens a listening socket on addr as Go's net.Listen("tcp")
// would (SO_REUSEADDR, a wildcard address listening on IPv4 and IPv6, the
// kernel's largest backlog), non-blocking.
func bindListener(addr netip.AddrPort) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().Unmap().As4()}
	if a := addr.Addr(); a.Is6() && !a.Is4In6() || a.IsUnspecified() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil && family == unix.AF_INET6 && addr.Addr().Is4() {
		// No IPv6 here: the IPv4 wildcard only.
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(addr.Port())}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, os.NewSyscallError(op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if family == unix.AF_INET6 {
		v6only := 1
		if addr.Addr().IsUnspecified() {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 65535); err != nil { // the kernel caps it at somaxconn
		return fail("listen", err)
	}
	if err := prepareListener(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// prepareListener makes a listening socket non-blocking with TCP_NODELAY,
// which every accepted socket inherits (one setsockopt per port, not per
// connection).
func prepareListener(fd int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}

// armLocked puts p's socket into the loops' sets.
func (s *Server) armLocked(p *port) {
	if p.lfd.fd < 0 || p.lfd.armed {
		return
	}
	if err := s.poll.arm(p.lfd.fd, p.slot); err != nil {
		s.log.Error("listener cannot wait for clients", "listener", p.key.name, "addr", p.key.addr.String(), "err", err)
		return
	}
	p.lfd.armed = true
}

// disarmLocked takes p's socket out of the loops' sets: clients wait in
// the kernel's backlog.
func (s *Server) disarmLocked(p *port) {
	if p.lfd.fd < 0 || !p.lfd.armed {
		return
	}
	s.poll.disarm(p.lfd.fd)
	p.lfd.armed = false
}

// closeListener takes p's socket out of the set and closes it.
func (s *Server) closeListener(p *port) {
	p.lfd.mu.Lock()
	s.disarmLocked(p)
	if p.lfd.fd >= 0 {
		unix.Close(p.lfd.fd)
		p.lfd.fd = -1
	}
	p.lfd.mu.Unlock()
	if p.slot != (pref{}) {
		s.poll.remove(p.slot)
	}
}

// resume puts p back into the set once it is under its max_conns again.
func (s *Server) resume(p *port) {
	p.lfd.mu.Lock()
	defer p.lfd.mu.Unlock()
	if !p.lfd.capped {
		return
	}
	if m := p.spec.Load().MaxConns; m > 0 && p.stats.active.Load() >= int64(m) {
		return
	}
	p.lfd.capped = false
	s.armLocked(p)
}

// acceptBatch bounds the clients one port takes per event, so that a busy
// port does not hold the loop from the others (its socket stays ready).
const acceptBatch = 4

// ready accepts p's waiting clients into l (the event on its socket); l
// starts them once p's lock is released.
func (p *port) ready(l *evloop) {
	s := l.s
	p.lfd.mu.Lock()
	defer p.lfd.mu.Unlock()
	if p.lfd.fd < 0 || !p.lfd.armed {
		return
	}
	spec := p.spec.Load()
	for range acceptBatch {
		// max_conns: leave further clients in the kernel's backlog until a
		// connection of p ends (release resumes it).
		if m := int64(spec.MaxConns); m > 0 && p.stats.active.Load() >= m {
			p.lfd.capped = true
			// A connection that ended meanwhile saw capped false: look again.
			if p.stats.active.Load() >= m {
				s.disarmLocked(p)
				p.paused.Add(1)
				if p.limit != nil {
					p.limit.Count(netlimit.ReasonPaused)
				}
				return
			}
			p.lfd.capped = false
		}
		// The global cap and the descriptor budget: wait for room with
		// every port that found none.
		if p.limit != nil && !p.limit.Room() {
			s.disarmLocked(p)
			s.waitRoom(p)
			return
		}
		nfd, src, err := accept4NB(p.lfd.fd)
		if err != nil {
			switch err {
			case syscall.EAGAIN:
				s.acceptBackoff.Store(0)
				return
			case syscall.EINTR, syscall.ECONNABORTED:
				continue
			}
			// Out of descriptors or a transient error: take p out of the set
			// for a back-off, do not spin.
			s.disarmLocked(p)
			s.backOff(p, err)
			return
		}
		if p.limit != nil {
			// Another port may have taken the room meanwhile.
			if ok, why := p.limit.TryAcquire(); !ok {
				p.limit.Count(why)
				p.stats.refused.Add(1)
				resetClose(nfd)
				continue
			}
		}
		p.stats.active.Add(1)
		p.stats.total.Add(1)
		l.accepted = append(l.accepted, &conn{
			loop: l, port: p, spec: spec,
			client: nfd, server: -1, tidx: -1,
			src: src, dst: p.key.addr,
		})
	}
}

// backOff logs a failed accept and puts p back into the set after a delay
// that doubles (5 ms up to 1 s) while accepts keep failing.
func (s *Server) backOff(p *port, err error) {
	d := time.Duration(s.acceptBackoff.Load())
	d = min(max(2*d, 5*time.Millisecond), time.Second)
	s.acceptBackoff.Store(int64(d))
	if d == time.Second || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		if s.acceptLog.allow(time.Now()) {
			s.log.Error("accept failed", "listener", p.key.name, "addr", p.key.addr.String(), "err", fmt.Errorf("accept4: %w", err), "retry_in", d)
		}
	}
	time.AfterFunc(d, func() {
		p.lfd.mu.Lock()
		s.armLocked(p)
		p.lfd.mu.Unlock()
	})
}

// waitRoom queues p (out of the set) until the balancer's connection cap
// and the descriptor budget have room again; one goroutine (roomLoop)
// waits for every queued port, so an idle port holds no slot and a full
// balancer does not spin.
func (s *Server) waitRoom(p *port) {
	s.roomMu.Lock()
	first := len(s.roomWait) == 0
	s.roomWait = append(s.roomWait, p)
	s.roomMu.Unlock()
	if first {
		p.limit.Count(netlimit.ReasonPaused)
		select {
		case s.roomKick <- struct{}{}:
		default:
		}
	}
}

// roomLoop puts ports queued by waitRoom back into the set once there is
// room, until stop closes.
func (s *Server) roomLoop(stop <-chan struct{}) {
	defer s.wg.Done()
	for {
		select {
		case <-s.roomKick:
		case <-stop:
			return
		}
		for !s.conns.Room() {
			if !s.conns.Wait(stop) {
				return
			}
		}
		s.roomMu.Lock()
		ps := s.roomWait
		s.roomWait = nil
		s.roomMu.Unlock()
		for _, p := range ps {
			p.lfd.mu.Lock()
			if !p.lfd.capped {
				s.armLocked(p)
			}
			p.lfd.mu.Unlock()
		}
	}
}

// resetClose closes an accepted socket with a reset (no TIME_WAIT).
func resetClose(fd int) {
	setLinger0(fd)
	unix.Close(fd)
}

// sockaddrPort is sa's address and port.
func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// queued returns how many connections wait in p's accept queue: for a
// listening socket Linux reports it as TCP_INFO's unacked.
func (p *port) queued() int64 {
	var n int64
	p.lfd.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = int64(info.Unacked)
		}
	})
	return n
}

// rateLimit allows one event per window.
type rateLimit struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLimit) allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < 10*time.Second {
		return false
	}
	r.last = now
	return true
}
