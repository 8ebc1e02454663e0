package httpapi

import (
	"crypto/subtle"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/seamark/seamark/api"
)

// Access levels of a token.
const (
	// AccessRead may read everything and write nothing.
	AccessRead = "read"
	// AccessRegister is an agent's: it may register, renew and deregister
	// nodes of the services its token lists, and read; nothing else.
	AccessRegister = "register"
	// AccessWrite may do everything the API can do.
	AccessWrite = "write"
)

// accessNode is what a node endpoint needs: write, or register for the
// service in the URL.
const accessNode = "node"

// Token is a bearer secret and what it may do.
type Token struct {
	Name   string
	Secret string
	Access string // read, register or write
	// Services are the services a register token may touch.
	Services []string
}

// Auth is the API's credentials, swapped whole by SetAuth (a config
// reload): a request sees either the old set or the new one.
type Auth struct {
	// Tokens, when any, are required for writes; for reads too unless
	// AnonymousRead.
	Tokens        []Token
	AnonymousRead bool
}

// SetAuth replaces the tokens and anonymous_read at once; requests already
// authorized finish, the next ones use a.
func (h *Handler) SetAuth(a Auth) {
	a.Tokens = slices.Clone(a.Tokens)
	h.auth.Store(&a)
}

// Callers the audit log names when no token of the server was sent:
// anonymous (no token, or a server without tokens) and a secret that
// matches no token.
const (
	anonymous    = "anonymous"
	unknownToken = "unknown-token"
)

// authorize checks r's token against need and returns who is asking: the
// token's name, or "anonymous".
func (h *Handler) authorize(r *http.Request, need string) (string, error) {
	a := h.auth.Load()
	if len(a.Tokens) == 0 {
		return anonymous, nil
	}
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" {
		if need == AccessRead && a.AnonymousRead {
			return anonymous, nil
		}
		return anonymous, errorf(http.StatusUnauthorized, "this request needs a token: send \"Authorization: Bearer <token>\"")
	}
	var tok *Token
	for i := range a.Tokens {
		t := &a.Tokens[i]
		if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 {
			tok = t
		}
	}
	if tok == nil {
		if need == AccessRead && a.AnonymousRead {
			return anonymous, nil
		}
		return unknownToken, errorf(http.StatusUnauthorized, "the token is not known to this server")
	}
	switch {
	case need == AccessRead, tok.Access == AccessWrite:
		return tok.Name, nil
	case tok.Access == AccessRead:
		return tok.Name, errorf(http.StatusForbidden, "token %q has access read: it may only read; this request writes", tok.Name)
	case tok.Access == AccessRegister && need == accessNode:
		svc := r.PathValue("service")
		if slices.Contains(tok.Services, svc) {
			return tok.Name, nil
		}
		return tok.Name, errorf(http.StatusForbidden, "token %q has access register for services %s: it may not touch nodes of service %q", tok.Name, strings.Join(tok.Services, ", "), svc)
	case tok.Access == AccessRegister:
		return tok.Name, errorf(http.StatusForbidden, "token %q has access register: it may only register, renew and deregister nodes of services %s; this request needs access write", tok.Name, strings.Join(tok.Services, ", "))
	}
	return tok.Name, errorf(http.StatusForbidden, "token %q has access %q, which allows no writes", tok.Name, tok.Access)
}

// requireJSON refuses a write whose body is not declared JSON, so a
// browser's cross-site "simple" request (text/plain, form) never reaches a
// handler. A write without a body (DELETE, renew) needs no type.
func requireJSON(r *http.Request) error {
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return errorf(http.StatusUnsupportedMediaType, "content type %s: writes take a JSON body; send \"Content-Type: application/json\"", strconv.Quote(ct))
	}
	return nil
}

// Auditor records who wrote what (an *audit.Log).
type Auditor interface {
	Record(e api.Event)
}

// audit records a write: who, from where, what, and the status it got. The
// path names the object; service and node stay empty, so ?service= reads of
// the event log keep meaning health events.
func (h *Handler) audit(r *http.Request, who string, status int) {
	if h.o.Audit == nil {
		return
	}
	h.o.Audit.Record(api.Event{
		Who: who, From: r.RemoteAddr, Action: r.Method + " " + r.URL.Path, Result: strconv.Itoa(status),
	})
}

// errHook is the answer to a hook field sent through the API.
func errHook(field string) error {
	return errorf(http.StatusForbidden, "%s: hooks are set only in the config file", field)
}
