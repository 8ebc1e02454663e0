// Package server assembles the roles of `seamark server` and runs their
// lifecycle.
//
// It opens the store (embedded or external etcd), writes the config file's
// desired state into it (on start and on every Reload), runs the registry
// watcher that keeps the snapshot current, and serves the HTTP API. Roles
// never talk to each other: each reads the snapshot and writes the store.
// Everything it starts it stops in Close, in reverse order.
//
// It owns the process's resources shared by the roles: the Prometheus
// registry every role registers with (served at /metrics with the Go and
// process collectors), and the descriptor budget (internal/netlimit) the
// network surfaces share, with a reserve for the store and the checker and
// the HTTP API's share set aside. A reload that would empty the config is
// refused unless the file says allow_empty: true (reload.go).
//
// In-process wiring besides the snapshot: the balancer's failed connects
// reach the checker; balancer groups use the checker's prober and hook
// runner; the API reads the balancer's counters; and the API and the DNS
// primary hand every write to one audit.Log, which logs it and keeps it in
// the store's event log. Reload swaps the credentials of the running roles
// (httpapi.Handler.SetAuth, route53.Handler.SetCredentials, dns.Keyring.Swap,
// dns.Primary.SetTransfer) and the HTTPS certificate (certs).
//
// Upgrade in place (upgrade.go): the listening sockets of the balancer, DNS
// and the HTTP API come from and go to internal/upgrade's Sockets
// (Options.Handover); a successor adopts the embedded etcd child
// (Options.AdoptEtcd) and campaigns for its groups only once its predecessor
// froze its own (StartMember, FreezeMember), so the role record passes from
// one process to the other without a release.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/audit"
	"github.com/seamark/seamark/internal/certs"
	"github.com/seamark/seamark/internal/config"
	dnsserver "github.com/seamark/seamark/internal/dns"
	"github.com/seamark/seamark/internal/ha"
	"github.com/seamark/seamark/internal/health"
	"github.com/seamark/seamark/internal/httpapi"
	"github.com/seamark/seamark/internal/lb"
	"github.com/seamark/seamark/internal/netlimit"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/route53"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/ui"
	"github.com/seamark/seamark/internal/upgrade"
)

// Options configure a Server.
type Options struct {
	// Config is the loaded, valid desired state (addresses included).
	Config *config.File
	// ConfigPath is re-read by Reload; empty means Reload has nothing to read.
	ConfigPath string
	Logger     *slog.Logger
	Version    string
	// EtcdCommand, when set, runs the embedded etcd as a supervised child
	// process (store.Options.EtcdCommand); `seamark server` sets it.
	EtcdCommand []string
	// Handover, when set, hands the listening sockets (balancer ports, DNS,
	// HTTP API) over from a predecessor and on to a successor (upgrade in
	// place, see upgrade.go); nil binds them.
	Handover *upgrade.Sockets
	// AdoptEtcd supervises the predecessor's embedded etcd child instead of
	// starting one.
	AdoptEtcd *store.Handover
	// Successor: this process upgrades a running one; its group campaigns
	// start only on StartMember, once the predecessor froze its own.
	Successor bool
}

// Server is a running `seamark server`.
type Server struct {
	o   Options
	log *slog.Logger

	st      *store.Store
	watcher *registry.Watcher
	checker *health.Checker
	hooks   *health.Hooks
	lb      *lb.Server
	member  *ha.Member
	dns     *dnsserver.Server
	name    string
	httpLn  net.Listener
	httpSrv *http.Server
	// handler is what httpSrv serves: httpapi.Starting until the API is
	// built, then the API. stage names what the start waits for.
	handler atomic.Pointer[http.Handler]
	stage   atomic.Pointer[string]
	tls     *certs.Server // nil without server.tls
	api     *httpapi.Handler
	// reg is this server's own metrics registry (served at /metrics);
	// budget the descriptors its network surfaces share.
	reg    *prometheus.Registry
	budget *netlimit.Budget
	apiCap *netlimit.Surface
	apiMax int

	audit   *audit.Log
	ring    *dnsserver.Keyring
	primary *dnsserver.Primary
	route53 *route53.Handler

	reloadMu sync.Mutex
	cfg      *config.File
	reloads  *reloads
	// fileServer is the config file's server: section as read at start
	// (before flags): a reload that changes it is told to restart.
	fileServer *config.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// runCtx is the roles' context; stopDNS ends the DNS server alone
	// (upgrade hand-off).
	runCtx  context.Context
	stopDNS context.CancelFunc
	started time.Time
}

