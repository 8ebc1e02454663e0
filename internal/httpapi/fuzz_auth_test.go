package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzWriteGate feeds arbitrary Content-Type, Origin, Sec-Fetch-Site and
// Authorization headers to the checks every write passes (cross-origin
// protection, token and scope, JSON body): a request either reaches the
// handler with a JSON body, the same origin and a token allowed to write,
// or is refused with a 4xx; never a panic.
func FuzzWriteGate(f *testing.F) {
	f.Add("application/json", "", "", "Bearer ops-secret", "db")
	f.Add("application/json; charset=utf-8", "http://example.com", "same-origin", "Bearer agent-secret", "db")
	f.Add("text/plain;charset=UTF-8", "https://evil.example", "cross-site", "", "other")
	f.Add("application/x-www-form-urlencoded", "null", "none", "Bearer ", "")
	f.Add("multipart/form-data; boundary=x", "", "same-site", "Basic b3BzOm9wcw==", "db")
	f.Add("application/json;;;=", "http://example.com:80", "", "Bearer agent-secret", "x/y")
	h := New(Options{Tokens: []Token{
		{Name: "ops", Secret: "ops-secret", Access: AccessWrite},
		{Name: "agent", Secret: "agent-secret", Access: AccessRegister, Services: []string{"db"}},
	}})
	reached := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(299); return nil }
	// The same gate as ServeHTTP's, without the router: the service comes
	// straight from the fuzzer.
	protected := http.NewCrossOriginProtection().Handler(h.wrap("/fuzz/{service}", accessNode, reached))
	f.Fuzz(func(t *testing.T, ct, origin, site, auth, service string) {
		req := httptest.NewRequest("PUT", "http://example.com/fuzz/x", strings.NewReader(`{}`))
		req.SetPathValue("service", service)
		for k, v := range map[string]string{"Content-Type": ct, "Origin": origin, "Sec-Fetch-Site": site, "Authorization": auth} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		protected.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code == 299:
			if err := requireJSON(req); err != nil {
				t.Fatalf("reached the handler with content type %q", ct)
			}
			if who, err := h.authorize(req, accessNode); err != nil || who == anonymous {
				t.Fatalf("reached the handler with auth %q for service %q", auth, req.PathValue("service"))
			}
		case code >= 400 && code < 500:
		default:
			t.Fatalf("got status %d", code)
		}
	})
}
