package route53

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Prefix is the path every Route 53 request starts with.
const Prefix = "/2013-04-01/"

// bodyTimeout bounds reading a request body; maxHealthChecks bounds the
// health check definitions (Route 53's default quota is 200).
const (
	bodyTimeout     = 30 * time.Second
	maxHealthChecks = 10000
)

// Store is what the Route 53 API writes through.
type Store interface {
	PutService(ctx context.Context, svc api.Service, create bool) (int64, error)
	PutNode(ctx context.Context, n api.Node, ttl time.Duration) (int64, int64, error)
	DeleteNode(ctx context.Context, service, id string, by api.Source) (int64, error)
	ApplyChanges(ctx context.Context, zone string, b api.ChangeBatch) (int64, error)
	PutHealthCheck(ctx context.Context, id string, val []byte, create bool) (int64, error)
	HealthCheck(ctx context.Context, id string) ([]byte, error)
	HealthChecks(ctx context.Context) (map[string][]byte, error)
	HealthCheckCount(ctx context.Context) (int64, error)
	DeleteHealthCheck(ctx context.Context, id string) (int64, error)
}

// Snapshots is what it reads from.
type Snapshots interface {
	Current() *registry.Snapshot
	WaitRevision(ctx context.Context, rev int64) (*registry.Snapshot, error)
}

var (
	_ Store     = (*store.Store)(nil)
	_ Snapshots = (*registry.Watcher)(nil)
)

// Access levels of a credential (the same words as the HTTP API's tokens).
const (
	// AccessRead may call the Get and List operations only.
	AccessRead = "read"
	// AccessRegister may also change weighted and multivalue sets whose
	// service is in its Services, and create and delete health checks.
	AccessRegister = "register"
	// AccessWrite may do everything.
	AccessWrite = "write"
)

// Credential is an access key: ID (a seamark token's name), secret and what
// it may do.
type Credential struct {
	AccessKeyID string
	Secret      string
	Access      string // read, register or write
	// Services are the services a register credential may change.
	Services []string
}

// Options configure a Handler.
type Options struct {
	Store     Store
	Snapshots Snapshots
	Logger    *slog.Logger
	// Credentials are the accepted access keys (SetCredentials replaces
	// them). With none, every request is refused unless InsecureUnsigned.
	Credentials []Credential
	// InsecureUnsigned accepts requests without checking their signature,
	// as a write credential, when no Credentials are configured. For tests
	// and loopback-only experiments.
	InsecureUnsigned bool
	// Now is the clock (for the signature's date); default time.Now.
	Now func() time.Time
	// StoreTimeout bounds each store call of a request; default 5s.
	StoreTimeout time.Duration
	// WriteVisibleTimeout bounds how long ChangeResourceRecordSets waits for
	// the local snapshot to show a change before answering PENDING; default 2s.
	WriteVisibleTimeout time.Duration
}

// Handler serves the Route 53 API.
type Handler struct {
	o     Options
	log   *slog.Logger
	mux   *http.ServeMux
	creds atomic.Pointer[[]Credential]
}

// SetCredentials replaces the accepted access keys (a config reload);
// requests already authenticated finish with the old ones.
func (h *Handler) SetCredentials(c []Credential) {
	c = slices.Clone(c)
	h.creds.Store(&c)
}

// New returns the Route 53 API handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 5 * time.Second
	}
	if o.WriteVisibleTimeout == 0 {
		o.WriteVisibleTimeout = 2 * time.Second
	}
	h := &Handler{o: o, log: o.Logger.With("component", "route53"), mux: http.NewServeMux()}
	h.SetCredentials(o.Credentials)
	h.routes()
	return h
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// request carries what authentication found.
type ctxKey struct{}

func (h *Handler) routes() {
	add := func(pattern string, need string, fn handlerFunc) {
		h.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := r.Context().Value(ctxKey{}).([]byte)
			cred, _ := r.Context().Value(credKey{}).(*Credential)
			var err error
			if need == AccessWrite && cred.Access != AccessWrite && !(need == AccessWrite && cred.Access == AccessRegister && registerMay(r)) {
				err = &apiError{status: http.StatusForbidden, code: "AccessDenied", msg: fmt.Sprintf("User: %s is not authorized to perform this change: its seamark token has %s access", cred.AccessKeyID, cred.Access)}
			} else {
				err = fn(w, r, body)
			}
			if err != nil {
				h.writeError(w, r, err)
			}
			if need == AccessWrite {
				result := "ok"
				if err != nil {
					result = err.Error()
				}
				h.log.Info("route53 write", "access_key", cred.AccessKeyID, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "result", result)
			}
		}))
	}
	p := "/2013-04-01"
	add("GET "+p+"/hostedzone", AccessRead, h.listHostedZones)
	add("GET "+p+"/hostedzonesbyname", AccessRead, h.listHostedZonesByName)
	add("GET "+p+"/hostedzone/{id}", AccessRead, h.getHostedZone)
	add("POST "+p+"/hostedzone/{id}/rrset", AccessWrite, h.changeRecordSets)
	add("POST "+p+"/hostedzone/{id}/rrset/", AccessWrite, h.changeRecordSets)
	add("GET "+p+"/hostedzone/{id}/rrset", AccessRead, h.listRecordSets)
	add("GET "+p+"/hostedzone/{id}/rrset/", AccessRead, h.listRecordSets)
	add("GET "+p+"/change/{id}", AccessRead, h.getChange)
	add("POST "+p+"/healthcheck", AccessWrite, h.createHealthCheck)
	add("GET "+p+"/healthcheck", AccessRead, h.listHealthChecks)
	add("GET "+p+"/healthcheck/{id}", AccessRead, h.getHealthCheck)
	add("DELETE "+p+"/healthcheck/{id}", AccessWrite, h.deleteHealthCheck)
	add("GET "+p+"/healthcheck/{id}/status", AccessRead, h.getHealthCheckStatus)
	add("/", AccessRead, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		return &apiError{status: http.StatusBadRequest, code: "InvalidAction", msg: fmt.Sprintf("%s %s is not a Route 53 operation seamark supports (see docs/route53.md)", r.Method, r.URL.Path)}
	})
}

