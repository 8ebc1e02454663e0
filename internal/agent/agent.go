package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs"
)

// Agent keeps one node registered while its port answers. Build it with New,
// optionally bind its identity endpoint with Listen, then Run it.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	client *api.Client
	apiTr  *http.Transport // the api client's, closed when Run ends
	metaTr *http.Transport // metadata fetches (no proxy)
	id     NodeID
	lease  time.Duration
	ln     net.Listener // identity endpoint, nil when off
	clock  clock        // the port monitor's time

	identity atomic.Pointer[api.Identity] // without peers; nil until the address is known
	peers    atomic.Pointer[peerSet]
}

type peerSet struct {
	nodes []api.Node
	index int64
}

// Timeouts of the agent's own requests.
const (
	dialTimeout       = time.Second
	metadataTimeout   = 2 * time.Second
	cmdTimeout        = 10 * time.Second
	deregisterTimeout = 5 * time.Second
	peersWait         = 5 * time.Minute
)

// New fills cfg's defaults, checks it and resolves the node ID. It does no
// network I/O.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	return newAgent(cfg, log, os.Hostname)
}

func newAgent(cfg Config, log *slog.Logger, hostname func() (string, error)) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id, err := ResolveID(cfg.ID, cfg.StateFile, hostname)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log.With("component", "agent"), id: id, lease: leaseTTL(cfg.TTL.D()), clock: realClock{}}
	a.apiTr = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	a.metaTr = &http.Transport{
		DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
		DisableKeepAlives: true,
	}
	if files := (api.TLSFiles{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}); !files.IsZero() {
		if a.apiTr.TLSClientConfig, err = files.Config(); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	opts := []api.ClientOption{api.WithHTTPClient(&http.Client{Transport: a.apiTr})}
	if cfg.Token != "" {
		opts = append(opts, api.WithToken(cfg.Token))
	}
	if a.client, err = api.NewClient(cfg.Servers, opts...); err != nil {
		return nil, err
	}
	a.peers.Store(&peerSet{nodes: []api.Node{}})
	return a, nil
}

// NodeID returns the node's ID and where it came from.
func (a *Agent) NodeID() NodeID { return a.id }

// Lease is the store lease the node is registered on: TTL less the store's
// sweep, in whole seconds.
func (a *Agent) Lease() time.Duration { return a.lease }

// Listen binds the identity endpoint when IdentityAddr is set; Run serves it.
// Calling it is optional (Run listens if it was not called); calling it first
// exposes the bound address and catches a taken port before anything starts.
func (a *Agent) Listen() error {
	if a.cfg.IdentityAddr == "" || a.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.IdentityAddr)
	if err != nil {
		return fmt.Errorf("identity endpoint: listen on %s: %w (change --identity-addr)", a.cfg.IdentityAddr, err)
	}
	if a.cfg.IdentityCertFile != "" {
		cs, err := certs.NewServer(certs.Files{CertFile: a.cfg.IdentityCertFile, KeyFile: a.cfg.IdentityKeyFile})
		if err != nil {
			ln.Close()
			return fmt.Errorf("identity endpoint: %w", err)
		}
		ln = tls.NewListener(ln, cs.TLSConfig())
	}
	a.ln = ln
	return nil
}

// IdentityAddr is the bound identity endpoint address, or nil when off.
func (a *Agent) IdentityAddr() net.Addr {
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// ErrPortTimeout is returned by Run when the port did not accept connections
// within WaitTimeout.
var ErrPortTimeout = errors.New("the service port did not accept connections in time")

// Run finds the node's addresses, waits until its port accepts connections,
// registers it and keeps the registration true until ctx ends; then it
// deregisters the node and returns nil. Server outages never end it; it
// returns an error only when the port did not open within WaitTimeout or the
// identity endpoint cannot listen.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var srv *http.Server
	if a.ln != nil {
		srv = &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
		ln := a.ln
		wg.Go(func() { srv.Serve(ln) })
		a.log.Info("identity endpoint listening", "addr", ln.Addr().String(), "path", api.IdentityPath)
	}
	defer func() {
		cancel()
		if srv != nil {
			srv.Close()
		}
		wg.Wait()
		a.apiTr.CloseIdleConnections()
		a.metaTr.CloseIdleConnections()
	}()

	node, ok := a.discover(ctx)
	if !ok {
		return nil
	}
	a.identity.Store(&api.Identity{ID: node.ID, Service: node.Service, Address: node.Address, Port: node.Port, Alternates: node.Alternates})
	if srv != nil {
		wg.Go(func() { a.watchPeers(ctx) })
	}
	check := a.checkAddr(node.Address)
	if err := a.waitPort(ctx, check); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	health := make(chan bool, 1)
	wg.Go(func() { a.monitor(ctx, check, health) })
	attempted := a.keep(ctx, node, health)
	if attempted {
		a.deregister(node)
	}
	return nil
}

