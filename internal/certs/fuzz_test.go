package certs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/certs"
	"github.com/seamark/seamark/internal/certs/certstest"
)

func FuzzParseClientAuth(f *testing.F) {
	for _, s := range []string{"", "none", "request", "require", "REQUIRE", "require\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := certs.ParseClientAuth(s); err == nil && s != "" && s != "none" && s != "request" && s != "require" {
			t.Fatalf("%q accepted", s)
		}
	})
}

func FuzzParsePair(f *testing.F) {
	dir := f.TempDir()
	ca, err := certstest.NewCA(dir, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	p, err := ca.Issue("server", "127.0.0.1", "localhost")
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := os.ReadFile(p.CertFile)
	key, _ := os.ReadFile(p.KeyFile)
	caPEM, _ := os.ReadFile(filepath.Join(dir, "fuzz-ca.pem"))
	f.Add(cert, key)
	f.Add(append(cert, caPEM...), key)
	f.Add(caPEM, key)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), key)
	now := time.Now()
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		c, err := certs.ParsePair(certPEM, keyPEM, now)
		if err == nil && c.Leaf == nil {
			t.Fatal("accepted pair without a leaf")
		}
	})
}
