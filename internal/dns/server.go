package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/upgrade"
)

// Snapshots is what the DNS server answers from.
type Snapshots interface {
	Current() *registry.Snapshot
	Next(s *registry.Snapshot) <-chan struct{}
}

var _ Snapshots = (*registry.Watcher)(nil)

// metrics are one Server's Prometheus series, on its Options.Registerer.
type metrics struct {
	queries, tcpConns                  *prometheus.CounterVec
	seconds, tableBuild                prometheus.Histogram
	truncated, rrlDropped, rrlSlipped  prometheus.Counter
	tcpRefused, extraDropped, logsDrop prometheus.Counter
	tcpOpen                            prometheus.Gauge
}

// register registers c on reg, or returns the collector already registered
// under its name (two servers on the default registry share their series;
// give each its own registry to tell them apart).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		queries: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_dns_queries_total", Help: "DNS queries by query type and response code.",
		}, []string{"qtype", "rcode"})),
		seconds: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seamark_dns_answer_seconds", Help: "Time to answer a DNS query, from read to write (UDP on Linux: once per batch of queries read together).",
			Buckets: prometheus.ExponentialBuckets(0.000001, 4, 10),
		})),
		truncated: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_truncated_total", Help: "UDP answers sent truncated (TC set; the client retries over TCP).",
		})),
		tableBuild: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seamark_dns_table_build_seconds", Help: "Time to build the name table from a new snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		})),
		rrlDropped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_rrl_dropped_total", Help: "UDP answers not sent: response rate limiting.",
		})),
		rrlSlipped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_rrl_slipped_total", Help: "UDP answers sent empty with TC (slip) by response rate limiting.",
		})),
		tcpRefused: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_tcp_refused_total", Help: "TCP connections closed at once: dns.max_tcp_connections reached.",
		})),
		tcpConns: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_dns_tcp_accept_errors_total", Help: "TCP accept errors by kind (emfile: out of descriptors; accepting paused).",
		}, []string{"kind"})),
		tcpOpen: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_dns_tcp_connections", Help: "Open DNS TCP connections.",
		})),
		extraDropped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_extra_dropped_total", Help: "UPDATE, NOTIFY and transfer messages dropped: the worker queue was full.",
		})),
		logsDrop: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_dns_log_lines_suppressed_total", Help: "Per-packet log lines not written (rate limited).",
		})),
	}
}

// Options configure a Server.
type Options struct {
	// Addr is where to listen, UDP and TCP (host:port; port 0 picks one free
	// for both).
	Addr      string
	Snapshots Snapshots
	Logger    *slog.Logger
	// Sockets is the number of UDP sockets (SO_REUSEPORT); default GOMAXPROCS.
	Sockets int
	// Handover, when set, hands the TCP listener and UDP sockets over from
	// a predecessor (upgrade in place: as many UDP sockets as it had) and
	// on to a successor; nil binds.
	Handover *upgrade.Sockets
	// Handler, when set, answers what the name table does not: UPDATE,
	// NOTIFY and zone transfers. It gets the table's snapshot revision.
	Handler ExtraHandler
	// TSIG, when set, verifies signed messages (UDP and TCP) and signs the
	// answers to them; a signed message that fails is answered NOTAUTH with
	// the TSIG error and goes no further (RFC 8945). Without it every
	// signed message fails with BADKEY.
	TSIG dns.TsigProvider
	// Registerer takes the server's metrics; nil: a private registry
	// (metrics not exported).
	Registerer prometheus.Registerer
	// MaxUDPSize caps UDP answers and is the payload size advertised:
	// answers are at most the smaller of it and the client's EDNS size.
	// Default DefaultMaxUDPSize (1232); from 512 to 65535.
	MaxUDPSize int
	// Zones configure zone apexes (NS set, SOA), by canonical zone name.
	Zones map[string]Zone
	// RRL is response rate limiting (on by default).
	RRL RRL
	// MaxTCPConnections caps open TCP connections; beyond it new ones are
	// closed at once. Default DefaultMaxTCPConnections.
	MaxTCPConnections int
	// TCPIdleTimeout closes a TCP connection idle this long (RFC 7766
	// 6.2.3); default 10s, and 1s while more than 3/4 of the cap is used.
	TCPIdleTimeout time.Duration
	// ExtraWorkers answer UPDATE, NOTIFY and transfers off the UDP read
	// loop; default 4. Their queue holds 16 per worker; a message that
	// finds it full is dropped (the client retries).
	ExtraWorkers int
	// Now is the clock of rate limiting (tests); default time.Now.
	Now func() time.Time
}

// Defaults of the TCP surface.
const (
	DefaultMaxTCPConnections = 256
	DefaultTCPIdleTimeout    = 10 * time.Second
)

// ExtraHandler answers messages other than plain queries.
type ExtraHandler interface {
	// ServeExtra answers req, or returns nil to let the server answer
	// NOTIMP; ctx ends when the server stops. tcp says how req arrived;
	// w is for multi-message answers (AXFR).
	ServeExtra(ctx context.Context, w dns.ResponseWriter, req *dns.Msg, tcp bool) *dns.Msg
}

