package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what a full Listener does with a new client.
type Mode int

const (
	// Refuse accepts the client, writes the Refusal (if any) and closes it.
	Refuse Mode = iota
	// Evict closes the listener's oldest idle connection to make room; with
	// none idle it refuses.
	Evict
	// Pause stops accepting until a slot frees; clients wait in the
	// kernel's backlog (and time out there, if it takes long).
	Pause
)

// Backoff bounds of Accept errors (EMFILE, ENFILE, ...).
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
	logEvery   = 10 * time.Second
)

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	Surface *Surface
	Mode    Mode
	// Refusal is written (best effort, without blocking) to a refused
	// client before it is closed, e.g. an HTTP 503.
	Refusal []byte
	Logger  *slog.Logger
	// sleep waits d or until stop closes (tests replace it).
	sleep func(d time.Duration, stop <-chan struct{})
}

// Listener is a net.Listener whose connections count against a Surface.
type Listener struct {
	net.Listener
	o      ListenerOptions
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	idle    map[*Conn]time.Time
	lastLog time.Time
	errs    int
}

// NewListener wraps ln.
func NewListener(ln net.Listener, o ListenerOptions) *Listener {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.sleep == nil {
		o.sleep = func(d time.Duration, stop <-chan struct{}) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-stop:
			}
		}
	}
	return &Listener{Listener: ln, o: o, log: o.Logger.With("surface", o.Surface.Name()), closed: make(chan struct{}), idle: map[*Conn]time.Time{}}
}

// Close stops accepting.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Accept returns the next client that fits the surface. Errors other than a
// closed listener (EMFILE and the like) are retried after a back-off
// instead of being returned, so a caller's loop cannot spin on them.
func (l *Listener) Accept() (net.Conn, error) {
	s := l.o.Surface
	var backoff time.Duration
	for {
		if l.o.Mode == Pause {
			// Wait for room without taking it: several listeners may share
			// a surface, and one without clients must hold no slot.
			counted := false
			for !s.Room() {
				if !counted {
					s.Count(ReasonPaused)
					counted = true
				}
				if !s.Wait(l.closed) {
					return nil, net.ErrClosed
				}
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isClosed(l.closed) {
				return nil, err
			}
			s.acceptErrors.Add(1)
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			l.logAcceptError(err, backoff)
			l.o.sleep(backoff, l.closed)
			continue
		}
		backoff = 0
		ok, why := s.TryAcquire()
		if !ok && l.o.Mode == Evict && l.evictOldest() {
			s.Count(ReasonEvicted)
			ok, why = s.TryAcquire()
		}
		if !ok {
			s.Count(why)
			l.refuse(c)
			continue
		}
		wc := &Conn{Conn: c, l: l}
		if l.o.Mode == Evict {
			l.mu.Lock()
			l.idle[wc] = time.Now()
			l.mu.Unlock()
		}
		return wc, nil
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (l *Listener) logAcceptError(err error, backoff time.Duration) {
	l.mu.Lock()
	l.errs++
	now := time.Now()
	if now.Sub(l.lastLog) < logEvery {
		l.mu.Unlock()
		return
	}
	n := l.errs
	l.errs, l.lastLog = 0, now
	l.mu.Unlock()
	l.log.Error("accept failed; backing off", "err", err, "retry_in", backoff, "errors", n)
}

func (l *Listener) refuse(c net.Conn) {
	if len(l.o.Refusal) > 0 {
		// A fresh socket's send buffer is empty: this does not block.
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		c.Write(l.o.Refusal)
	} else if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset: no TIME_WAIT for a refused client
	}
	c.Close()
}

// evictOldest closes the connection that has been idle longest.
func (l *Listener) evictOldest() bool {
	l.mu.Lock()
	var oldest *Conn
	var at time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(at) {
			oldest, at = c, t
		}
	}
	if oldest != nil {
		delete(l.idle, oldest)
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// SetIdle marks c (a connection this listener returned) idle or busy: only
// idle connections are evicted.
func (l *Listener) SetIdle(c net.Conn, idle bool) {
	// A TLS listener over this one hands out *tls.Conn: look beneath.
	for range 4 {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	wc, ok := c.(*Conn)
	if !ok || wc.l != l || l.o.Mode != Evict {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if wc.done.Load() {
		return
	}
	if idle {
		l.idle[wc] = time.Now()
	} else {
		delete(l.idle, wc)
	}
}

// ConnState is an http.Server ConnState hook: new and idle keep-alive
// connections may be evicted, those serving a request may not.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew, http.StateIdle:
		l.SetIdle(c, true)
	case http.StateActive, http.StateHijacked, http.StateClosed:
		l.SetIdle(c, false)
	}
}

// Conn is a connection of a Listener; Close gives its slot back.
type Conn struct {
	net.Conn
	l    *Listener
	done atomic.Bool
}

// Close closes the connection and releases its slot (once).
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if !c.done.Swap(true) {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		c.l.o.Surface.Release()
	}
	return err
}

// Unwrap returns the underlying connection.
func (c *Conn) Unwrap() net.Conn { return c.Conn }