// Start opens the store, applies the config, and starts every role. On error
// everything already started is stopped.
func Start(ctx context.Context, o Options) (s *Server, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Config == nil {
		return nil, errors.New("start server: no config")
	}
	if err := checkExposure(o.Config); err != nil {
		return nil, err
	}
	s = &Server{o: o, log: o.Logger.With("component", "server"), cfg: o.Config, started: time.Now()}
	// Every error return sets s to nil: close what was started through a copy.
	started := s
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	s.limits()
	s.reloads = newReloads(o.ConfigPath, s.reg)
	sc := o.Config.Server
	so, err := storeCredentials(sc)
	if err != nil {
		return nil, err
	}
	if sc.TLS.Enabled() {
		if s.tls, err = certs.NewServer(tlsFiles(sc.TLS)); err != nil {
			return nil, fmt.Errorf("start server: %w", err)
		}
	}
	// The HTTP listener is bound first: while the store opens and the first
	// snapshot loads, /healthz answers 200 and /readyz 503 naming the stage.
	// A successor (upgrade in place) shares its predecessor's listener and
	// serves it only once it is whole. Port 0 (tests, benchmarks) binds
	// after the store as before: nobody can probe a port not yet known, and
	// binding it first could take a port just chosen for the embedded etcd.
	if !o.Successor && !anyPort(o.Config.Server.HTTPAddr) {
		if err := s.listenHTTP(o.Config); err != nil {
			return nil, err
		}
	}
	s.setStage("connecting to the store")
	s.st, err = store.Open(ctx, store.Options{
		Endpoints:   sc.EtcdEndpoints,
		DataDir:     sc.DataDir,
		ClientAddr:  sc.EtcdClientAddr,
		PeerAddr:    sc.EtcdPeerAddr,
		Prefix:      sc.StorePrefix,
		Logger:      o.Logger,
		EtcdCommand: o.EtcdCommand,
		Adopt:       o.AdoptEtcd,
		TLS:         so.TLS, Username: so.Username, Password: so.Password,
	})
	if err != nil {
		return nil, err
	}
	// The store is read once at start: the config is reconciled against
	// that load, and the first snapshot is built from it (then follows the
	// reconcile's writes like any others).
	s.setStage("loading the store")
	items, rev, err := s.st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	res, err := s.apply(ctx, o.Config, items)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.runCtx = cancel, runCtx
	s.watcher = registry.NewWatcher(s.st, o.Logger)
	if err := s.watcher.Register(s.reg); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s.watcher.Preload(items, rev)
	items = nil
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watcher.Run(runCtx) }()
	s.setStage("loading the first snapshot")
	if _, err := s.watcher.WaitRevision(ctx, max(rev, res.Revision)); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s.setStage("starting the roles")
	s.startChecker(runCtx, sc.Name, sc.CheckerLeaseTTL.D())
	auditLog := audit.New(s.st, s.name, o.Logger)
	s.audit = auditLog
	s.wg.Add(1)
	go func() { defer started.wg.Done(); auditLog.Run(runCtx) }()
	if o.ConfigPath != "" {
		if f, err := config.Load(o.ConfigPath); err == nil {
			s.fileServer = &f.Server
		}
	}
	if sc.RunsBalancer() {
		s.startBalancer(runCtx)
	}
	if err := s.startDNS(runCtx, sc.DNSAddr); err != nil {
		return nil, err
	}
	if err := s.startHTTP(o.Config); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.api.Run(runCtx) }() // the store prober /v1/status answers from
	if sc.Member != "" && !o.Successor {
		s.startMember(runCtx, sc.Member)
	}
	s.startObserver(runCtx)
	return s, nil
}

