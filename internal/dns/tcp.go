package dns

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// capListener is the TCP surface's budget: at most MaxTCPConnections open
// (beyond it a new connection is closed at once, and counted), and on
// EMFILE/ENFILE accepting pauses with a back-off instead of spinning.
type capListener struct {
	net.Listener
	s *Server
}

func (l *capListener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				// Out of descriptors: wait for some to be freed, as
				// net/http's Serve does (5 ms doubling to 1 s).
				l.s.m.tcpConns.WithLabelValues("emfile").Inc()
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.s.plog.Warn("dns tcp accept paused: out of file descriptors", "err", err, "pause", pause)
				time.Sleep(pause)
				continue
			}
			return nil, err
		}
		pause = 0
		if l.s.tcpOpen.Load() >= int64(l.s.o.MaxTCPConnections) {
			l.s.m.tcpRefused.Inc()
			c.Close()
			continue
		}
		l.s.tcpOpen.Add(1)
		l.s.m.tcpOpen.Inc()
		return &countedConn{Conn: c, s: l.s}, nil
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	s    *Server
	done atomic.Bool
}

func (c *countedConn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.s.tcpOpen.Add(-1)
		c.s.m.tcpOpen.Dec()
	}
	return c.Conn.Close()
}

// tcpIdle is how long a TCP connection may wait for its next query: the
// configured idle timeout, cut to 1s while the surface is more than 3/4
// full (RFC 7766 6.2.3: a busy server closes idle connections sooner).
func (s *Server) tcpIdle() time.Duration {
	if s.tcpOpen.Load()*4 > int64(s.o.MaxTCPConnections)*3 {
		return min(time.Second, s.o.TCPIdleTimeout)
	}
	return s.o.TCPIdleTimeout
}
