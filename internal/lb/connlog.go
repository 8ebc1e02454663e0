package lb

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// connLog writes the connection log of listeners with log: true: one line
// per proxied connection when it ends, with HAProxy tcplog's fields, and a
// line per client closed before a backend was dialed. Those refusals come
// from outside, so their lines are limited to refusedPerSecond, with the
// number left out carried on the next line.
type connLog struct {
	log *slog.Logger

	mu         sync.Mutex
	windowFrom time.Time
	inWindow   int
	suppressed int
}

const refusedPerSecond = 50

// ended logs a proxied connection at its end: in and out are the bytes
// from and to the client.
func (l *connLog) ended(c *conn, in, out uint64) {
	end := "done"
	if r := c.reason.Load(); r != nil {
		end = *r
	} else if f := c.firstEnd.Load(); f != nil {
		end = *f + "_closed"
	}
	l.log.Info("connection",
		"listener", c.port.key.name, "port", c.port.key.addr.Port(),
		"client", c.src.String(), "service", c.be.service, "node", c.be.node, "backend", c.be.addr.String(),
		"connect_ms", ms(c.connected), "duration_ms", ms(time.Since(c.start)),
		"bytes_in", in, "bytes_out", out, "end", end)
}

// refused logs a client closed before it was proxied, within the rate.
func (l *connLog) refused(listener string, client netip.AddrPort, why string, err error) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.windowFrom) >= time.Second {
		l.windowFrom, l.inWindow = now, 0
	}
	if l.inWindow >= refusedPerSecond {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.inWindow++
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	args := []any{"listener", listener, "client", client.String(), "end", why}
	if err != nil {
		args = append(args, "err", err)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Info("connection refused", args...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
