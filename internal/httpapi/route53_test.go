package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/seamark/seamark/internal/httpapi"
)

// Requests under /2013-04-01/ reach the Route 53 handler, which does its own
// authentication (SigV4): the API's bearer tokens do not apply to them.
func TestRoute53Mount(t *testing.T) {
	r53 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := httpapi.New(httpapi.Options{Tokens: []httpapi.Token{{Name: "ops", Secret: "s", Access: httpapi.AccessWrite}}, Route53: r53})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/2013-04-01/hostedzone", http.StatusTeapot},
		{"POST", "/2013-04-01/hostedzone/Z1/rrset/", http.StatusTeapot},
		{"POST", "/v1/services", http.StatusUnauthorized},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
}
