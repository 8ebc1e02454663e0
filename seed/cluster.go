package seed

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
)

// Defaults of Config.
const (
	DefaultTendInterval = time.Second
	DefaultFailRounds   = 2
)

// Errors of a Cluster.
var (
	// ErrNoNodes: the node map is empty (the cluster is seeding again).
	ErrNoNodes = errors.New("no live node known")
	// ErrClosed: the Cluster was closed.
	ErrClosed = errors.New("cluster closed")
)

// Config says where a Cluster starts from and how it keeps its node map.
//
// A cluster is found through the identity endpoints of seamark agents
// (Seeds), through the seamark HTTP API (Servers and Service), or both.
//
// Identity endpoints: every node runs `seamark agent --identity-addr` on the
// same port (say 9401); GET /v1/identity there answers who the node is, its
// own access address and service port, and its service's healthy peers.
// Seeds name that port: "db.example.com:9401" (a name with an address per
// node), "10.0.0.5:9401", or "lb.example.com:9401" — a load balancer that
// forwards 9401 to the nodes. The client then contacts every node directly at
// its own address on IdentityPort (by default the seeds' port) and connects
// to each node's service port as the node itself announced it.
type Config struct {
	// Seeds are addresses (host:port) of agents' identity endpoints, or of a
	// load balancer or NAT in front of them. A host that is a name is
	// resolved to all its addresses, through the DNS server given in
	// DialOptions when there is one.
	Seeds []string
	// IdentityPort is the port of the identity endpoint on every node's own
	// address. Default: the port of the first seed.
	IdentityPort int
	// Servers are seamark HTTP API URLs ("http://10.0.0.2:9400"); with
	// Service, the healthy nodes of Service are asked from them. Without
	// Seeds the API's answer is the node map; with Seeds, the nodes it
	// names are confirmed through their identity endpoints first.
	Servers []string
	Service string
	// Token is the API bearer token, when the API wants one.
	Token string
	// TLS configures https to the Servers: RootCAs verifies them (default:
	// the system's roots) and Certificates holds a client certificate for
	// servers that ask for one. api.TLSFiles{...}.Config() loads PEM files.
	TLS *tls.Config
	// IdentityTLS, when set, speaks TLS to the identity endpoints (agents
	// started with --identity-cert-file): RootCAs verifies them. Without a
	// ServerName each node's certificate must name the address dialled (an
	// IP address SAN); through a load balancer set ServerName to a name every
	// node's certificate carries.
	IdentityTLS *tls.Config
	// Alternate selects the nodes' alternate address with this label
	// ("public") instead of their access address; UseAlternate changes it
	// later. A node without that label is reached at its access address.
	Alternate string
	// TendInterval is how often the node map is checked. Default 1 s.
	TendInterval time.Duration
	// FailRounds is how many tend rounds in a row a node may fail to
	// answer before it is dropped. Default 2.
	FailRounds int
	// DialOptions shape every connection the cluster makes, to seeds,
	// identity endpoints and nodes (DNS server, delays, timeouts).
	DialOptions []Option
	// Trace, when set, is called for every step: seeds resolved, attempts,
	// identities, nodes added and removed, tend rounds. Calls never overlap.
	Trace func(Event)
	// Logger receives the cluster's logs. Default: none.
	Logger *slog.Logger

	// tendTicks, when set (by tests), starts a tend round on each value
	// instead of the TendInterval ticker.
	tendTicks <-chan time.Time
}