// Server is the authoritative DNS server.
type Server struct {
	o       Options
	log     *slog.Logger
	plog    *limitedLog // per-packet lines
	m       *metrics
	rrl     *limiter // nil: off
	table   atomic.Pointer[table]
	udp     []*net.UDPConn
	tcp     net.Listener
	addr    netip.AddrPort
	extra   chan extraJob
	tcpOpen atomic.Int64
	tcpLive sync.Map // *countedConn -> struct{}: the open TCP connections
	// handedOff: a successor reads the shared sockets now (StopReading).
	handedOff atomic.Bool
}

// extraJob is a message for the extra workers.
type extraJob struct {
	w   dns.ResponseWriter
	req *dns.Msg
}

// New returns a Server; Listen binds it, Serve runs it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sockets <= 0 {
		o.Sockets = runtime.GOMAXPROCS(0)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.MaxUDPSize <= 0 {
		o.MaxUDPSize = DefaultMaxUDPSize
	}
	o.MaxUDPSize = min(max(o.MaxUDPSize, dns.MinMsgSize), dns.MaxMsgSize)
	if o.MaxTCPConnections <= 0 {
		o.MaxTCPConnections = DefaultMaxTCPConnections
	}
	if o.TCPIdleTimeout <= 0 {
		o.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if o.ExtraWorkers <= 0 {
		o.ExtraWorkers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Logger.With("component", "dns"), m: newMetrics(o.Registerer)}
	s.plog = newLimitedLog(s.log, 10, s.m.logsDrop.Inc, o.Now)
	if !o.RRL.Disabled {
		s.rrl = newLimiter(o.RRL, func() int64 { return o.Now().UnixNano() })
	}
	s.extra = make(chan extraJob, 16*o.ExtraWorkers)
	return s
}

// Listen binds the UDP sockets and the TCP listener on one port.
func (s *Server) Listen() error {
	var lastErr error
	for range 10 { // with port 0, the port UDP got may be taken for TCP: try again
		err := s.listenOnce()
		if err == nil {
			return nil
		}
		lastErr = err
		if ap, perr := netip.ParseAddrPort(s.o.Addr); perr != nil || ap.Port() != 0 {
			break
		}
	}
	return fmt.Errorf("dns: listen on %s: %w", s.o.Addr, lastErr)
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	})
	return errors.Join(err, serr)
}

func (s *Server) listenOnce() error {
	// With port 0 the TCP socket picks the port: UDP ports that a busy
	// machine hands out are far more often free for TCP than the other way
	// round (outgoing TCP connections take ports from the same range).
	ho := s.o.Handover
	ln, err := ho.Listen("dns/tcp/"+s.o.Addr, func() (net.Listener, error) { return net.Listen("tcp", s.o.Addr) })
	if err != nil {
		return err
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	lc := net.ListenConfig{Control: reusePort}
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		ln.Close()
	}
	want := max(s.o.Sockets, 1)
	// Keys name the configured address: a changed one binds anew.
	if n := ho.Inherited("dns/udp/" + s.o.Addr + "/"); n > 0 {
		want = n
	}
	for len(conns) < want {
		c, err := ho.ListenPacket(fmt.Sprintf("dns/udp/%s/%d", s.o.Addr, len(conns)), func() (net.PacketConn, error) {
			return lc.ListenPacket(context.Background(), "udp", ap.String())
		})
		if err != nil {
			closeAll()
			return err
		}
		conns = append(conns, c.(*net.UDPConn))
	}
	for _, c := range conns {
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
	}
	s.udp, s.tcp, s.addr = conns, ln, ap
	return nil
}

// StopReading hands the sockets to a successor process that holds them too
// (upgrade in place): the UDP read loops stop (this process's reads end at
// once; the kernel's sockets, and the queries queued in them, are the
// successor's), answers to what was read still go out, and the TCP listener
// closes here. Serve's context ends the rest.
func (s *Server) StopReading() {
	s.handedOff.Store(true)
	for _, c := range s.udp {
		_ = c.SetReadDeadline(time.Now())
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
}

// Addr is the bound address (UDP and TCP).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Serve answers until ctx ends; it closes the sockets on the way out.
func (s *Server) Serve(ctx context.Context) error {
	if s.udp == nil {
		return errors.New("dns: Serve before Listen")
	}
	var wg sync.WaitGroup
	s.follow(ctx, &wg)
	for range s.o.ExtraWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.extra:
					s.serveMsg(ctx, j.w, j.req, false)
				}
			}
		}()
	}
	for _, c := range s.udp {
		wg.Add(1)
		go func() { defer wg.Done(); s.serveUDP(c) }()
	}
	tcpSrv := &dns.Server{Listener: &capListener{Listener: s.tcp, s: s}, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serveMsg(ctx, w, r, true) }),
		ReadTimeout: s.o.TCPIdleTimeout, WriteTimeout: 10 * time.Second, IdleTimeout: s.tcpIdle,
		TsigProvider: s.o.TSIG, MsgAcceptFunc: acceptRequests}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := tcpSrv.ActivateAndServe(); err != nil && ctx.Err() == nil {
			s.log.Error("dns tcp server stopped", "err", err)
		}
	}()
	s.log.Info("dns listening", "addr", s.addr.String(), "udp_sockets", len(s.udp))
	<-ctx.Done()
	for _, c := range s.udp {
		c.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = tcpSrv.ShutdownContext(sctx)
	cancel()
	s.tcp.Close()
	wg.Wait()
	return nil
}

