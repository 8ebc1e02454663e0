// Package httpapi serves seamark's HTTP API under /v1, Prometheus metrics
// at /metrics and, when given one, the dashboard under /ui/.
//
// Node admin states (drain, maint, a weight override: admin.go) are written
// apart from registrations, with write access only, and logged as events.
//
// What it reads: the registry's current Snapshot (every GET answers from it,
// with Consul-style blocking reads through ?index= and ?wait=) and the store's
// status. What it writes: services, nodes (optionally on a lease), listeners
// and zone record change batches, through the store's typed functions only.
// After a write it waits until the local snapshot reflects it, so a client
// reads its own writes. Bad input is a 4xx with a message that says what to
// change; writes need a bearer token when tokens are configured.
package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Store is what the API writes through.
type Store interface {
	PutService(ctx context.Context, svc api.Service, create bool) (int64, error)
	DeleteService(ctx context.Context, name string, by api.Source) (int64, error)
	PutNode(ctx context.Context, n api.Node, ttl time.Duration) (int64, int64, error)
	RenewNode(ctx context.Context, service, id string) (time.Duration, error)
	DeleteNode(ctx context.Context, service, id string, by api.Source) (int64, error)
	PutListener(ctx context.Context, l api.Listener, create bool) (int64, error)
	DeleteListener(ctx context.Context, name string, by api.Source) (int64, error)
	ApplyChanges(ctx context.Context, zone string, b api.ChangeBatch) (int64, error)
	Status(ctx context.Context) (api.StoreStatus, error)
}

// Snapshots is what the API reads from.
type Snapshots interface {
	Current() *registry.Snapshot
	Next(s *registry.Snapshot) <-chan struct{}
	WaitRevision(ctx context.Context, rev int64) (*registry.Snapshot, error)
}

var (
	_ Store     = (*store.Store)(nil)
	_ Snapshots = (*registry.Watcher)(nil)
)

// Access levels of a token.
const (
	AccessRead  = "read"
	AccessWrite = "write"
)

// Token is a bearer secret and what it may do.
type Token struct {
	Name   string
	Secret string
	Access string // read or write
}

// Balancer is the local load balancer's live counters (an *lb.Server).
type Balancer interface {
	Stats() []api.ListenerStats
}

// Options configure a Handler.
type Options struct {
	Store     Store
	Snapshots Snapshots
	// Balancer, when set, is served at GET /v1/lb.
	Balancer Balancer
	Logger   *slog.Logger
	Version  string
	// Tokens, when any, are required for writes; for reads too unless
	// AnonymousRead.
	Tokens        []Token
	AnonymousRead bool
	// MaxWait caps ?wait= of blocking reads; default 5m.
	MaxWait time.Duration
	// WriteVisibleTimeout bounds how long a write waits for the local
	// snapshot to show it; default 2s.
	WriteVisibleTimeout time.Duration
	// StoreTimeout bounds the store calls of one write (a 503 with
	// Retry-After beyond); default 1.5s.
	StoreTimeout time.Duration
	// StoreProbeEvery is how often Run asks the store for its status,
	// which /v1/status answers from; default 1s.
	StoreProbeEvery time.Duration
	// UI, when set, serves the dashboard under /ui/ (without a token: its
	// files hold no data, and the page reads the API with the user's), and
	// GET / redirects there.
	UI http.Handler
	// Route53, when set, serves Amazon Route 53's API under /2013-04-01/
	// (it authenticates its own requests with AWS Signature Version 4).
	Route53 http.Handler
	// Registerer gets the API's metrics and Gatherer is served at
	// /metrics; both default to one new registry of the Handler's own
	// (never the global one).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Config, when set, reports the last config load for /v1/status.
	Config func() api.ConfigStatus
}

// Handler is the API's http.Handler.
type Handler struct {
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	started time.Time
	// stopping is closed by Close: blocking reads answer at once.
	stopping  chan struct{}
	closeOnce sync.Once
	m         *metrics
	health    storeHealth
}

// Close makes every blocking read in flight answer now, so that a server
// shutdown does not wait for them.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.stopping) })
}

// metrics are a Handler's own (registered with Options.Registerer).
type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	writeVisible prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_http_requests_total", Help: "HTTP API requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "seamark_http_request_seconds", Help: "HTTP API request latency (blocking reads excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route"}),
		writeVisible: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seamark_write_visible_seconds", Help: "Time from an API write being committed to the local snapshot showing it.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 1.25, 48),
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.writeVisible)
	return m
}

// New returns the API handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxWait == 0 {
		o.MaxWait = 5 * time.Minute
	}
	if o.WriteVisibleTimeout == 0 {
		o.WriteVisibleTimeout = 2 * time.Second
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 1500 * time.Millisecond
	}
	if o.StoreProbeEvery == 0 {
		o.StoreProbeEvery = time.Second
	}
	if o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer = reg
		if o.Gatherer == nil {
			o.Gatherer = reg
		}
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	h := &Handler{o: o, log: o.Logger.With("component", "httpapi"), mux: http.NewServeMux(), started: time.Now(), stopping: make(chan struct{}), m: newMetrics(o.Registerer)}
	h.routes()
	return h
}

