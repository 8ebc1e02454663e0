// Package store is seamark's only door to etcd.
//
// It starts an embedded single-node etcd in a data directory, or connects to an
// existing etcd cluster, and offers typed reads and writes of seamark's objects
// (zones, services, nodes, records, listeners, groups) plus a watch stream of
// typed events. The key layout is documented in keys.go and known nowhere else.
// Anything that must vanish when its owner dies (a node registered with a ttl)
// lives on an etcd lease.
//
// Conditional writes made at the same time (registrations, deregistrations,
// service and listener puts) are committed together, as the nested
// transactions of one etcd transaction, each with its own compares and its
// own outcome (group.go): a burst of API writes costs etcd one request, one
// raft entry and one revision per batch.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/seamark/seamark/api"
)

// Errors callers compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrNoLease  = errors.New("registered without a ttl")
)

// Options says which etcd to use.
type Options struct {
	// Endpoints of an existing etcd cluster. Empty: start an embedded one.
	Endpoints []string
	// DataDir of the embedded etcd.
	DataDir string
	// ClientAddr and PeerAddr are the embedded etcd's loopback listeners
	// (host:port; port 0 picks a free one).
	ClientAddr, PeerAddr string
	// Prefix every key lives under; default "/seamark/".
	Prefix string
	// TLS, when set, is used to reach an external cluster (https endpoints):
	// its CA and, for client-cert auth, the client certificate.
	TLS *tls.Config
	// Username and Password authenticate to an external cluster with
	// etcd's authentication on. The embedded store always runs with
	// authentication on and a root password of its own (auth.go).
	Username, Password string
	// DialTimeout bounds connecting to an external cluster; default 5s.
	DialTimeout time.Duration
	// CallTimeout bounds every store call whose context has no deadline;
	// default DefaultCallTimeout. Past it the call fails with ErrUnavailable.
	CallTimeout time.Duration
	// EtcdCommand runs the embedded etcd as a supervised child process (see
	// supervise.go): the command and its leading arguments, which end up in
	// RunChild (cmd/seamark passes itself and "__etcd"). Empty runs etcd in
	// this process with its fatal logs contained (tests).
	EtcdCommand []string
	// Adopt, with EtcdCommand, supervises a predecessor's running etcd
	// child instead of starting one (upgrade in place; see Handover).
	Adopt  *Handover
	Logger *slog.Logger
}

// Store is an open etcd, embedded or external.
type Store struct {
	cli    *clientv3.Client
	etcd   *embed.Etcd // nil when external or supervised
	sup    *supervisor // the embedded etcd's supervisor, when it is a child
	prefix string
	kind   string
	eps    []string
	// user and password authenticate the client (see Credentials).
	user, password string
	log            *slog.Logger
	// watchSeq numbers watches so each gets its own stream (read.go).
	watchSeq atomic.Uint64
	// rtt is the store's recent round trip, measured on every call.
	rtt *roundTrips
	// closing silences the embedded etcd's logs while it is stopped on purpose.
	closing atomic.Bool
	// The endpoint tender of an external cluster with several members.
	recheck    chan struct{}
	stopTender context.CancelFunc
	tended     chan struct{}
	// group commits concurrent conditional writes together (group.go).
	group *groupCommit
}

// Embedded etcd timing: a single member has no peers to wait for, so short
// ticks cost nothing and make leases (the floor of every "vanishes when it
// dies" bound) honour a 1 s TTL. See DESIGN.md, "Facts already measured".
const (
	embeddedTickMs     = 20
	embeddedElectionMs = 100
	// embeddedMaxTxnOps lets a 1000-change record batch (a compare and a write
	// per change) commit in one transaction.
	embeddedMaxTxnOps = 4096
)