// Validate checks the config without side effects and reports every problem.
func (c Config) Validate() error {
	var errs []error
	if len(c.Seeds) == 0 && len(c.Servers) == 0 {
		errs = append(errs, errors.New("Seeds: give at least one identity endpoint (host:port), or Servers and Service"))
	}
	for i, s := range c.Seeds {
		if _, _, err := splitAddress(s); err != nil {
			errs = append(errs, fmt.Errorf("Seeds[%d]: %w", i, err))
		}
	}
	if len(c.Servers) > 0 && c.Service == "" {
		errs = append(errs, errors.New("Service: name the service whose nodes to ask the Servers for"))
	}
	if c.IdentityPort < 0 || c.IdentityPort > 65535 {
		errs = append(errs, fmt.Errorf("IdentityPort: %d is not a port", c.IdentityPort))
	}
	if c.TendInterval < 0 {
		errs = append(errs, fmt.Errorf("TendInterval: %v is negative", c.TendInterval))
	}
	if c.FailRounds < 0 {
		errs = append(errs, fmt.Errorf("FailRounds: %d is negative", c.FailRounds))
	}
	if _, err := newOptions(c.DialOptions); err != nil {
		errs = append(errs, fmt.Errorf("DialOptions: %w", err))
	}
	return errors.Join(errs...)
}

// Node is a node of the cluster as the client knows it.
type Node struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// Addr is where Dial connects: the node's access address, or the
	// alternate selected with UseAlternate, and its service port.
	Addr netip.AddrPort `json:"addr"`
	// Access is the node's own access address and service port.
	Access netip.AddrPort `json:"access"`
	// Alternates are the node's further addresses, by label.
	Alternates []api.AltAddress `json:"alternates,omitempty"`
	// Failures counts the latest tend rounds in a row it did not answer.
	Failures int `json:"failures"`
	// LastSeen is when it last answered.
	LastSeen time.Time `json:"last_seen"`
}

// SeedInfo says how the cluster was last found.
type SeedInfo struct {
	// Via is "identity" or "api".
	Via string `json:"via"`
	// Dialled is the seed address the first identity answer came through.
	Dialled netip.AddrPort `json:"dialled,omitzero"`
	// Node answered there; NodeAddr is its own address (identity port).
	Node     string         `json:"node,omitempty"`
	NodeAddr netip.AddrPort `json:"node_addr,omitzero"`
	// Balancer is true when Dialled is not one of the node's own addresses:
	// a load balancer or NAT stands between, and the client connects to the
	// nodes directly instead.
	Balancer bool      `json:"balancer"`
	At       time.Time `json:"at"`
}

// Change is a change of the node map, sent by Watch.
type Change struct {
	// Nodes is the whole map after the change, by ID.
	Nodes []Node
	// Added, Removed and Moved (Addr changed) are relative to the previous
	// Change sent on the same channel.
	Added, Removed, Moved []Node
}

// member is a node in the map.
type member struct {
	id, service string
	access      netip.Addr
	port        uint16
	alts        []api.AltAddress
	failures    int
	seen        time.Time
}

// addr is the address the client uses for m with the given label.
func (m *member) addr(label string) netip.Addr {
	if label != "" {
		for _, a := range m.alts {
			if a.Label == label {
				return a.Address
			}
		}
	}
	return m.access
}

func (m *member) node(label string) Node {
	return Node{
		ID: m.id, Service: m.service,
		Addr:       netip.AddrPortFrom(m.addr(label), m.port),
		Access:     netip.AddrPortFrom(m.access, m.port),
		Alternates: slices.Clone(m.alts),
		Failures:   m.failures, LastSeen: m.seen,
	}
}

func memberOfIdentity(id api.Identity, now time.Time) *member {
	return &member{id: id.ID, service: id.Service, access: id.Address, port: uint16(id.Port), alts: id.Alternates, seen: now}
}

func memberOfNode(n api.Node, now time.Time) *member {
	return &member{id: n.ID, service: n.Service, access: n.Address.Unmap(), port: uint16(n.Port), alts: cleanAlternates(n.Alternates), seen: now}
}

type seedAddr struct {
	host string
	port uint16
}

// Cluster keeps a live map of a cluster's nodes and connects to them.
type Cluster struct {
	cfg          Config
	opts         *options
	identityPort uint16
	seeds        []seedAddr
	api          *api.Client
	transport    *http.Transport
	log          *slog.Logger
	traceMu      sync.Mutex

	mu        sync.Mutex
	members   map[string]*member
	alternate string
	seeded    SeedInfo
	watchers  map[*watcher]struct{}
	closed    bool

	rr     atomic.Uint64
	round  int // tend goroutine only
	kick   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
}

