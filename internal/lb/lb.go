package lb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/netlimit"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/upgrade"
)

// Snapshots is where the balancer reads the registry (a *registry.Watcher).
type Snapshots interface {
	Current() *registry.Snapshot
	Next(*registry.Snapshot) <-chan struct{}
}

// FailureReporter hears about failed connects to backends: the health
// checker's passive input (health.Checker implements it). It must not block.
type FailureReporter interface {
	ConnectFailed(service, node string)
}

// Options configure a Server.
type Options struct {
	Snapshots Snapshots
	// Failures, when set, is told about every failed connect to a backend.
	Failures FailureReporter
	Logger   *slog.Logger
	// Registerer, when set, gets the balancer's Prometheus collector.
	Registerer prometheus.Registerer
	// MaxConns caps client connections over every listener together (0:
	// only Budget bounds them). At the cap every port stops accepting until
	// a connection ends: clients wait in the kernel's backlog.
	MaxConns int
	// Budget is the process's descriptor budget; each proxied connection
	// takes two (client and backend). Nil: no budget.
	Budget *netlimit.Budget
	// Handover, when set, hands each port's listening socket over from a
	// predecessor (upgrade in place) and on to a successor; nil binds.
	Handover *upgrade.Sockets
}

// reapEvery is how often the reaper samples connections (idle timeouts,
// byte counters, cut backends, drain deadlines) and retries failed binds.
const (
	reapEvery  = 250 * time.Millisecond
	rebindWait = 2 * time.Second
	// recutEvery spaces further cuts of a port whose drain timed out (a
	// connection registered while it was being cut).
	recutEvery = 5 * time.Second
)

// Server runs the balancer's listeners. Run applies every snapshot until its
// context ends; Stats reads the live counters at any time.
type Server struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	ports    map[portKey]*port // wanted by the current snapshot
	draining map[*port]struct{}
	services map[string]*service

	revision atomic.Int64
	cuts     atomic.Int64  // drain-timeout cuts started (tests)
	applied  chan struct{} // closed and replaced after every apply
	wg       sync.WaitGroup
	ctx      context.Context // Run's, for dials
	connLog  connLog
	// conns is every listener's connections together: the global cap and
	// the descriptor budget.
	conns *netlimit.Surface
	// handedOff: a successor serves the ports; bind nothing any more.
	handedOff bool

	// poll is the one epoll set of every listening socket, with its
	// goroutine; loops are the relay loops, handed new clients in turn.
	poll    *poller
	loops   []*evloop
	nextIdx atomic.Uint32
	// Ports waiting for room under the global cap or the descriptor
	// budget (roomLoop puts them back).
	roomMu   sync.Mutex
	roomWait []*port
	roomKick chan struct{}
	// acceptBackoff is the current back-off after failed accepts (ns).
	acceptBackoff atomic.Int64
	acceptLog     rateLimit
}

// service is the balancer's state for one service, stable across snapshots.
type service struct {
	name     string
	pool     atomic.Pointer[pool]
	backends map[string]*backend // by node ID: healthy ones and down ones still carrying connections
	index    int64
	present  bool
}

// New returns a balancer; Run starts it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		o: o, log: o.Logger.With("component", "lb"),
		ports: map[portKey]*port{}, draining: map[*port]struct{}{}, services: map[string]*service{},
		applied: make(chan struct{}), roomKick: make(chan struct{}, 1),
		conns: netlimit.NewSurface("lb", o.MaxConns, 2, o.Budget),
	}
	s.connLog.log = o.Logger.With("component", "lb.conn")
	if o.Registerer != nil {
		if err := o.Registerer.Register(collector{s}); err != nil {
			s.log.Warn("lb metrics not registered", "err", err)
		}
		if err := s.conns.Register(o.Registerer); err != nil {
			s.log.Warn("lb connection cap metrics not registered", "err", err)
		}
	}
	return s
}

// Run applies snapshots until ctx ends, then closes every listener and
// connection and returns once all of them are gone.
func (s *Server) Run(ctx context.Context) error {
	s.ctx = ctx
	var loops []*evloop
	for range max(1, runtime.GOMAXPROCS(0)) {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range loops {
				l.close() // never started: it holds nothing
			}
			return fmt.Errorf("lb: %w", err)
		}
		loops = append(loops, l)
	}
	s.mu.Lock() // the metrics read them
	s.loops = loops
	s.mu.Unlock()
	s.poll = &poller{loops: loops}
	s.wg.Add(1 + len(loops))
	for _, l := range loops {
		go func() { defer s.wg.Done(); l.run() }()
	}
	go s.roomLoop(ctx.Done())
	snap := s.o.Snapshots.Current()
	s.apply(snap, time.Now())
	tick := time.NewTicker(reapEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-s.o.Snapshots.Next(snap):
			snap = s.o.Snapshots.Current()
			s.apply(snap, time.Now())
		case now := <-tick.C:
			s.reap(now)
		}
	}
}