func (h *Handler) routes() {
	read := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		h.mux.Handle(pattern, h.wrap(pattern, AccessRead, fn))
	}
	write := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		h.mux.Handle(pattern, h.wrap(pattern, AccessWrite, fn))
	}
	read("GET /v1/status", h.status)
	read("GET /v1/services", h.listServices)
	write("POST /v1/services", h.createService)
	read("GET /v1/services/{service}", h.getService)
	write("PUT /v1/services/{service}", h.putService)
	write("DELETE /v1/services/{service}", h.deleteService)
	read("GET /v1/services/{service}/nodes", h.listNodes)
	write("POST /v1/services/{service}/nodes", h.registerNode)
	read("GET /v1/services/{service}/nodes/{id}", h.getNode)
	write("PUT /v1/services/{service}/nodes/{id}", h.registerNode)
	write("DELETE /v1/services/{service}/nodes/{id}", h.deregisterNode)
	write("PUT /v1/services/{service}/nodes/{id}/renew", h.renewNode)
	read("GET /v1/nodes", h.listAllNodes)
	read("GET /v1/zones", h.listZones)
	read("GET /v1/zones/{zone}/records", h.listRecords)
	write("POST /v1/zones/{zone}/changes", h.applyChanges)
	read("GET /v1/listeners", h.listListeners)
	write("POST /v1/listeners", h.createListener)
	read("GET /v1/listeners/{name}", h.getListener)
	write("PUT /v1/listeners/{name}", h.putListener)
	write("DELETE /v1/listeners/{name}", h.deleteListener)
	read("GET /v1/groups", h.listGroups)
	read("GET /v1/lb", h.balancerStats)
	read("GET /v1/events", h.listEvents)
	h.adminRoutes() // admin.go: drain, maint, weight override
	if h.o.UI != nil {
		h.mux.Handle("GET /ui/", h.o.UI)
		h.mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	if h.o.Route53 != nil {
		h.mux.Handle("/2013-04-01/", h.o.Route53)
	}
	metrics := promhttp.HandlerFor(h.o.Gatherer, promhttp.HandlerOpts{})
	read("GET /metrics", func(w http.ResponseWriter, r *http.Request) error { metrics.ServeHTTP(w, r); return nil })
	h.mux.Handle("/", h.wrap("/", AccessRead, func(w http.ResponseWriter, r *http.Request) error {
		if allowed := h.allowedMethods(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			return errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))
		}
		return errorf(http.StatusNotFound, "no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path)
	}))
}

// allowedMethods lists the methods a path does have a route for.
func (h *Handler) allowedMethods(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (h *Handler) wrap(route string, need string, fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		err := h.authorize(r, need)
		if err == nil && r.Body != nil && r.Body != http.NoBody {
			// A body is read within bodyTimeout and up to maxBody (413
			// beyond); no server-wide ReadTimeout, which would cut blocking
			// reads.
			if r.ContentLength > maxBody {
				err = errorf(http.StatusRequestEntityTooLarge, "body: %d bytes is larger than %d (the limit of one request; see docs/api.md, Limits)", r.ContentLength, maxBody)
			}
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		if err == nil && need == AccessWrite {
			// Every store call of a write carries a deadline: a store that
			// is away makes it a 503 within storeWriteTimeout.
			ctx, cancel := context.WithTimeout(r.Context(), h.o.StoreTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err == nil {
			err = fn(rec, r)
		}
		if err != nil {
			he := h.toHTTPError(err)
			if he.status >= 500 {
				h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			if rec.code == 0 {
				writeError(rec, he)
			}
		}
		h.m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		if r.URL.Query().Get("index") == "" {
			h.m.latency.WithLabelValues(route).Observe(time.Since(t0).Seconds())
		}
	})
}

// toHTTPError maps store errors to statuses; anything unknown is a 500.
func (h *Handler) toHTTPError(err error) *httpError {
	var he *httpError
	var fe api.FieldErrors
	var ce *store.ChangeError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &fe):
		return &httpError{status: http.StatusBadRequest, msg: fe.Error()}
	case errors.As(err, &ce) && errors.Is(err, store.ErrConflict):
		return &httpError{status: http.StatusConflict, msg: ce.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNoLease):
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	case errors.Is(err, store.ErrUnavailable):
		return &httpError{status: http.StatusServiceUnavailable, msg: "the store is unavailable; try again: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), storeUnavailable(err):
		return &httpError{status: http.StatusServiceUnavailable, msg: "the store is unavailable (it did not answer within " + h.o.StoreTimeout.String() + "); nothing was written, try again: " + err.Error()}
	}
	return &httpError{status: http.StatusInternalServerError, msg: "internal error: " + err.Error()}
}

func (h *Handler) authorize(r *http.Request, need string) error {
	if len(h.o.Tokens) == 0 || (need == AccessRead && h.o.AnonymousRead) {
		return nil
	}
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" {
		return errorf(http.StatusUnauthorized, "this request needs a token: send \"Authorization: Bearer <token>\"")
	}
	var tok *Token
	for i := range h.o.Tokens {
		t := &h.o.Tokens[i]
		if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 {
			tok = t
		}
	}
	if tok == nil {
		return errorf(http.StatusUnauthorized, "the token is not known to this server")
	}
	if need == AccessWrite && tok.Access != AccessWrite {
		return errorf(http.StatusForbidden, "token %q may only read; this request writes", tok.Name)
	}
	return nil
}