// discover finds the access address and the alternates, retrying with backoff
// until every one is found or ctx ends.
func (a *Agent) discover(ctx context.Context) (api.Node, bool) {
	node := api.Node{
		ID:      a.id.ID,
		Service: a.cfg.Service,
		Port:    a.cfg.Port,
		Weight:  a.cfg.Weight,
		Tags:    a.cfg.Tags,
		TTL:     api.Duration(a.lease),
		Source:  api.SourceAgent,
	}
	bo := newBackoff(a.cfg.BackoffMin.D(), a.cfg.BackoffMax.D())
	for {
		err := a.findAddresses(ctx, &node)
		if err == nil {
			return node, true
		}
		if ctx.Err() != nil {
			return node, false
		}
		wait := bo.next()
		a.log.Warn("cannot find the node's address; trying again", "err", err, "retry_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return node, false
		}
	}
}

func (a *Agent) findAddresses(ctx context.Context, node *api.Node) error {
	f := &finder{hc: &http.Client{Transport: a.metaTr, Timeout: metadataTimeout}, tokenURL: a.cfg.IMDSTokenURL, cmdTimeout: cmdTimeout}
	addr, from, err := f.first(ctx, a.cfg.Sources())
	if err != nil {
		return fmt.Errorf("access address: %w", err)
	}
	alts := make([]api.AltAddress, 0, len(a.cfg.Alternates))
	for _, alt := range a.cfg.Alternates {
		s, _ := ParseSource(alt.From)
		aa, err := f.find(ctx, s)
		if err != nil {
			return fmt.Errorf("alternate %s: %w", alt.Label, err)
		}
		alts = append(alts, api.AltAddress{Label: alt.Label, Address: aa})
	}
	node.Address = addr
	node.Alternates = alts
	if len(alts) == 0 {
		node.Alternates = nil
	}
	args := []any{"id", node.ID, "id_from", a.id.From, "address", addr.String(), "from", from.String()}
	for _, alt := range alts {
		args = append(args, "alt_"+alt.Label, alt.Address.String())
	}
	a.log.Info("found the node's addresses", args...)
	return nil
}

// checkAddr is where the port is probed: CheckAddr, else the access address
// when it is this machine's, else loopback.
func (a *Agent) checkAddr(addr netip.Addr) string {
	if a.cfg.CheckAddr != "" {
		return a.cfg.CheckAddr
	}
	if !isLocal(addr) {
		addr = netip.MustParseAddr("127.0.0.1")
	}
	return netip.AddrPortFrom(addr, uint16(a.cfg.Port)).String()
}

// isLocal reports whether a is a loopback address or one of this machine's
// interface addresses.
func isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}