// limits raises the open-file limit, sets up the descriptor budget every
// network surface shares (keeping a reserve for the store and the checker)
// and this server's own metrics registry.
func (s *Server) limits() {
	soft0 := netlimit.FileLimit()
	soft, hard, err := netlimit.RaiseFileLimit()
	if err != nil {
		s.log.Warn("open-file limit not raised", "err", err)
	}
	s.budget = netlimit.ProcessBudget()
	s.apiMax = apiMaxConns(s.budget)
	s.budget.SetAside(s.apiMax)
	s.log.Info("open-file limit", "soft_at_start", soft0, "soft", soft, "hard", hard, "reserve", s.budget.Reserve(), "api_max_conns", s.apiMax)
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(buildInfo(s.o.Version))
	s.budget.Register(s.reg)
}

// buildInfo is seamark_build_info: always 1, labelled with the version and
// the Go release the binary was built with, as Prometheus' own *_build_info.
func buildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "seamark_build_info",
		Help:        "Always 1; the labels say which seamark build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// apiMaxConns is the HTTP API's connection cap for a descriptor budget: a
// quarter of what surfaces may use, between 64 and 4096. It is set aside
// from the budget on top of its reserve.
func apiMaxConns(b *netlimit.Budget) int {
	return min(max((b.Limit()-b.Reserve())/4, 64), 4096)
}

// Registry is this server's Prometheus registry (served at /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// gatherer is what /metrics serves: this server's registry, which every
// role registers with (nothing seamark has is in the global one).
func (s *Server) gatherer() prometheus.Gatherer { return s.reg }

// startChecker runs the health checker and the hooks it fires.
func (s *Server) startChecker(ctx context.Context, name string, leaseTTL time.Duration) {
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%04x", strings.ToLower(strings.ReplaceAll(host, ".", "-")), rand.N(1<<16))
	}
	s.name = name
	hooks := health.NewHooks(health.HookOptions{Logger: s.o.Logger, Registerer: s.reg})
	s.hooks = hooks
	s.checker = health.New(health.Options{
		ID: name, Version: s.o.Version, Store: s.st, Snapshots: s.watcher, Hooks: hooks, Logger: s.o.Logger, Registerer: s.reg,
		LeaseTTL: leaseTTL,
	})
	s.wg.Add(2)
	go func() { defer s.wg.Done(); hooks.Run(ctx) }()
	go func() {
		defer s.wg.Done()
		if err := s.checker.Run(ctx); err != nil {
			s.log.Error("health checker stopped", "err", err)
		}
	}()
}

// startBalancer runs the TCP load balancer; its failed connects feed the
// health checker's passive input.
func (s *Server) startBalancer(ctx context.Context) {
	s.lb = lb.New(lb.Options{Snapshots: s.watcher, Failures: s.checker, Logger: s.o.Logger, Registerer: s.reg, Budget: s.budget, Handover: s.o.Handover})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.lb.Run(ctx) }()
}

// startMember campaigns as a balancer group member. Tracked checks use the
// health checker's prober; role hooks its hook runner.
func (s *Server) startMember(ctx context.Context, name string) {
	prober := &health.NetProber{}
	probe := func(ctx context.Context, c api.Check) error {
		addr, err := netip.ParseAddrPort(c.Address)
		if err != nil {
			return fmt.Errorf("track check address %q: %w", c.Address, err)
		}
		if r := prober.Probe(ctx, health.Target{Service: "track", Node: name, Addr: addr, Check: c}); !r.OK {
			return errors.New(r.Reason)
		}
		return nil
	}
	s.member = ha.New(ha.Options{
		Registerer: s.reg,
		Name:       name, Server: s.name, Store: s.st, Snapshots: s.watcher, Probe: probe, Hooks: s.hooks, Logger: s.o.Logger,
		Endpoint: s.httpLn.Addr().(*net.TCPAddr).AddrPort(), Locality: ha.Locality(),
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.member.Run(ctx)
		prober.Close() // its epoll loop, if tracks started one
	}()
	s.log.Info("balancer group member", "member", name)
}

// startObserver runs this server's observer of balancer groups (fast
// failover): it probes every group's active member and, with the other
// observers, ends the lease of one that is dead.
func (s *Server) startObserver(ctx context.Context) {
	ob := ha.NewObserver(ha.ObserverOptions{
		Registerer: s.reg,
		Name:       s.name, Locality: ha.Locality(), Store: s.st, Snapshots: s.watcher, Logger: s.o.Logger,
	})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); ob.Run(ctx) }()
}