// Open starts or connects to etcd and returns a ready Store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = "/seamark/"
	}
	if !strings.HasPrefix(o.Prefix, "/") || !strings.HasSuffix(o.Prefix, "/") {
		return nil, fmt.Errorf("open store: prefix %q must start and end with '/'", o.Prefix)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{prefix: o.Prefix, log: o.Logger.With("component", "store"), rtt: newRoundTrips(nil)}
	if len(o.Endpoints) == 0 && (o.TLS != nil || o.Username != "") {
		return nil, errors.New("open store: TLS and user credentials are for an external etcd; the embedded store makes its own credential in the data directory")
	}
	if len(o.Endpoints) == 0 && len(o.EtcdCommand) > 0 {
		var sv *supervisor
		var ep string
		var err error
		if o.Adopt != nil {
			sv, ep, err = adoptSupervised(o, s.log)
		} else {
			sv, ep, err = startSupervised(ctx, o, s.log)
		}
		if err != nil {
			return nil, err
		}
		// The child turned authentication on with the password it keeps
		// in the data directory.
		pw, err := childRootPassword(o.DataDir)
		if err != nil {
			sv.Close()
			return nil, err
		}
		s.sup, s.kind, s.eps = sv, "embedded", []string{ep}
		o.Username, o.Password = rootUser, pw
	} else if len(o.Endpoints) == 0 {
		e, ep, pw, err := startEmbedded(ctx, o, s.log, &s.closing, true)
		if err != nil {
			return nil, err
		}
		s.etcd, s.kind, s.eps = e, "embedded", []string{ep}
		o.Username, o.Password = rootUser, pw
	} else {
		s.kind, s.eps = "external", o.Endpoints
	}
	s.user, s.password = o.Username, o.Password
	cli, err := clientv3.New(clientv3.Config{
		TLS:                  o.TLS,
		Username:             o.Username,
		Password:             o.Password,
		Endpoints:            s.eps,
		DialTimeout:          o.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
		MaxCallSendMsgSize:   8 << 20,
		MaxCallRecvMsgSize:   256 << 20,
		// gRPC's own reconnect backoff grows to 2 minutes: a store back
		// after an outage would stay unused that long. Cap it.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		s.stopEmbedded()
		return nil, fmt.Errorf("open store: connect to etcd at %s: %w", strings.Join(s.eps, ","), err)
	}
	cli.KV = boundedKV{KV: cli.KV, d: o.CallTimeout, rtt: s.rtt}
	cli.Lease = boundedLease{Lease: cli.Lease, d: o.CallTimeout}
	s.cli = cli
	s.group = &groupCommit{kv: cli.KV, timeout: o.CallTimeout}
	if s.etcd != nil || s.sup != nil {
		if err := s.checkAuth(ctx, o.DialTimeout); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.sup != nil {
		// A restarted child serves at once: reconnect now.
		s.sup.setOnRestart(func() { cli.ActiveConnection().ResetConnectBackoff() })
	}
	// Prove the cluster answers before anyone relies on it.
	sctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if _, err := cli.Get(sctx, s.prefix+version+"ping", clientv3.WithCountOnly()); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: etcd at %s does not answer: %w", strings.Join(s.eps, ","), err)
	}
	if s.etcd == nil && len(s.eps) > 1 {
		tctx, stop := context.WithCancel(context.Background())
		s.recheck, s.stopTender, s.tended = make(chan struct{}, 1), stop, make(chan struct{})
		go s.tendEndpoints(tctx)
	}
	s.log.Info("store ready", "kind", s.kind, "endpoints", strings.Join(s.eps, ","), "prefix", s.prefix)
	return s, nil
}

func startEmbedded(ctx context.Context, o Options, log *slog.Logger, closing *atomic.Bool, contain bool) (*embed.Etcd, string, string, error) {
	if o.DataDir == "" {
		return nil, "", "", errors.New("open store: embedded etcd needs a data directory")
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("open store: create data directory: %w", err)
	}
	if err := checkSpace(o.DataDir); err != nil {
		return nil, "", "", err
	}
	clientURL, err := loopbackURL(o.ClientAddr, "127.0.0.1:9479", false)
	if err != nil {
		return nil, "", "", fmt.Errorf("open store: etcd client address: %w", err)
	}
	peerURL, err := loopbackURL(o.PeerAddr, "127.0.0.1:9480", true)
	if err != nil {
		return nil, "", "", fmt.Errorf("open store: etcd peer address: %w", err)
	}
	peerURL.Scheme = "https"
	peerTLSInfo, err := peerTLS(o.DataDir, peerURL.Hostname())
	if err != nil {
		return nil, "", "", err
	}
	pw, created, err := rootPassword(o.DataDir)
	if err != nil {
		return nil, "", "", err
	}
	_, statErr := os.Stat(filepath.Join(o.DataDir, "etcd", "member"))
	if created || errors.Is(statErr, fs.ErrNotExist) {
		// Turn authentication on while etcd listens on a private port only,
		// so no other process can write before it is on.
		bootURL := &url.URL{Scheme: "http", Host: "127.0.0.1:0"}
		e, ep, err := runEmbedded(ctx, embedConfig(o, bootURL, peerURL, peerTLSInfo, log, closing, contain))
		if err == nil {
			err = enableAuth(ctx, ep, pw, created)
			closing.Store(true)
			e.Close()
			<-e.Server.StopNotify()
			closing.Store(false)
		}
		if err != nil {
			if created {
				os.Remove(filepath.Join(o.DataDir, RootPasswordFile))
			}
			return nil, "", "", err
		}
	}
	e, ep, err := runEmbedded(ctx, embedConfig(o, clientURL, peerURL, peerTLSInfo, log, closing, contain))
	return e, ep, pw, err
}

func embedConfig(o Options, clientURL, peerURL *url.URL, peerTLSInfo transport.TLSInfo, log *slog.Logger, closing *atomic.Bool, contain bool) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "seamark"
	cfg.Dir = filepath.Join(o.DataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.PeerTLSInfo = peerTLSInfo
	cfg.TickMs = embeddedTickMs
	cfg.ElectionMs = embeddedElectionMs
	cfg.MaxTxnOps = embeddedMaxTxnOps
	cfg.AutoCompactionMode = embed.CompactorModeRevision
	cfg.AutoCompactionRetention = "100000"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(log, closing, contain))
	// The root password is 24 random bytes, not a human's: bcrypt's cost
	// adds nothing against guessing it and 50-500 ms to every start.
	cfg.BcryptCost = 4 // bcrypt.MinCost
	if authTokenTTL != 0 {
		cfg.AuthTokenTTL = authTokenTTL
	}
	return cfg
}