// follow builds a new table for every new snapshot.
func (s *Server) follow(ctx context.Context, wg *sync.WaitGroup) {
	nsAddr := s.defaultNSAddr(s.addr.Addr())
	// build makes the table of snap: from the table of prev, changing only
	// what changed since prev (snapshots published meanwhile included), when
	// prev is one of the last snapshots before snap; whole otherwise.
	build := func(prev, snap *registry.Snapshot) {
		t0 := time.Now()
		var t *table
		if cur := s.table.Load(); cur != nil && prev != nil {
			t = cur.update(prev, snap, snap.DeltaSince(prev.Revision))
		}
		if t == nil {
			t = buildTable(snap, nsAddr, s.o.Zones)
		}
		t.maxUDP = s.o.MaxUDPSize
		s.table.Store(t)
		s.m.tableBuild.Observe(time.Since(t0).Seconds())
	}
	snap := s.o.Snapshots.Current()
	if snap != nil {
		build(nil, snap)
	} else {
		s.table.Store(&table{maxUDP: s.o.MaxUDPSize})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.o.Snapshots.Next(snap):
				prev := snap
				snap = s.o.Snapshots.Current()
				build(prev, snap)
			}
		}
	}()
}

// serveMsg answers a parsed message (TCP, and UDP queries the fast path does
// not take).
func (s *Server) serveMsg(ctx context.Context, w dns.ResponseWriter, req *dns.Msg, tcp bool) {
	t0 := time.Now()
	if resp := tsigFailure(w, req, s.o.TSIG != nil); resp != nil {
		ensureOPT(req, resp, s.o.MaxUDPSize)
		s.count(req, resp)
		_ = w.WriteMsg(resp)
		return
	}
	var resp *dns.Msg
	if req.Opcode != dns.OpcodeQuery || (len(req.Question) == 1 && (req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR)) {
		if s.o.Handler != nil {
			resp = s.o.Handler.ServeExtra(ctx, w, req, tcp)
			if resp == nil && req.Opcode == dns.OpcodeQuery {
				return // the handler wrote its answer (a transfer)
			}
		}
	}
	if resp == nil {
		resp, _ = s.table.Load().answer(req, int(t0.UnixNano()), tcp)
	}
	ensureOPT(req, resp, s.o.MaxUDPSize)
	signReply(req, resp)
	s.count(req, resp)
	_ = w.WriteMsg(resp)
	s.m.seconds.Observe(time.Since(t0).Seconds())
}

// acceptRequests lets every request through to serveMsg, which answers
// what it does not serve (miekg's default turns UPDATE away over TCP).
func acceptRequests(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&0x8000 != 0 {
		return dns.MsgIgnore // a response: never answer one
	}
	return dns.MsgAccept
}

func (s *Server) count(req, resp *dns.Msg) {
	s.queryCounter(req, resp).Inc()
	if resp.Truncated {
		s.m.truncated.Inc()
	}
}

// queryCounter is the seamark_dns_queries_total series of a query and its answer.
func (s *Server) queryCounter(req, resp *dns.Msg) prometheus.Counter {
	qt := "none"
	if len(req.Question) == 1 {
		qt = dns.TypeToString[req.Question[0].Qtype]
		if qt == "" {
			qt = "other"
		}
	}
	return s.m.queries.WithLabelValues(qt, dns.RcodeToString[resp.Rcode])
}

// defaultNSAddr is the address the default ns.<zone> answers: the bound
// one, or when listening everywhere the machine's first global address, so
// the default resolves (dns.zones names the real set).
func (s *Server) defaultNSAddr(bound netip.Addr) netip.Addr {
	if !bound.IsUnspecified() {
		return bound
	}
	v4 := true // 0.0.0.0 binds [::] too: ask what was configured
	if ap, err := netip.ParseAddrPort(s.o.Addr); err == nil {
		v4 = ap.Addr().Is4()
	}
	return hostAddr(v4)
}

// hostAddr is the machine's first global unicast address, IPv4 first when
// v4 (else IPv6 first); invalid when it has none.
func hostAddr(v4 bool) netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}
	}
	var other netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().IsGlobalUnicast() {
			continue
		}
		ad := p.Addr().Unmap()
		if ad.Is4() == v4 {
			return ad
		}
		if !other.IsValid() {
			other = ad
		}
	}
	return other
}