// Member returns the balancer group member (nil unless server.member is set).
func (s *Server) Member() *ha.Member { return s.member }

// Balancer returns the load balancer (nil when server.balancer is false).
func (s *Server) Balancer() *lb.Server { return s.lb }

// startDNS binds and serves the authoritative DNS server, with the dns:
// section's keys and secondaries: signed dynamic updates, zone transfers,
// and NOTIFY to the secondaries on every change.
func (s *Server) startDNS(ctx context.Context, addr string) error {
	dc := s.cfg.DNS
	ring, err := dnsserver.NewKeyring(tsigKeys(s.cfg))
	if err != nil {
		return fmt.Errorf("start server: %w (check dns.tsig_keys)", err)
	}
	zones := dnsZones(dc.Zones)
	primary := dnsserver.NewPrimary(dnsserver.PrimaryOptions{
		Store: s.st, Snapshots: s.watcher, Keys: ring, Zones: zones,
		Secondaries: dc.Secondaries, AllowTransfer: dc.AllowTransfer, Logger: s.o.Logger, Audit: s.audit,
	})
	s.ring, s.primary = ring, primary
	rl := dc.RateLimit
	d := dnsserver.New(dnsserver.Options{
		Addr: addr, Snapshots: s.watcher, Logger: s.o.Logger, Handler: primary, TSIG: ring,
		Registerer: s.reg, MaxUDPSize: dc.MaxUDPSize, Zones: zones, Handover: s.o.Handover,
		MaxTCPConnections: dc.MaxTCPConnections, TCPIdleTimeout: time.Duration(dc.TCPIdleTimeout),
		RRL: dnsserver.RRL{
			Disabled: rl.Disabled, ResponsesPerSecond: rl.ResponsesPerSecond, Window: time.Duration(rl.Window),
			Slip: rl.Slip, IPv4PrefixLen: rl.IPv4PrefixLength, IPv6PrefixLen: rl.IPv6PrefixLength, Exempt: rl.Exempt,
		},
	})
	if err := d.Listen(); err != nil {
		return fmt.Errorf("start server: %w (change server.dns_addr or --dns-addr)", err)
	}
	s.dns = d
	dctx, stopDNS := context.WithCancel(ctx)
	s.stopDNS = stopDNS
	s.wg.Add(2)
	go func() { defer s.wg.Done(); d.Serve(dctx) }()
	go func() { defer s.wg.Done(); primary.Run(ctx) }()
	return nil
}

// tsigKeys are the file's TSIG keys as the DNS server takes them.
func tsigKeys(f *config.File) []dnsserver.TSIGKey {
	keys := make([]dnsserver.TSIGKey, 0, len(f.DNS.TSIGKeys))
	for _, k := range f.DNS.TSIGKeys {
		keys = append(keys, dnsserver.TSIGKey{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret})
	}
	return keys
}

// apiAuth is the file's API tokens and anonymous_read as the API takes them.
func apiAuth(f *config.File) httpapi.Auth {
	tokens := make([]httpapi.Token, 0, len(f.API.Tokens))
	for _, t := range f.API.Tokens {
		tokens = append(tokens, httpapi.Token{Name: t.Name, Secret: t.Secret, Access: t.Access, Services: t.Services})
	}
	return httpapi.Auth{Tokens: tokens, AnonymousRead: f.API.AnonymousRead == nil || *f.API.AnonymousRead}
}