// probe reports whether addr accepts a TCP connection within timeout.
func probe(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// waitPort returns once addr accepts a connection, or ErrPortTimeout after
// WaitTimeout, or nil when ctx ends.
func (a *Agent) waitPort(ctx context.Context, addr string) error {
	every := a.cfg.CheckInterval.D()
	var deadline <-chan time.Time
	if wt := a.cfg.WaitTimeout.D(); wt > 0 {
		t := time.NewTimer(wt)
		defer t.Stop()
		deadline = t.C
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	logged := false
	for {
		err := probe(ctx, addr, every)
		if err == nil {
			a.log.Info("service port answers", "addr", addr, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if !logged {
			a.log.Info("waiting for the service port to accept connections", "addr", addr, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return fmt.Errorf("%w: %s did not accept connections within %v (last error: %v); is the service running, and are --port and --check-addr right?", ErrPortTimeout, addr, a.cfg.WaitTimeout, err)
		case <-t.C:
		}
	}
}

// monitor probes the port every CheckInterval and reports on out each change:
// false once the port has not answered for UnhealthyAfter since its last
// answer, true when it answers again.
func (a *Agent) monitor(ctx context.Context, addr string, out chan bool) {
	every, after := a.cfg.CheckInterval.D(), a.cfg.UnhealthyAfter.D()
	healthy, lastOK := true, a.clock.Now()
	var lastErr error
	tick := a.clock.NewTicker(every)
	defer tick.Stop()
	deadline := a.clock.NewTimer(time.Hour)
	deadline.Stop()
	defer deadline.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			err := probe(ctx, addr, every)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				lastOK, lastErr = a.clock.Now(), nil
				if armed {
					deadline.Stop()
					armed = false
				}
				if !healthy {
					healthy = true
					a.log.Info("service port answers again", "addr", addr)
					send(out, true)
				}
				continue
			}
			lastErr = err
			if !healthy || armed {
				continue
			}
			if left := after - a.clock.Now().Sub(lastOK); left > 0 {
				deadline.Reset(left)
				armed = true
				continue
			}
		case <-deadline.C():
			armed = false
		}
		if healthy {
			healthy = false
			a.log.Warn("service port stopped answering; marking the node unhealthy", "addr", addr, "for", a.clock.Now().Sub(lastOK).Round(time.Millisecond), "err", lastErr)
			send(out, false)
		}
	}
}

// send replaces any value not yet read on out with v.
func send(out chan bool, v bool) {
	select {
	case <-out:
	default:
	}
	out <- v
}

func stateOf(healthy bool) api.NodeState {
	if healthy {
		return api.StateHealthy
	}
	return api.StateUnhealthy
}

// keep registers the node and keeps its registration true until ctx ends:
// renewed every third of the lease, registered again (with the state the
// port's health asks for) when the state changes or the registration is
// lost. It reports whether a registration was ever attempted.
func (a *Agent) keep(ctx context.Context, node api.Node, health <-chan bool) (attempted bool) {
	bo := newBackoff(a.cfg.BackoffMin.D(), a.cfg.BackoffMax.D())
	renewEvery := a.lease / 3
	// One request may take a quarter of the lease (at least 1 s): a server
	// that hangs (cut off, its store electing a leader) costs one attempt,
	// and the retry goes to another server (api.Client moves off it) with
	// most of the lease still left.
	reqTimeout := min(max(a.lease/4, time.Second), 5*time.Second)
	want := api.StateHealthy
	var (
		registered bool
		state      api.NodeState
		lastOK     time.Time
		failures   int
		warnedTTL  bool
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	rearm := func(d time.Duration) {
		timer.Stop()
		timer.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return attempted
		case h := <-health:
			want = stateOf(h)
			if registered && state != want && failures == 0 {
				rearm(0) // report the change now
			}
			continue
		case <-timer.C:
		}
		if registered && time.Since(lastOK) >= a.lease {
			registered = false
			a.log.Warn("no server answered for a whole lease; the registration has expired, registering again when one answers", "lease", a.lease)
		}
		rctx, cancel := context.WithTimeout(ctx, reqTimeout)
		var err error
		if registered && state == want {
			var res api.WriteResult
			res, err = a.client.Renew(rctx, node.Service, node.ID)
			cancel()
			if err == nil {
				if failures > 0 {
					a.log.Info("a server answers again; registration renewed", "after_failures", failures)
				}
				if res.TTL.D() > a.lease && !warnedTTL {
					warnedTTL = true
					a.log.Warn("the store granted a longer lease than asked: a dead agent's node stays that long", "asked", a.lease, "granted", res.TTL)
				}
				lastOK, failures = time.Now(), 0
				bo.reset()
				rearm(renewEvery)
				continue
			}
			if api.IsNotFound(err) || api.IsConflict(err) {
				cancel()
				registered = false
				a.log.Warn("registration lost; registering again", "err", err)
				rearm(0)
				continue
			}
		} else {
			node.State = want
			attempted = true
			var res api.WriteResult
			start := time.Now()
			res, err = a.client.Register(rctx, node)
			cancel()
			if err == nil {
				registered, state, lastOK, failures = true, want, time.Now(), 0
				bo.reset()
				a.log.Info("registered", "id", node.ID, "service", node.Service, "address", node.Address.String(), "port", node.Port, "state", string(want),
					"lease", a.lease, "took", time.Since(start).Round(100*time.Microsecond), "lease_id", fmt.Sprintf("%x", res.Lease))
				rearm(renewEvery)
				continue
			}
		}
		if ctx.Err() != nil {
			return attempted
		}
		failures++
		wait := bo.next()
		if registered {
			wait = min(wait, max(a.lease-time.Since(lastOK), 0))
		}
		a.log.Warn("no server took the registration; trying again", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
		rearm(wait)
	}
}

// deregister removes the node, trying every server, within deregisterTimeout.
func (a *Agent) deregister(node api.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancel()
	_, err := a.client.Deregister(ctx, node.Service, node.ID)
	switch {
	case err == nil:
		a.log.Info("deregistered", "id", node.ID, "service", node.Service)
	case api.IsNotFound(err):
		a.log.Info("deregistered (the registration was already gone)", "id", node.ID, "service", node.Service)
	default:
		a.log.Error("deregister; the node stays until its lease expires", "err", err, "lease", a.lease)
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
