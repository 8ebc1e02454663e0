package lb

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialNext connects c to the next backend its listener's balance picks,
// skipping those that failed it, up to the listener's retries; with none
// left (or none healthy) the client is dropped. A connect that is not over
// at once waits in the loop for the socket to be writable, or for c's
// deadline.
func (l *evloop) dialNext(c *conn) {
	p, spec := c.port, c.spec
	pl := p.svc.Load().pool.Load()
	for ; c.attempt <= spec.RetryCount(); c.attempt++ {
		be := pl.pick(spec.Balance, c.src.Addr(), c.skip)
		if be == nil {
			break
		}
		if c.attempt > 0 {
			p.stats.retries.Add(1)
			be.stats.retries.Add(1)
		}
		addr := be.addr
		if spec.TargetPort != 0 {
			addr = netip.AddrPortFrom(addr.Addr(), uint16(spec.TargetPort))
		}
		fd, done, err := dial(addr)
		if err == nil {
			if err = l.watch(c, fd); err != nil {
				unix.Close(fd)
				err = localError{os.NewSyscallError("epoll_ctl", err)}
			}
		}
		if err != nil && errors.As(err, new(localError)) {
			// Out of descriptors, ports or memory here: no fault of the
			// backend's, so the health checker is not told.
			l.drop(c, "local_error", &p.stats.refused, err)
			return
		}
		if err != nil {
			l.failed(c, be, err)
			continue
		}
		c.server, c.be = fd, be
		if done {
			l.connected(c)
			return
		}
		c.state = stConnect
		l.setTimer(c, time.Now().Add(spec.ConnectTimeout.D()))
		l.speculate(c)
		return
	}
	l.drop(c, "no_backend", &p.stats.refused, nil)
}

// speculate sends the client's first bytes to the backend at once, as
// HAProxy does: a connect to a near backend (loopback, mostly) is over by
// the time connect returns, and a write that goes through proves it, which
// saves the loop a round for the socket to turn writable. A write that
// finds the connect under way leaves the bytes to go once it is over; one
// that fails fails the connect, and they go to the next backend. A client
// that has sent nothing yet (where the server speaks first) costs a read.
func (l *evloop) speculate(c *conn) {
	ds := &c.dir[0]
	if c.spec.ProxyProtocol != "" { // its header goes first, once connected
		return
	}
	if ds.pbuf == nil {
		n, err := readNB(c.client, l.buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil || n == 0:
			c.rd[0] = true // the relay finds the end (or the error) again
			return
		}
		ds.pbuf = chunkBufs.Get().(*[]byte)
		ds.pend = (*ds.pbuf)[:copy(*ds.pbuf, l.buf[:n])]
		c.rd[0] = n == len(l.buf) || c.hup[0]
	}
	m, err := writeNB(c.server, ds.pend)
	switch err {
	case nil:
		ds.pend = ds.pend[m:]
		ds.n += int64(m)
		l.connected(c)
	case unix.EAGAIN: // not connected yet
	default:
		l.dialFailed(c, os.NewSyscallError("connect", err))
	}
}

// dialFailed ends c's connect to its backend with err and tries the next.
func (l *evloop) dialFailed(c *conn, err error) {
	l.clearTimer(c)
	l.forget(c.server)
	unix.Close(c.server)
	c.server = -1
	c.rd[1], c.wr[1], c.hup[1], c.fin[1] = false, false, false, false
	be := c.be
	c.be = nil
	l.failed(c, be, err)
	if l.s.ctx.Err() != nil {
		l.drop(c, "no_backend", &c.port.stats.refused, nil)
		return
	}
	c.attempt++
	l.dialNext(c)
}

// failed counts a failed connect to be, tells the health checker, and
// skips be for c's next try.
func (l *evloop) failed(c *conn, be *backend, err error) {
	p, s := c.port, l.s
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
	s.log.Debug("backend connect failed", "listener", p.key.name, "node", be.node, "addr", be.addr.String(), "err", err, "attempt", c.attempt+1)
	c.skip = append(c.skip, be)
}

// errConnectTimeout is a connect that did not finish within the
// listener's connect_timeout.
var errConnectTimeout = &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}

// dial starts a non-blocking connect to addr with the few syscalls it
// needs (socket, TCP_NODELAY, connect) and reports whether it is over
// already; else the socket turns writable when it is (or reports an error).
func dial(addr netip.AddrPort) (fd int, done bool, err error) {
	rs, family := sockaddrOf(addr)
	fd, err = socketNB(family)
	if err != nil {
		return -1, false, localError{os.NewSyscallError("socket", err)}
	}
	setNoDelay(fd)
	switch err = connectNB(fd, &rs); err {
	case nil:
		return fd, true, nil
	case unix.EINPROGRESS:
		return fd, false, nil
	}
	closeFD(fd)
	if err == unix.EADDRNOTAVAIL || err == unix.ENOBUFS || err == unix.ENOMEM {
		return -1, false, localError{os.NewSyscallError("connect", err)}
	}
	return -1, false, os.NewSyscallError("connect", err)
}

// localError is a dial that failed for want of something here
// (descriptors, ephemeral ports, memory), not because of the backend.
type localError struct{ error }

func (e localError) Unwrap() error { return e.error }

// connectError is why a connect on fd failed (its socket's error).
func connectError(fd int) error {
	n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil {
		if n == 0 {
			n = int(unix.ECONNRESET)
		}
		err = unix.Errno(n)
	}
	return os.NewSyscallError("connect", err)
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