// dnsZones turns the dns.zones config keys into the DNS server's apexes.
func dnsZones(cz []config.DNSZone) map[string]dnsserver.Zone {
	out := make(map[string]dnsserver.Zone, len(cz))
	for _, z := range cz {
		dz := dnsserver.Zone{SOA: dnsserver.SOA{
			MName: z.SOA.MName, RName: z.SOA.RName, Refresh: time.Duration(z.SOA.Refresh),
			Retry: time.Duration(z.SOA.Retry), Expire: time.Duration(z.SOA.Expire), Minimum: time.Duration(z.SOA.Minimum),
		}}
		for _, ns := range z.NS {
			dz.NS = append(dz.NS, dnsserver.NameServer{Name: ns.Name, Addresses: ns.Addresses})
		}
		out[z.Zone] = dz
	}
	return out
}

// DNSAddr is the bound address of the DNS server (UDP and TCP).
func (s *Server) DNSAddr() netip.AddrPort { return s.dns.Addr() }

// Name is this server's name (its health checker's ID).
func (s *Server) Name() string { return s.name }

// listenHTTP binds the HTTP listener and serves it with httpapi.Starting
// until startHTTP swaps the API in.
func (s *Server) listenHTTP(f *config.File) error {
	ln, err := s.o.Handover.Listen("api/"+f.Server.HTTPAddr, func() (net.Listener, error) { return net.Listen("tcp", f.Server.HTTPAddr) })
	if err != nil {
		return fmt.Errorf("start server: listen for the HTTP API on %s: %w (change server.http_addr or --http-addr)", f.Server.HTTPAddr, err)
	}
	// The API's descriptors are set aside from the budget (which was made
	// in limits, before any surface used it): a full balancer or DNS never
	// takes them.
	s.apiCap = netlimit.NewSurface("api", s.apiMax, 1, nil)
	if err := s.apiCap.Register(s.reg); err != nil {
		ln.Close()
		return fmt.Errorf("start server: %w", err)
	}
	// Full: the connection idle longest (a client that sent nothing yet,
	// or a kept-alive one between requests) makes room.
	capped := netlimit.NewListener(ln, netlimit.ListenerOptions{
		Surface: s.apiCap, Mode: netlimit.Evict, Logger: s.o.Logger,
		Refusal: []byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
	})
	ln = capped
	s.httpLn = ln
	starting := httpapi.Starting(s.currentStage)
	s.handler.Store(&starting)
	// No ReadTimeout or WriteTimeout: blocking reads (?wait=) last minutes.
	// Request bodies get their own read deadline in the handler.
	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ConnState: capped.ConnState, ErrorLog: newHTTPErrorLog(s.log),
	}
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
		s.httpSrv.TLSConfig = s.tls.TLSConfig()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if s.tls != nil {
			err = s.httpSrv.ServeTLS(ln, "", "")
		} else {
			err = s.httpSrv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http api stopped", "err", err)
		}
	}()
	s.logListening(ln.Addr(), scheme)
	return nil
}

func (s *Server) setStage(stage string) { s.stage.Store(&stage) }

// anyPort reports whether addr asks for any free port (port 0).
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

func (s *Server) currentStage() string {
	if p := s.stage.Load(); p != nil {
		return *p
	}
	return "starting"
}

