package api_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs/certstest"
)

// A client certificate renewed on disk is sent at the next handshake, and a
// broken pair on disk leaves the last good one in use.
func TestClientCertificateFollowsFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := certstest.NewCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	srvPair, _ := ca.Issue("server", "127.0.0.1")
	first, err := ca.Issue("client", "agent")
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := api.LoadCertPool(ca.CAFile)
	srvCert, _ := tls.LoadX509KeyPair(srvPair.CertFile, srvPair.KeyFile)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"version": "` + r.TLS.PeerCertificates[0].SerialNumber.String() + `"}`))
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	hs.StartTLS()
	defer hs.Close()

	tc, err := api.TLSFiles{CAFile: ca.CAFile, CertFile: first.CertFile, KeyFile: first.KeyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true} // a handshake per request
	c, err := api.NewClient([]string{hs.URL}, api.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Version
	}
	if got := serial(); got != first.Serial.String() {
		t.Fatalf("client certificate serial %s, want %s", got, first.Serial)
	}
	time.Sleep(10 * time.Millisecond) // a new modification time
	second, err := ca.Issue("client", "agent")
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("after renewal serial %s, want %s", got, second.Serial)
	}
	if err := os.WriteFile(second.KeyFile, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("with a broken key on disk serial %s, want the last good %s", got, second.Serial)
	}
	if _, err := (api.TLSFiles{CertFile: second.CertFile}).Config(); err == nil || !strings.Contains(err.Error(), "no key file") {
		t.Fatalf("certificate without key: got %v", err)
	}
}
