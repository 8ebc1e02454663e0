package lb

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/netlimit"
)

// portKey names one listening port: a listener and one address of its range.
type portKey struct {
	name string
	addr netip.AddrPort
}

// port is one listening socket and the connections it accepted. A relay
// loop accepts its clients (accept.go); each one is a conn (conn.go)
// dialed to a backend (dial.go); its counters are stats.go's.
type port struct {
	key  portKey
	spec atomic.Pointer[api.Listener]
	svc  atomic.Pointer[service]
	lfd  listenFD
	slot pref // in the poller's table

	stats  counters
	paused atomic.Uint64 // times the port stopped accepting at max_conns

	// Guarded by Server.mu.
	err        error
	retryAt    time.Time
	closing    bool
	drainUntil time.Time
	recutAt    time.Time // when a timed-out drain may be cut again

	limit *netlimit.Surface // the balancer's cap, over every port

	mu    sync.Mutex
	conns map[*conn]struct{} // nil until the first connection
}

func newPort(k portKey, l *api.Listener, svc *service) *port {
	p := &port{key: k}
	p.lfd.fd = -1
	p.spec.Store(l)
	p.svc.Store(svc)
	return p
}

// stopAccepting closes the listening socket; open connections stay.
func (s *Server) stopAccepting(p *port) {
	if p.closing {
		return
	}
	p.closing = true
	s.closeListener(p)
}

// cutAll closes every open connection of p.
func (s *Server) cutAll(p *port) {
	p.mu.Lock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		s.cut(c, &endDrain)
	}
}

// release counts a connection of p as ended, and lets p accept again if
// it stopped at its max_conns.
func (s *Server) release(p *port) {
	p.stats.active.Add(-1)
	if p.limit != nil {
		p.limit.Release()
	}
	if p.spec.Load().MaxConns > 0 {
		s.resume(p)
	}
}