// startHTTP builds the API and serves it on the HTTP listener (bound now
// if listenHTTP was not called earlier).
func (s *Server) startHTTP(f *config.File) error {
	if s.httpSrv == nil {
		if err := s.listenHTTP(f); err != nil {
			return err
		}
	}
	auth := apiAuth(f)
	s.route53 = route53.New(route53.Options{
		Store: s.st, Snapshots: s.watcher, Logger: s.o.Logger,
		Credentials: route53Credentials(auth.Tokens), InsecureUnsigned: f.API.Route53.InsecureUnsigned,
	})
	var bal httpapi.Balancer
	if s.lb != nil {
		bal = s.lb
	}
	s.api = httpapi.New(httpapi.Options{
		Store: s.st, Snapshots: s.watcher, Logger: s.o.Logger, Version: s.o.Version, Name: s.Name(),
		Tokens: auth.Tokens, AnonymousRead: auth.AnonymousRead, Balancer: bal, UI: ui.Handler(), Audit: s.audit,
		Route53:    s.route53,
		Registerer: s.reg, Gatherer: s.gatherer(), Config: s.reloads.status,
	})
	var h http.Handler = s.api
	s.handler.Store(&h)
	return nil
}

// route53Credentials maps API tokens onto Route 53 access keys: the access
// key ID is the token's name, the secret its secret.
func route53Credentials(tokens []httpapi.Token) []route53.Credential {
	out := make([]route53.Credential, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, route53.Credential{AccessKeyID: t.Name, Secret: t.Secret, Access: t.Access, Services: t.Services})
	}
	return out
}

// HTTPAddr is the bound address of the HTTP API.
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// Store returns the open store (for status and tests).
func (s *Server) Store() *store.Store { return s.st }

// Snapshots returns the registry watcher.
func (s *Server) Snapshots() *registry.Watcher { return s.watcher }

// apply writes the file's config-owned objects into the store.
// apply reconciles the store with f, against items when the caller has
// a full load (nil: read the store).
func (s *Server) apply(ctx context.Context, f *config.File, items []store.Item) (store.ReconcileResult, error) {
	var res store.ReconcileResult
	var err error
	if items != nil {
		res, err = s.st.ReconcileLoaded(ctx, items, Desired(f))
	} else {
		res, err = s.st.Reconcile(ctx, Desired(f))
	}
	if err != nil {
		return res, fmt.Errorf("apply config: %w", err)
	}
	for _, w := range f.Warnings() {
		s.log.Warn("config", "warning", w)
	}
	for _, sk := range res.Skipped {
		s.log.Warn("config object not applied", "reason", sk)
	}
	s.log.Info("config applied", "file", f.Name(), "created", res.Created, "updated", res.Updated, "deleted", res.Deleted, "unchanged", res.Kept)
	return res, nil
}

// ErrRestartNeeded is wrapped by Reload's error when the file changed a
// setting that takes effect only on restart; everything else was applied.
var ErrRestartNeeded = errors.New("change only on restart")