func runEmbedded(ctx context.Context, cfg *embed.Config) (*embed.Etcd, string, error) {
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("open store: start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("open store: embedded etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, "", errors.New("open store: embedded etcd not ready after 30s")
	case <-ctx.Done():
		e.Close()
		return nil, "", fmt.Errorf("open store: %w", ctx.Err())
	}
	ep := "http://" + e.Clients[0].Addr().String()
	return e, ep, nil
}

// loopbackURL turns host:port into an http URL; a peer listener asked for port
// 0 gets a free port chosen now, because etcd must advertise the real one.
func loopbackURL(addr, def string, pickPort bool) (*url.URL, error) {
	if addr == "" {
		addr = def
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port", addr)
	}
	if port == "0" && pickPort {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		l.Close()
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}

// Close disconnects and stops the embedded etcd, if any.
func (s *Store) Close() error {
	if s.stopTender != nil {
		s.stopTender()
		<-s.tended
	}
	var err error
	if s.cli != nil {
		err = s.cli.Close()
	}
	s.stopEmbedded()
	return err
}

func (s *Store) stopEmbedded() {
	if s.sup != nil {
		s.sup.Close()
		s.sup = nil
	}
	if s.etcd != nil {
		s.closing.Store(true)
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
		s.etcd = nil
	}
}

// Credentials are the user and password the store's client authenticates
// with ("" when none): for the embedded store, root and its generated
// password. Another client of the same etcd (a test, a backup) needs them.
func (s *Store) Credentials() (user, password string) { return s.user, s.password }

// Down says why the embedded etcd child is not serving (it exited and is
// being restarted), or "" when it serves or the store is not a child.
func (s *Store) Down() string {
	if s.sup == nil {
		return ""
	}
	return s.sup.Down()
}

// Kind is "embedded" or "external".
func (s *Store) Kind() string { return s.kind }

// Endpoints are the etcd client URLs in use.
func (s *Store) Endpoints() []string { return s.eps }

// Prefix is the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Status asks etcd who leads, its version and the current revision.
func (s *Store) Status(ctx context.Context) (api.StoreStatus, error) {
	st := api.StoreStatus{Kind: s.kind, Endpoints: s.eps}
	if down := s.Down(); down != "" {
		st.Error = down
		return st, fmt.Errorf("store status: %w: %s", ErrUnavailable, down)
	}
	var lastErr error
	for _, ep := range s.eps {
		r, err := s.cli.Status(ctx, ep)
		if err != nil {
			lastErr = err
			continue
		}
		st.Revision = r.Header.Revision
		st.ClusterID = fmt.Sprintf("%x", r.Header.ClusterId)
		st.EtcdVersion = r.Version
		st.DBSize = r.DbSize
		st.Leader = fmt.Sprintf("%x", r.Leader)
		if ms, err := s.cli.MemberList(ctx); err == nil {
			for _, m := range ms.Members {
				if m.ID == r.Leader {
					st.Leader = m.Name
				}
			}
		}
		return st, nil
	}
	err := unavailable(ctx, lastErr)
	if err == nil {
		err = fmt.Errorf("%w: no endpoint", ErrUnavailable)
	}
	st.Error = err.Error()
	return st, fmt.Errorf("store status: %w", err)
}
