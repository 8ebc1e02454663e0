package dns

import (
	"errors"
	"net"
	"sync"
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
		cc := &countedConn{Conn: c, s: l.s}
		l.s.tcpLive.Store(cc, struct{}{})
		l.s.tightenDeadlines()
		return cc, nil
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	s    *Server
	done atomic.Bool
	mu   sync.Mutex
	dl   time.Time // the read deadline set last
}

func (c *countedConn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.s.tcpOpen.Add(-1)
		c.s.m.tcpOpen.Dec()
		c.s.tcpLive.Delete(c)
	}
	return c.Conn.Close()
}

// SetReadDeadline cuts the wait for a query to tcpIdle while the surface
// is more than 3/4 full: the first query of a connection too (the server's
// ReadTimeout), so that connections that never send anything free their
// slots within a second under a flood instead of after the full timeout.
func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.s.tcpIdle(); time.Until(t) > d {
		t = time.Now().Add(d)
	}
	c.dl = t
	return c.Conn.SetReadDeadline(t)
}

// tightenDeadlines applies tcpIdle to the waits already under way when
// the surface has just become more than 3/4 full: a deadline is set when a
// wait starts, and the silent connections of a flood started theirs while
// there was room.
func (s *Server) tightenDeadlines() {
	d := s.tcpIdle()
	if d >= s.o.TCPIdleTimeout {
		return
	}
	limit := time.Now().Add(d)
	s.tcpLive.Range(func(k, _ any) bool {
		c := k.(*countedConn)
		c.mu.Lock()
		if c.dl.After(limit) {
			c.dl = limit
			c.Conn.SetReadDeadline(limit)
		}
		c.mu.Unlock()
		return true
	})
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