// NewCluster finds the cluster through its seeds and returns once at least
// one node is known and reachable directly. It then tends the node map every
// TendInterval until Close.
func NewCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("seed: cluster config: %w", err)
	}
	if cfg.TendInterval == 0 {
		cfg.TendInterval = DefaultTendInterval
	}
	if cfg.FailRounds == 0 {
		cfg.FailRounds = DefaultFailRounds
	}
	c := &Cluster{
		cfg:       cfg,
		log:       cfg.Logger,
		members:   map[string]*member{},
		alternate: cfg.Alternate,
		watchers:  map[*watcher]struct{}{},
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "seed")
	c.opts, _ = newOptions(cfg.DialOptions)
	c.opts.trace = c.emit
	for _, s := range cfg.Seeds {
		host, port, _ := splitAddress(s)
		c.seeds = append(c.seeds, seedAddr{host, port})
	}
	c.identityPort = uint16(cfg.IdentityPort)
	if c.identityPort == 0 && len(c.seeds) > 0 {
		c.identityPort = c.seeds[0].port
	}
	if len(cfg.Servers) > 0 {
		c.transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: c.opts.attemptTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
			TLSClientConfig:     cfg.TLS,
		}
		opts := []api.ClientOption{api.WithHTTPClient(&http.Client{Transport: c.transport})}
		if cfg.Token != "" {
			opts = append(opts, api.WithToken(cfg.Token))
		}
		var err error
		if c.api, err = api.NewClient(cfg.Servers, opts...); err != nil {
			return nil, fmt.Errorf("seed: cluster config: Servers: %w", err)
		}
	}
	if err := c.bootstrap(ctx); err != nil {
		c.closeIdle()
		return nil, fmt.Errorf("seed: find cluster: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	go c.run(runCtx)
	return c, nil
}

func (c *Cluster) emit(e Event) {
	if c.cfg.Trace == nil {
		return
	}
	c.traceMu.Lock()
	defer c.traceMu.Unlock()
	c.cfg.Trace(e)
}

func (c *Cluster) closeIdle() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// Close stops tending and ends every Watch channel. Connections already
// returned by Dial are the caller's.
func (c *Cluster) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		c.closeIdle()
	})
	return nil
}

// Nodes returns the node map, ordered by ID.
func (c *Cluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodesLocked()
}

func (c *Cluster) nodesLocked() []Node {
	out := make([]Node, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.node(c.alternate))
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Seeded says how the cluster was last found through its seeds, and whether a
// load balancer or NAT was seen in between.
func (c *Cluster) Seeded() SeedInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seeded
}

// UseAlternate makes Dial and the tending use every node's alternate address
// labelled label ("public"); "" goes back to the access addresses.
func (c *Cluster) UseAlternate(label string) {
	c.mu.Lock()
	c.alternate = label
	c.notifyLocked()
	c.mu.Unlock()
	c.kickTend()
}

// Dial connects to a live node's service port. Successive calls start with
// successive nodes (round robin), and a node that does not answer is raced
// against the next ones as Dial does for a name's addresses.
func (c *Cluster) Dial(ctx context.Context) (net.Conn, error) {
	select {
	case <-c.done:
		return nil, fmt.Errorf("seed: cluster dial: %w", ErrClosed)
	default:
	}
	nodes := c.Nodes()
	if len(nodes) == 0 {
		c.kickTend()
		return nil, fmt.Errorf("seed: cluster dial: %w", ErrNoNodes)
	}
	k := int(c.rr.Add(1)-1) % len(nodes)
	addrs := make([]netip.AddrPort, 0, len(nodes))
	for i := range nodes {
		addrs = append(addrs, nodes[(k+i)%len(nodes)].Addr)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	conn, _, err := c.opts.race(ctx, addrs, c.opts.now())
	if err != nil {
		return nil, fmt.Errorf("seed: cluster dial: %w", err)
	}
	return conn, nil
}

func (c *Cluster) kickTend() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Cluster) run(ctx context.Context) {
	defer c.wg.Done()
	ticks := c.cfg.tendTicks
	if ticks == nil {
		t := time.NewTicker(c.cfg.TendInterval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		case <-c.kick:
		}
		c.tend(ctx)
	}
}

