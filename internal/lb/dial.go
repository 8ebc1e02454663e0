package lb

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
)

// connect dials a backend for a client from src, trying the next one on
// failure up to the listener's retries; it returns nil when none answered.
func (s *Server) connect(p *port, spec *api.Listener, src netip.Addr) (*os.File, *backend) {
	pl := p.svc.Load().pool.Load()
	timeout := spec.ConnectTimeout.D()
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
		f, err := s.dial(addr, timeout)
		if err == nil {
			return f, be
		}
		if s.ctx.Err() != nil {
			return nil, nil
		}
		p.stats.connectErrors.Add(1)
		be.stats.connectErrors.Add(1)
		switch connectFailure(err) {
		case failRefused:
			p.stats.connectRefused.Add(1)
			be.stats.connectRefused.Add(1)
		case failTimeout:
			p.stats.connectTimeouts.Add(1)
			be.stats.connectTimeouts.Add(1)
		}
		if s.o.Failures != nil {
			s.o.Failures.ConnectFailed(be.service, be.node)
		}
		s.log.Debug("backend connect failed", "listener", p.key.name, "node", be.node, "addr", be.addr.String(), "err", err, "attempt", attempt+1)
		skip = append(skip, be)
	}
	return nil, nil
}

// dial connects to addr within timeout, or until the server stops, with
// the few syscalls a connect needs: socket, TCP_NODELAY, connect, the
// netpoller's registration, and connect again (before waiting and once the
// socket is writable), whose answer (0 or EISCONN: connected, EALREADY: not yet, an
// error: it failed) replaces net.Dialer's getsockopt(SO_ERROR),
// getpeername and getsockname.
func (s *Server) dial(addr netip.AddrPort, timeout time.Duration) (*os.File, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	f := os.NewFile(uintptr(fd), "lb-backend")
	if err == nil { // connected at once
		return f, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	// On loopback and near backends the handshake is over by now: ask
	// before arming a deadline and a cancellation for the wait.
	var cerr error
	rc.Control(func(fd uintptr) {
		for cerr = unix.Connect(int(fd), sa); cerr == unix.EINTR; {
			cerr = unix.Connect(int(fd), sa)
		}
	})
	switch cerr {
	case nil, unix.EISCONN:
		return f, nil
	case unix.EALREADY, unix.EINPROGRESS:
	default:
		f.Close()
		return nil, os.NewSyscallError("connect", cerr)
	}
	f.SetWriteDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(s.ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	// Asked first before any wait: the netpoller's readiness may have come
	// before Write reset it.
	err = rc.Write(func(fd uintptr) bool {
		for {
			cerr = unix.Connect(int(fd), sa)
			if cerr != unix.EINTR {
				break
			}
		}
		switch cerr {
		case nil, unix.EISCONN:
			cerr = nil
			return true
		case unix.EALREADY, unix.EINPROGRESS:
			return false // a spurious wake-up: wait on
		}
		return true
	})
	stop()
	if err == nil {
		err = cerr
	}
	if err != nil {
		f.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
		}
		return nil, os.NewSyscallError("connect", err)
	}
	f.SetWriteDeadline(time.Time{})
	return f, nil
}

// Kinds of failed connects, as the stats split them.
const (
	failOther = iota
	failRefused
	failTimeout
)

// connectFailure classifies a failed dial: refused by the backend
// (ECONNREFUSED), timed out, or anything else.
func connectFailure(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	}
	return failOther
}