type credKey struct{}

// ServeHTTP authenticates the request with SigV4 and serves it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read before the signature can be checked: bound its time
	// as well as its size.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		h.writeError(w, r, &apiError{status: http.StatusBadRequest, code: "InvalidInput", msg: "the request body could not be read: " + err.Error()})
		return
	}
	if len(body) > maxBody {
		h.writeError(w, r, &apiError{status: http.StatusRequestEntityTooLarge, code: "InvalidInput", msg: fmt.Sprintf("the request body is larger than %d bytes", maxBody)})
		return
	}
	cred, err := h.authenticate(r, body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := context.WithValue(context.WithValue(r.Context(), ctxKey{}, body), credKey{}, cred)
	h.mux.ServeHTTP(w, r.WithContext(ctx))
}

// authenticate checks the request's SigV4 signature and returns the
// credential that signed it.
func (h *Handler) authenticate(r *http.Request, body []byte) (*Credential, error) {
	creds := *h.creds.Load()
	if len(creds) == 0 {
		if h.o.InsecureUnsigned {
			return &Credential{AccessKeyID: "insecure-unsigned", Access: AccessWrite}, nil
		}
		return nil, &apiError{status: http.StatusForbidden, code: "InvalidClientTokenId", msg: "The security token included in the request is invalid: this seamark server has no API tokens; add one under api.tokens (its name is the access key ID, its secret the secret access key)"}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, &apiError{status: http.StatusForbidden, code: "MissingAuthenticationToken", msg: "Missing Authentication Token: sign the request with AWS Signature Version 4 (access key ID = a seamark token's name)"}
	}
	a, err := parseAuthHeader(auth)
	if err != nil {
		return nil, &apiError{status: http.StatusForbidden, code: "IncompleteSignature", msg: err.Error()}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return nil, &apiError{status: http.StatusForbidden, code: "IncompleteSignature", msg: "Authorization header requires existence of the X-Amz-Date header"}
	}
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return nil, &apiError{status: http.StatusForbidden, code: "IncompleteSignature", msg: fmt.Sprintf("X-Amz-Date %q is not of the form 20060102T150405Z", amzDate)}
	}
	if !strings.HasPrefix(amzDate, a.Date) {
		return nil, &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", msg: fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", a.Date, amzDate[:8])}
	}
	now := h.o.Now()
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return nil, &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", msg: fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)", amzDate, now.UTC().Add(-maxSkew).Format("20060102T150405Z"), now.UTC().Format("20060102T150405Z"))}
	}
	if a.Service != "route53" {
		return nil, &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", msg: fmt.Sprintf("Credential should be scoped to correct service: 'route53', not %q", a.Service)}
	}
	if !contains(a.SignedHeaders, "x-amz-date") {
		return nil, &apiError{status: http.StatusForbidden, code: "IncompleteSignature", msg: "SignedHeaders must include x-amz-date"}
	}
	var cred *Credential
	for i := range creds {
		c := &creds[i]
		if subtle.ConstantTimeCompare([]byte(c.AccessKeyID), []byte(a.AccessKey)) == 1 {
			cred = c
		}
	}
	if cred == nil {
		return nil, &apiError{status: http.StatusForbidden, code: "InvalidClientTokenId", msg: "The security token included in the request is invalid: no seamark token has this name as its access key ID"}
	}
	want := signature(cred.Secret, a, amzDate, canonicalRequest(r, a.SignedHeaders, sha256Hex(body)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(a.Signature))) != 1 {
		return nil, &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", msg: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	}
	return cred, nil
}

// registerMay reports whether a register credential may call this write
// operation at all: record set changes (checked per change against its
// services) and health checks.
func registerMay(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasSuffix(strings.TrimSuffix(p, "/"), "/rrset") || strings.HasPrefix(p, Prefix+"healthcheck")
}

// credential is the access key that signed r.
func credential(r *http.Request) *Credential {
	c, _ := r.Context().Value(credKey{}).(*Credential)
	return c
}

// apiError is an error in Route 53's shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// invalidBatch is Route 53's InvalidChangeBatch: the messages in brackets,
// joined by ", ".
func invalidBatch(msgs ...string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidChangeBatch", msg: "[" + strings.Join(msgs, ", ") + "]"}
}

func invalidInput(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidInput", msg: fmt.Sprintf(format, args...)}
}

type xmlError struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae = &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "the store did not answer in time; try again"}
	case errors.Is(err, store.ErrConflict):
		ae = &apiError{status: http.StatusBadRequest, code: "PriorRequestNotComplete", msg: err.Error()}
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, code: "InternalFailure", msg: "internal error: " + err.Error()}
	}
	typ := "Sender"
	if ae.status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, ae.status, xmlError{Xmlns: xmlns, Type: typ, Code: ae.code, Message: ae.msg, RequestID: requestID()})
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

func writeXML(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// storeCtx bounds one store call of a request.
func (h *Handler) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.o.StoreTimeout)
}

func (h *Handler) snapshot() (*registry.Snapshot, error) {
	s := h.o.Snapshots.Current()
	if s == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "the registry is still loading; try again"}
	}
	return s, nil
}
