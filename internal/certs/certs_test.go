package certs_test

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/certs"
	"github.com/seamark/seamark/internal/certs/certstest"
)

func TestParseClientAuth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want tls.ClientAuthType
		err  bool
	}{
		{"", tls.NoClientCert, false},
		{"none", tls.NoClientCert, false},
		{"request", tls.VerifyClientCertIfGiven, false},
		{"require", tls.RequireAndVerifyClientCert, false},
		{"Require", 0, true},
		{"optional", 0, true},
	} {
		got, err := certs.ParseClientAuth(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("ParseClientAuth(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// handshake returns the certificate the server hands a new client.
func handshake(t *testing.T, s *certs.Server, ca *certstest.CA) string {
	t.Helper()
	c, err := s.TLSConfig().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificates[0].Leaf.SerialNumber.String()
}

func TestReloadSwapsAndRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := certstest.NewCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := ca.Issue("server", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := certs.NewServer(certs.Files{CertFile: p1.CertFile, KeyFile: p1.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if got := handshake(t, s, ca); got != p1.Serial.String() {
		t.Fatalf("serial %s, want %s", got, p1.Serial)
	}
	p2, err := ca.Issue("server", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := handshake(t, s, ca); got != p2.Serial.String() {
		t.Fatalf("after reload serial %s, want %s", got, p2.Serial)
	}

	bad := []struct {
		name   string
		break_ func() error
		want   string
	}{
		{"garbage cert", func() error { return os.WriteFile(p2.CertFile, []byte("not pem"), 0o644) }, "server.tls: certificate"},
		{"missing key", func() error { return os.Remove(p2.KeyFile) }, "server.tls.key_file"},
		{"expired", func() error {
			_, err := ca.IssueValid("server", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), "127.0.0.1")
			return err
		}, "expired"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.Issue("server", "127.0.0.1"); err != nil { // good files first
				t.Fatal(err)
			}
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			before := handshake(t, s, ca)
			if err := tc.break_(); err != nil {
				t.Fatal(err)
			}
			err := s.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload error %v, want one containing %q", err, tc.want)
			}
			if got := handshake(t, s, ca); got != before {
				t.Fatalf("a rejected reload changed the certificate: serial %s, want %s", got, before)
			}
		})
	}
}

func TestClientAuthNeedsCA(t *testing.T) {
	dir := t.TempDir()
	ca, _ := certstest.NewCA(dir, "test")
	p, _ := ca.Issue("server", "127.0.0.1")
	_, err := certs.NewServer(certs.Files{CertFile: p.CertFile, KeyFile: p.KeyFile, ClientAuth: "require"})
	if err == nil || !strings.Contains(err.Error(), "client_ca_file") {
		t.Fatalf("got %v, want an error naming client_ca_file", err)
	}
	s, err := certs.NewServer(certs.Files{CertFile: p.CertFile, KeyFile: p.KeyFile, ClientCAFile: ca.CAFile, ClientAuth: "require"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.TLSConfig().GetConfigForClient(nil)
	if c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil {
		t.Fatalf("client auth %v, CAs %v", c.ClientAuth, c.ClientCAs)
	}
}