// Revision is the store revision of the last snapshot applied.
func (s *Server) Revision() int64 { return s.revision.Load() }

// WaitRevision returns once a snapshot at rev or later is applied.
func (s *Server) WaitRevision(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		ch := s.applied
		s.mu.Unlock()
		if s.revision.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// apply makes the running listeners and backend pools those of snap.
func (s *Server) apply(snap *registry.Snapshot, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.services {
		svc.present = false
	}
	want := map[portKey]*api.Listener{}
	for _, l := range snap.Listeners() {
		svc := s.serviceLocked(l.Service)
		if !svc.present {
			svc.present = true
			s.updateService(svc, snap, now)
		}
		for _, p := range l.PortList() {
			want[portKey{l.Name, netip.AddrPortFrom(l.Bind, uint16(p))}] = l
		}
	}
	for name, svc := range s.services {
		if !svc.present {
			s.updateService(svc, snap, now) // gone: its pool empties
			if len(svc.backends) == 0 {
				delete(s.services, name)
			}
		}
	}
	for k, p := range s.ports {
		if _, ok := want[k]; !ok {
			s.drainLocked(p, now)
		}
	}
	var opened, failed int
	if s.handedOff {
		want = nil // a successor serves every port
	}
	for k, l := range want {
		if p, ok := s.ports[k]; ok {
			old := p.spec.Swap(l)
			p.svc.Store(s.services[l.Service])
			if old.MaxConns != l.MaxConns {
				s.resume(p)
			}
			continue
		}
		p := newPort(k, l, s.services[l.Service])
		p.limit = s.conns
		s.ports[k] = p
		if err := s.listenLocked(p); err != nil {
			failed++
		} else {
			opened++
		}
	}
	if opened+failed > 0 {
		s.log.Info("listeners changed", "opened", opened, "failed", failed, "ports", len(s.ports), "draining", len(s.draining), "revision", snap.Revision)
	}
	s.revision.Store(snap.Revision)
	close(s.applied)
	s.applied = make(chan struct{})
}

func (s *Server) serviceLocked(name string) *service {
	svc := s.services[name]
	if svc == nil {
		svc = &service{name: name, backends: map[string]*backend{}, index: -1}
		svc.pool.Store(newPool(nil, nil))
		s.services[name] = svc
	}
	return svc
}

// updateService rebuilds a service's pool when its nodes or their health
// changed. Backends keep their identity (and counters) while their node is
// registered at the same address, healthy or not: a node that flaps keeps
// its totals, and a down node stays in the stats, marked down. A backend is
// forgotten once its node is gone (or moved) and its last connection ended.
func (s *Server) updateService(svc *service, snap *registry.Snapshot, now time.Time) {
	view, ok := snap.Service(svc.name)
	var index int64
	if ok && svc.present {
		index = view.Index
	}
	if index == svc.index && index != 0 {
		return
	}
	svc.index = index
	healthy := map[string]bool{}
	registered := map[string]bool{}
	var bs []*backend
	var weights []int
	if ok && svc.present {
		served := make(map[string]bool, len(view.Healthy()))
		for _, n := range view.Healthy() {
			served[n.ID] = true
		}
		for _, n := range view.Nodes() {
			addr := netip.AddrPortFrom(n.Address, uint16(n.PortOf(view.Service)))
			b := svc.backends[n.ID]
			if b == nil || b.addr != addr {
				if b != nil {
					// Moved: the old backend drains under its own key.
					b.downSince.CompareAndSwap(0, now.UnixNano())
					if b.stats.active.Load() > 0 {
						svc.backends[n.ID+"@"+b.addr.String()] = b
					}
				}
				b = &backend{service: svc.name, node: n.ID, addr: addr, seed: mix64(uint64(len(n.ID)) ^ strHash(n.ID))}
				b.downSince.Store(now.UnixNano())
				svc.backends[n.ID] = b
			}
			registered[n.ID] = true
			b.weight.Store(int64(max(n.Weight, 1)))
			if !served[n.ID] { // down, drained or in maintenance
				continue
			}
			b.downSince.Store(0)
			healthy[n.ID] = true
			bs = append(bs, b)
			weights = append(weights, max(n.Weight, 1))
		}
	}
	for id, b := range svc.backends {
		if !healthy[id] {
			b.downSince.CompareAndSwap(0, now.UnixNano())
			if !registered[id] && b.stats.active.Load() == 0 {
				delete(svc.backends, id)
			}
		}
	}
	svc.pool.Store(newPool(bs, weights))
}

func strHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// listenLocked binds p and adds it to the loops' sets; a failure leaves p
// in the failed state, retried by the reaper.
func (s *Server) listenLocked(p *port) error {
	if s.handedOff {
		return nil
	}
	err := s.openListener(p)
	if err != nil {
		err = listenError(p, err)
		if p.err == nil || p.err.Error() != err.Error() {
			s.log.Error("listener cannot open", "listener", p.key.name, "addr", p.key.addr.String(), "err", err)
		}
		p.err, p.retryAt = err, time.Now().Add(rebindWait)
		return err
	}
	p.err = nil
	p.slot = s.poll.add(p)
	p.lfd.mu.Lock()
	s.armLocked(p)
	p.lfd.mu.Unlock()
	return nil
}

func listenError(p *port, err error) error {
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return fmt.Errorf("listen on %s for listener %s: %w (out of file descriptors: raise the open-file limit, e.g. LimitNOFILE= in the systemd unit or ulimit -n, or use fewer ports)", p.key.addr, p.key.name, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("listen on %s for listener %s: %w (another process holds the port; free it or change the listener's port)", p.key.addr, p.key.name, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("listen on %s for listener %s: %w (no interface has that address; change the listener's bind)", p.key.addr, p.key.name, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("listen on %s for listener %s: %w (ports below 1024 need root or CAP_NET_BIND_SERVICE)", p.key.addr, p.key.name, err)
	}
	return fmt.Errorf("listen on %s for listener %s: %w", p.key.addr, p.key.name, err)
}

// drainLocked stops p accepting; its connections run on until they end or
// its drain timeout passes.
func (s *Server) drainLocked(p *port, now time.Time) {
	delete(s.ports, p.key)
	s.stopAccepting(p)
	p.drainUntil = now.Add(p.spec.Load().DrainTimeout.D())
	if p.stats.active.Load() > 0 {
		s.draining[p] = struct{}{}
	}
}

// Handoff stops every port accepting (a successor holds the sockets now:
// closing this process's descriptors leaves the kernel's sockets and their
// backlogs to it) and lets the open connections run until they end or
// their listener's drain_timeout passes. It returns when none is left or
// ctx ends; Run goes on reaping meanwhile.
func (s *Server) Handoff(ctx context.Context) error {
	s.mu.Lock()
	s.handedOff = true
	now := time.Now()
	for _, p := range s.ports {
		s.drainLocked(p, now)
	}
	s.mu.Unlock()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := 0
		for p := range s.draining {
			n += int(p.stats.active.Load())
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d connections still open: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// shutdown closes every listener and cuts every connection, then waits for
// their goroutines.
func (s *Server) shutdown() {
	s.mu.Lock()
	var all []*port
	for _, p := range s.ports {
		s.stopAccepting(p)
		all = append(all, p)
	}
	for p := range s.draining {
		all = append(all, p)
	}
	s.ports, s.draining = map[portKey]*port{}, map[*port]struct{}{}
	s.mu.Unlock()
	for _, p := range all {
		s.cutAll(p)
	}
	// The loops cut what they still hold (connections accepted meanwhile)
	// and end.
	for _, l := range s.loops {
		l.stop()
	}
	s.wg.Wait()
}

// Stats returns every port's live counters, sorted by listener name and
// address, draining ports included.
func (s *Server) Stats() []api.ListenerStats {
	s.mu.Lock()
	ports := make([]*port, 0, len(s.ports)+len(s.draining))
	for _, p := range s.ports {
		ports = append(ports, p)
	}
	for p := range s.draining {
		if p.stats.active.Load() > 0 {
			ports = append(ports, p)
		}
	}
	backends := map[string][]api.BackendStats{}
	for name, svc := range s.services {
		backends[name] = svc.backendStats()
	}
	s.mu.Unlock()
	out := make([]api.ListenerStats, 0, len(ports))
	for _, p := range ports {
		spec := p.spec.Load()
		st := api.ListenerStats{
			Name: p.key.name, Addr: p.key.addr, Service: spec.Service, Balance: spec.Balance,
			State: api.ListenerListening, ConnStats: p.stats.snapshot(), Backends: backends[spec.Service],
			MaxConns: spec.MaxConns, Paused: p.paused.Load(),
		}
		s.mu.Lock()
		if !p.closing && p.err == nil {
			st.Queued = p.queued()
		}
		switch {
		case p.closing:
			st.State = api.ListenerDraining
		case p.err != nil:
			st.State, st.Error = api.ListenerFailed, p.err.Error()
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b api.ListenerStats) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), a.Addr.Compare(b.Addr), cmp.Compare(a.State, b.State))
	})
	return out
}

func (svc *service) backendStats() []api.BackendStats {
	out := make([]api.BackendStats, 0, len(svc.backends))
	for _, b := range svc.backends {
		bs := api.BackendStats{
			Node: b.node, Addr: b.addr, Healthy: true, Weight: int(b.weight.Load()),
			ConnStats: b.stats.snapshot(),
		}
		if ns := b.downSince.Load(); ns != 0 {
			t := time.Unix(0, ns).UTC()
			bs.Healthy, bs.DownSince = false, &t
		}
		out = append(out, bs)
	}
	slices.SortFunc(out, func(a, b api.BackendStats) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), a.Addr.Compare(b.Addr))
	})
	return out
}

// backendList returns every backend the balancer knows.
func (s *Server) backendList() []*backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*backend
	for _, svc := range s.services {
		for _, b := range svc.backends {
			out = append(out, b)
		}
	}
	return out
}
