package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamark/seamark/internal/config"
)

var tlsErrorCases = []struct{ name, in, want string }{
	{"cert without key", "server:\n  tls: {cert_file: c.pem}\n",
		`t.yaml:2: server.tls.key_file: is missing; give the PEM key of cert_file`},
	{"key without cert", "server:\n  tls: {key_file: k.pem}\n",
		`t.yaml:2: server.tls.cert_file: is missing; give the PEM certificate of key_file`},
	{"client_auth unknown", "server:\n  tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem, client_auth: optional}\n",
		`t.yaml:2: server.tls.client_auth: "optional" is not one of none, request, require`},
	{"client_auth without CA", "server:\n  tls:\n    cert_file: c.pem\n    key_file: k.pem\n    client_auth: require\n",
		`t.yaml:5: server.tls.client_auth: require verifies client certificates against client_ca_file; give client_ca_file`},
	{"client CA without https", "server:\n  tls: {client_ca_file: ca.pem}\n",
		`t.yaml:2: server.tls.cert_file: is missing; client_ca_file needs the API to serve https`},
	{"etcd_tls with the embedded store", "server:\n  etcd_tls: {ca_file: ca.pem}\n",
		`t.yaml:2: server.etcd_tls: is for etcd_endpoints; the embedded store makes its own credential in data_dir`},
	{"etcd user without password", "server:\n  etcd_endpoints: [https://10.0.0.1:2379]\n  etcd_username: seamark\n",
		`t.yaml:3: server.etcd_username: needs etcd_password_file, a file holding its password`},
	{"etcd client cert without key", "server:\n  etcd_endpoints: [https://10.0.0.1:2379]\n  etcd_tls: {cert_file: c.pem}\n",
		`t.yaml:3: server.etcd_tls.key_file: is missing; give the PEM key of cert_file`},
	{"insecure_expose not a bool", "server:\n  insecure_expose: please\n",
		`t.yaml:2: server.insecure_expose: "please" is not true or false`},
}

func TestParseTLSErrors(t *testing.T) {
	for _, tc := range tlsErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("t.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("got no error, want\n%s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

const tlsExample = `server:
  http_addr: 10.0.0.5:9400
  tls: {cert_file: tls/server.pem, key_file: /etc/seamark/server-key.pem, client_ca_file: tls/clients.pem}
  etcd_endpoints: [https://10.0.0.1:2379]
  etcd_tls: {ca_file: etcd-ca.pem, cert_file: etcd.pem, key_file: etcd-key.pem}
  etcd_username: seamark
  etcd_password_file: etcd.password
  insecure_expose: false
`

func TestParseTLS(t *testing.T) {
	f, err := config.Parse("/etc/seamark/seamark.yaml", []byte(tlsExample))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Server
	for _, c := range []struct{ got, want string }{
		{s.TLS.CertFile, "/etc/seamark/tls/server.pem"},
		{s.TLS.KeyFile, "/etc/seamark/server-key.pem"},
		{s.TLS.ClientCAFile, "/etc/seamark/tls/clients.pem"},
		{s.TLS.ClientAuth, "require"}, // the default with a client CA
		{s.EtcdTLS.CAFile, "/etc/seamark/etcd-ca.pem"},
		{s.EtcdPasswordFile, "/etc/seamark/etcd.password"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !s.TLS.Enabled() || !s.EtcdTLS.Enabled() {
		t.Error("TLS not enabled")
	}
	f, err = config.Parse("rel/seamark.yaml", []byte("server:\n  tls: {cert_file: c.pem, key_file: k.pem}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Server.TLS.CertFile != filepath.Join("rel", "c.pem") || f.Server.TLS.ClientAuth != "" {
		t.Errorf("got %+v", f.Server.TLS)
	}
}

// FuzzParseServerTLS runs the decoder and validation over server: sections
// with TLS and store credentials.
func FuzzParseServerTLS(f *testing.F) {
	f.Add([]byte(tlsExample))
	for _, tc := range tlsErrorCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("/etc/seamark/f.yaml", data)
		if err != nil {
			return
		}
		tl := cfg.Server.TLS
		if tl.Enabled() && tl.KeyFile == "" {
			t.Fatal("accepted a certificate without a key")
		}
		if tl.ClientAuth != "" && tl.ClientAuth != "none" && tl.ClientCAFile == "" {
			t.Fatalf("accepted client_auth %q without a client CA", tl.ClientAuth)
		}
		for _, p := range []string{tl.CertFile, tl.KeyFile, tl.ClientCAFile, cfg.Server.EtcdPasswordFile} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("path %q not resolved against the file's directory", p)
			}
		}
	})
}