// contactResult is what one identity endpoint answered.
type contactResult struct {
	addr netip.AddrPort
	id   api.Identity
	err  error
}

// direct reports whether the answer came from the node's own address.
func (r contactResult) direct() bool {
	return r.err == nil && ownAddress(r.id.Address, r.id.Alternates, r.addr.Addr())
}

// contact asks the identity endpoint at addr.
func (c *Cluster) contact(ctx context.Context, addr netip.AddrPort, timeout time.Duration) contactResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := c.opts.netDialer
	d.Timeout, d.Deadline = timeout, time.Time{}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return contactResult{addr: addr, err: err}
	}
	defer conn.Close()
	id, err := askIdentity(ctx, c.identityConn(conn, addr), addr.String(), timeout)
	return contactResult{addr: addr, id: id, err: err}
}

// identityConn wraps a connection to an identity endpoint in TLS when
// IdentityTLS is set; without a ServerName the certificate must name addr.
func (c *Cluster) identityConn(conn net.Conn, addr netip.AddrPort) net.Conn {
	if c.cfg.IdentityTLS == nil {
		return conn
	}
	tc := c.cfg.IdentityTLS
	if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = addr.Addr().Unmap().String()
	}
	return tls.Client(conn, tc)
}

// contactAll asks every address at once (at most the dial concurrency cap
// in flight) and returns the answers in the order of addrs.
func (c *Cluster) contactAll(ctx context.Context, addrs []netip.AddrPort, timeout time.Duration) []contactResult {
	out := make([]contactResult, len(addrs))
	sem := make(chan struct{}, c.opts.maxConcurrent)
	var wg sync.WaitGroup
	for i, a := range addrs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = c.contact(ctx, a, timeout)
		}()
	}
	wg.Wait()
	for _, r := range out {
		if r.err == nil {
			c.emit(Event{Kind: EventIdentity, Addr: r.addr, Node: r.id.ID,
				Access: netip.AddrPortFrom(r.id.Address, c.identityPort), Balancer: !r.direct()})
		}
	}
	return out
}

// lead is a node someone told us about, to be confirmed at its own address.
type lead struct {
	id  string
	m   *member
	via string
}

// identityMode reports whether nodes are confirmed through identity endpoints.
func (c *Cluster) identityMode() bool { return len(c.seeds) > 0 }

