package api_test

import (
	"os"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs/certstest"
)

func FuzzParseCertPool(f *testing.F) {
	ca, err := certstest.NewCA(f.TempDir(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	pemCA, _ := os.ReadFile(ca.CAFile)
	f.Add(pemCA)
	f.Add(append(append([]byte{}, pemCA...), pemCA...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pool, err := api.ParseCertPool(data)
		if err == nil && pool == nil {
			t.Fatal("nil pool without error")
		}
	})
}