// Reload re-reads the config file and applies it: the desired state, and
// the secrets swapped at once (API tokens and anonymous_read, TSIG keys,
// dns secondaries and allow_transfer, the HTTPS certificate). A file with any
// error is rejected whole and the running state stays as it was. The server:
// section (addresses, store settings, name, balancer, member) takes effect
// only on restart: a change to it is named in the returned error, which wraps
// ErrRestartNeeded, while the rest is applied.
func (s *Server) Reload(ctx context.Context) (err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	defer func() { s.reloads.record(time.Now(), err) }()
	if s.o.ConfigPath == "" {
		return errors.New("reload: the server was started without --config; nothing to re-read")
	}
	f, err := config.Load(s.o.ConfigPath)
	if err == nil {
		err = f.ReadSecrets()
	}
	if err == nil {
		_, err = dnsserver.NewKeyring(tsigKeys(f))
	}
	if err != nil {
		return fmt.Errorf("reload rejected, nothing changed:\n%w", err)
	}
	// The running server keeps its addresses and store.
	var restart []string
	if s.fileServer != nil {
		restart = changedKeys("server", *s.fileServer, f.Server)
	}
	f.Server = s.cfg.Server
	if err := emptyGuard(s.cfg, f); err != nil {
		return fmt.Errorf("reload rejected, nothing changed: %w", err)
	}
	useCert := func() {}
	if s.tls != nil {
		if useCert, err = s.tls.Prepare(); err != nil {
			return fmt.Errorf("reload rejected, nothing changed (the old certificate stays):\n%w", err)
		}
	}
	if _, err := s.apply(ctx, f, nil); err != nil {
		return err
	}
	s.swapSecrets(f)
	if s.tls != nil {
		useCert()
		leaf := s.tls.Leaf()
		s.log.Info("reload: https certificate", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	}
	s.cfg = f
	if len(restart) > 0 {
		s.log.Warn("reload: these settings change only on restart", "keys", strings.Join(restart, ", "))
		return fmt.Errorf("reload applied, but %s %w: restart the server to use the new values", strings.Join(restart, ", "), ErrRestartNeeded)
	}
	return nil
}

// swapSecrets hands f's credentials to the running roles; each swaps its
// whole set at once.
func (s *Server) swapSecrets(f *config.File) {
	if s.api != nil {
		s.api.SetAuth(apiAuth(f))
	}
	if s.route53 != nil {
		s.route53.SetCredentials(route53Credentials(apiAuth(f).Tokens))
	}
	if s.ring != nil {
		if err := s.ring.Swap(tsigKeys(f)); err != nil { // checked above: cannot happen
			s.log.Error("reload: tsig keys not swapped", "err", err)
		}
	}
	if s.primary != nil {
		s.primary.SetTransfer(f.DNS.Secondaries, f.DNS.AllowTransfer)
	}
	s.log.Info("reload: credentials swapped", "tokens", len(f.API.Tokens), "tsig_keys", len(f.DNS.TSIGKeys),
		"secondaries", len(f.DNS.Secondaries), "allow_transfer", len(f.DNS.AllowTransfer))
}

// changedKeys names the fields (by their config key under prefix) that
// differ between a and b, structs of one type.
func changedKeys(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, prefix+"."+name)
		}
	}
	return out
}

// Close stops every role and the store, and waits for their goroutines.
// Every step is bounded (the API's graceful shutdown by closeHTTPTimeout,
// the audit log's last write by 2 s, the store's child by its stop
// timeout), none by the size of the registry; how long each took is logged.
func (s *Server) Close() error {
	t0 := time.Now()
	if s.httpSrv != nil {
		if s.api != nil {
			s.api.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeHTTPTimeout)
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.httpSrv.Close()
		}
		cancel()
	} else if s.httpLn != nil {
		s.httpLn.Close()
	}
	tHTTP := time.Since(t0)
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	tRoles := time.Since(t0) - tHTTP
	var err error
	if s.st != nil {
		err = s.st.Close()
	}
	s.log.Info("stopped", "took", time.Since(t0).Round(time.Millisecond), "http", tHTTP.Round(time.Millisecond),
		"roles", tRoles.Round(time.Millisecond), "store", (time.Since(t0) - tHTTP - tRoles).Round(time.Millisecond))
	return err
}

// closeHTTPTimeout bounds the API's graceful shutdown: requests under way
// get this long to finish before their connections are closed.
const closeHTTPTimeout = 5 * time.Second

// Desired turns the config file into the store objects it owns.
func Desired(f *config.File) store.Desired {
	d := store.Desired{}
	for _, z := range f.Zones {
		d[store.ZoneKey(z)] = &api.Zone{Name: z, Source: api.SourceConfig}
	}
	for i := range f.Services {
		svc := f.Services[i].Service
		svc.Source = api.SourceConfig
		d[store.ServiceKey(svc.Name)] = &svc
		for j := range f.Services[i].Nodes {
			n := f.Services[i].Nodes[j]
			n.Service, n.Source = svc.Name, api.SourceConfig
			d[store.NodeKey(svc.Name, n.ID)] = &n
		}
	}
	for i := range f.Listeners {
		l := f.Listeners[i]
		l.Source = api.SourceConfig
		d[store.ListenerKey(l.Name)] = &l
	}
	for i := range f.Groups {
		g := f.Groups[i]
		g.Source = api.SourceConfig
		d[store.GroupKey(g.Name)] = &g
	}
	return d
}