// bootstrap finds the cluster through the seeds (identity endpoints first,
// then the API) and replaces the node map with what it found.
func (c *Cluster) bootstrap(ctx context.Context) error {
	var errs []error
	if c.identityMode() {
		err := c.seedIdentity(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if c.api != nil {
		err := c.seedAPI(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// seedIdentity resolves the seeds, races connections to every address, asks
// the first endpoint that answers who it is, and confirms that node and its
// peers at their own addresses.
func (c *Cluster) seedIdentity(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	var addrs []netip.AddrPort
	var errs []error
	for _, s := range c.seeds {
		a, err := c.opts.resolve(ctx, s.host, s.port, start)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ap := range a {
			if !slices.Contains(addrs, ap) {
				addrs = append(addrs, ap)
			}
		}
	}
	for len(addrs) > 0 {
		conn, dialled, err := c.opts.race(ctx, addrs, start)
		if err != nil {
			errs = append(errs, err)
			break
		}
		ic := c.identityConn(conn, dialled)
		id, err := askIdentity(ctx, ic, dialled.String(), c.opts.attemptTimeout)
		ic.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dialled, err))
			addrs = slices.DeleteFunc(addrs, func(a netip.AddrPort) bool { return a == dialled })
			continue
		}
		first := contactResult{addr: dialled, id: id}
		balancer := !first.direct()
		c.emit(Event{Kind: EventIdentity, Addr: dialled, Node: id.ID, Access: netip.AddrPortFrom(id.Address, c.identityPort), Balancer: balancer})
		if balancer {
			c.log.Info("seed answered through a load balancer or NAT; connecting to nodes directly",
				"dialled", dialled, "node", id.ID, "node_address", id.Address)
		}
		found := map[string]*member{}
		now := time.Now()
		if !balancer {
			found[id.ID] = memberOfIdentity(id, now)
		}
		leads := []lead{{id: id.ID, m: memberOfIdentity(id, now), via: "seed"}}
		for _, p := range id.Peers {
			leads = append(leads, lead{id: p.ID, m: memberOfNode(p, now), via: "peer"})
		}
		leads = append(leads, c.apiLeads(ctx)...)
		c.confirm(ctx, leads, found, c.opts.attemptTimeout)
		if len(found) == 0 {
			return fmt.Errorf("reached node %s through %s, which is not its own address (%s): a load balancer or NAT, but no node answered at its own address on port %d (set Alternate to a label of addresses reachable from here, or IdentityPort)",
				id.ID, dialled, id.Address, c.identityPort)
		}
		c.replace(found, SeedInfo{Via: "identity", Dialled: dialled, Node: id.ID,
			NodeAddr: netip.AddrPortFrom(id.Address, c.identityPort), Balancer: balancer, At: now})
		return nil
	}
	if len(errs) == 0 {
		errs = append(errs, ErrNoAddress)
	}
	return fmt.Errorf("no seed answered: %w", errors.Join(errs...))
}

// apiLeads returns the API's healthy nodes, when servers are configured.
func (c *Cluster) apiLeads(ctx context.Context) []lead {
	if c.api == nil {
		return nil
	}
	nodes, err := c.apiNodes(ctx)
	if err != nil {
		c.log.Warn("ask the seamark API for nodes", "service", c.cfg.Service, "err", err)
		return nil
	}
	now := time.Now()
	out := make([]lead, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, lead{id: n.ID, m: memberOfNode(n, now), via: "api"})
	}
	return out
}

func (c *Cluster) apiNodes(ctx context.Context) ([]api.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	svc, err := c.api.Service(ctx, c.cfg.Service)
	if err != nil {
		return nil, err
	}
	nodes, _, err := c.api.Nodes(ctx, c.cfg.Service, &api.QueryOptions{HealthyOnly: true})
	if err != nil {
		return nil, err
	}
	out := nodes[:0]
	for _, n := range nodes {
		n.Address = n.Address.Unmap()
		if n.ID == "" || !n.Address.IsValid() {
			continue
		}
		n.Port = n.PortOf(svc)
		if n.Service == "" {
			n.Service = c.cfg.Service
		}
		out = append(out, n)
	}
	return out, nil
}

// seedAPI takes the API's healthy nodes as the map (confirming them through
// identity endpoints in identity mode).
func (c *Cluster) seedAPI(ctx context.Context) error {
	nodes, err := c.apiNodes(ctx)
	if err != nil {
		return fmt.Errorf("ask the seamark API: %w", err)
	}
	found := map[string]*member{}
	now := time.Now()
	if c.identityMode() {
		var leads []lead
		for _, n := range nodes {
			leads = append(leads, lead{id: n.ID, m: memberOfNode(n, now), via: "api"})
		}
		c.confirm(ctx, leads, found, c.opts.attemptTimeout)
	} else {
		for _, n := range nodes {
			found[n.ID] = memberOfNode(n, now)
		}
	}
	if len(found) == 0 {
		return fmt.Errorf("the seamark API lists no reachable healthy node of service %s", c.cfg.Service)
	}
	c.replace(found, SeedInfo{Via: "api", At: now})
	return nil
}

// confirm contacts each lead not yet in found at its own address and adds
// every node that answers there.
func (c *Cluster) confirm(ctx context.Context, leads []lead, found map[string]*member, timeout time.Duration) {
	label := c.currentAlternate()
	var addrs []netip.AddrPort
	for _, l := range leads {
		if _, ok := found[l.id]; ok {
			continue
		}
		a := netip.AddrPortFrom(l.m.addr(label), c.identityPort)
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	now := time.Now()
	for _, r := range c.contactAll(ctx, addrs, timeout) {
		if r.direct() {
			if _, ok := found[r.id.ID]; !ok {
				found[r.id.ID] = memberOfIdentity(r.id, now)
			}
		}
	}
}

func (c *Cluster) currentAlternate() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alternate
}

// replace makes found the node map (after seeding).
func (c *Cluster) replace(found map[string]*member, info SeedInfo) {
	var events []Event
	defer func() { c.emitAll(events) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, m := range c.members {
		if _, ok := found[id]; !ok {
			events = append(events, Event{Kind: EventNodeRemoved, Node: id, Access: netip.AddrPortFrom(m.access, m.port)})
		}
	}
	for id, m := range found {
		if _, ok := c.members[id]; !ok {
			events = append(events, Event{Kind: EventNodeAdded, Node: id, Access: netip.AddrPortFrom(m.access, m.port)})
		}
	}
	c.members = found
	c.seeded = info
	c.notifyLocked()
}

// emitAll traces events; it is called without c.mu held, so that a trace
// function may call the cluster's methods.
func (c *Cluster) emitAll(events []Event) {
	for _, e := range events {
		c.emit(e)
	}
}

// tend runs one round: every known node is asked again at its own address,
// nodes its answers (and the API) mention are confirmed and added, nodes that
// failed FailRounds rounds in a row are dropped, and an empty map sends the
// cluster back to its seeds.
func (c *Cluster) tend(ctx context.Context) {
	c.round++
	if c.identityMode() {
		c.tendIdentity(ctx)
	} else {
		c.tendAPI(ctx)
	}
	c.mu.Lock()
	empty := len(c.members) == 0
	c.mu.Unlock()
	if empty && ctx.Err() == nil {
		err := c.bootstrap(ctx)
		c.emit(Event{Kind: EventReseed, Err: err})
		if err != nil {
			c.log.Warn("no node left; seeding again failed", "err", err)
		} else {
			c.log.Info("no node left; found the cluster again through the seeds", "nodes", len(c.Nodes()))
		}
	}
	c.emit(Event{Kind: EventTend, Round: c.round, Nodes: len(c.Nodes())})
}

func (c *Cluster) tendIdentity(ctx context.Context) {
	timeout := min(c.opts.attemptTimeout, c.cfg.TendInterval)
	c.mu.Lock()
	label := c.alternate
	ids := make([]string, 0, len(c.members))
	addrs := make([]netip.AddrPort, 0, len(c.members))
	for id, m := range c.members {
		ids = append(ids, id)
		addrs = append(addrs, netip.AddrPortFrom(m.addr(label), c.identityPort))
	}
	c.mu.Unlock()

	results := c.contactAll(ctx, addrs, timeout)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	answered := map[string]*member{}
	var leads []lead
	for _, r := range results {
		if r.err != nil {
			continue
		}
		if r.direct() {
			answered[r.id.ID] = memberOfIdentity(r.id, now)
		}
		for _, p := range r.id.Peers {
			leads = append(leads, lead{id: p.ID, m: memberOfNode(p, now), via: "peer"})
		}
	}
	leads = append(leads, c.apiLeads(ctx)...)
	// Confirm nodes not in the map, and known nodes that did not answer but
	// are said to be somewhere else now.
	c.mu.Lock()
	var fresh []lead
	for _, l := range leads {
		if _, ok := answered[l.id]; ok {
			continue
		}
		if m, ok := c.members[l.id]; ok && m.addr(label) == l.m.addr(label) {
			continue
		}
		fresh = append(fresh, l)
	}
	c.mu.Unlock()
	found := map[string]*member{}
	for id := range answered {
		found[id] = nil // already confirmed: skip
	}
	c.confirm(ctx, fresh, found, timeout)
	for id, m := range found {
		if m != nil {
			answered[id] = m
		}
	}
	if ctx.Err() != nil {
		return
	}
	c.merge(ids, answered)
}

// merge applies one round's answers: members that answered are refreshed,
// the others fail a round (and are dropped after FailRounds), new nodes are
// added.
func (c *Cluster) merge(asked []string, answered map[string]*member) {
	var events []Event
	defer func() { c.emitAll(events) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, id := range asked {
		m, ok := c.members[id]
		if !ok {
			continue
		}
		if a, ok := answered[id]; ok {
			if a.access != m.access || a.port != m.port || !slices.Equal(a.alts, m.alts) {
				changed = true
			}
			c.members[id] = a
			continue
		}
		m.failures++
		if m.failures >= c.cfg.FailRounds {
			delete(c.members, id)
			changed = true
			events = append(events, Event{Kind: EventNodeRemoved, Node: id, Access: netip.AddrPortFrom(m.access, m.port)})
			c.log.Info("node dropped", "node", id, "address", m.access, "failed_rounds", m.failures)
		}
	}
	for id, a := range answered {
		if _, ok := c.members[id]; ok {
			if !slices.Contains(asked, id) { // moved to a new address
				c.members[id] = a
				changed = true
			}
			continue
		}
		c.members[id] = a
		changed = true
		events = append(events, Event{Kind: EventNodeAdded, Node: id, Access: netip.AddrPortFrom(a.access, a.port)})
		c.log.Info("node added", "node", id, "address", a.access)
	}
	if changed {
		c.notifyLocked()
	}
}

func (c *Cluster) tendAPI(ctx context.Context) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.members))
	for id := range c.members {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	nodes, err := c.apiNodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("ask the seamark API for nodes; keeping the map as it is", "service", c.cfg.Service, "err", err)
		}
		return
	}
	now := time.Now()
	answered := map[string]*member{}
	for _, n := range nodes {
		answered[n.ID] = memberOfNode(n, now)
	}
	c.merge(ids, answered)
}

// watcher feeds one Watch channel.
type watcher struct {
	ch     chan Change
	signal chan struct{}
}

// Watch returns a channel that receives the node map at once and then after
// every change (additions, removals, new addresses). Changes that happen while
// the receiver is busy are folded into one. The channel is closed by Close.
func (c *Cluster) Watch() <-chan Change {
	w := &watcher{ch: make(chan Change), signal: make(chan struct{}, 1)}
	w.signal <- struct{}{}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(w.ch)
		return w.ch
	}
	c.watchers[w] = struct{}{}
	c.wg.Add(1)
	go c.feed(w)
	return w.ch
}

func (c *Cluster) notifyLocked() {
	for w := range c.watchers {
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
}

func (c *Cluster) feed(w *watcher) {
	defer c.wg.Done()
	defer close(w.ch)
	defer func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()
	last := map[string]Node{}
	first := true
	for {
		select {
		case <-c.done:
			return
		case <-w.signal:
		}
		nodes := c.Nodes()
		ch := Change{Nodes: nodes}
		now := map[string]Node{}
		for _, n := range nodes {
			now[n.ID] = n
			if old, ok := last[n.ID]; !ok {
				ch.Added = append(ch.Added, n)
			} else if old.Addr != n.Addr {
				ch.Moved = append(ch.Moved, n)
			}
		}
		for id, n := range last {
			if _, ok := now[id]; !ok {
				ch.Removed = append(ch.Removed, n)
			}
		}
		slices.SortFunc(ch.Removed, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
		if !first && len(ch.Added)+len(ch.Removed)+len(ch.Moved) == 0 {
			continue
		}
		first = false
		select {
		case w.ch <- ch:
			last = now
		case <-c.done:
			return
		}
	}
}

// String describes n on one line.
func (n Node) String() string {
	s := n.ID + " " + n.Addr.String()
	if n.Addr != n.Access {
		s += " (access " + n.Access.String() + ")"
	}
	if n.Failures > 0 {
		s += " failures=" + strconv.Itoa(n.Failures)
	}
	return s
}
