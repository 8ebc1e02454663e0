package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/seamark/seamark/internal/certs"
)

// TLS is the `server.tls:` section: https for the HTTP API and dashboard.
// The certificate, key and client CA are read again on every reload
// (SIGHUP); a reload whose files do not load is rejected and the old
// certificate stays.
type TLS struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and key.
	// Both or neither; with neither the API speaks plain http.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// ClientCAFile holds the PEM CA certificates client certificates are
	// verified against (mutual TLS).
	ClientCAFile string `json:"client_ca_file"`
	// ClientAuth is none, request (verify a certificate when one is sent) or
	// require (refuse a client without one). Default: require when
	// client_ca_file is set, else none.
	ClientAuth string `json:"client_auth"`
}

// Enabled reports whether the API serves https.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// EtcdTLS is the `server.etcd_tls:` section: TLS to an external etcd.
type EtcdTLS struct {
	// CAFile holds the PEM CA certificates the etcd members' certificates
	// are verified against. Default: the system's roots.
	CAFile string `json:"ca_file"`
	// CertFile and KeyFile are the client certificate and key presented to
	// etcd (client-cert auth). Both or neither.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Enabled reports whether any TLS setting for etcd is given.
func (t EtcdTLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" }

// EtcdPassword reads etcd_password_file (trimmed); "" when none is set.
func (s Server) EtcdPassword() (string, error) {
	if s.EtcdPasswordFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(s.EtcdPasswordFile)
	if err != nil {
		return "", fmt.Errorf("server.etcd_password_file: %w", err)
	}
	p := strings.TrimSpace(string(data))
	if p == "" {
		return "", fmt.Errorf("server.etcd_password_file: %s is empty", s.EtcdPasswordFile)
	}
	return p, nil
}

// resolvePaths makes the server section's relative file names relative to
// the config file's directory.
func (f *File) resolvePaths() {
	dir := filepath.Dir(f.name)
	for _, p := range []*string{
		&f.Server.TLS.CertFile, &f.Server.TLS.KeyFile, &f.Server.TLS.ClientCAFile,
		&f.Server.EtcdTLS.CAFile, &f.Server.EtcdTLS.CertFile, &f.Server.EtcdTLS.KeyFile,
		&f.Server.EtcdPasswordFile,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// setTLSDefaults fills client_auth.
func (s *Server) setTLSDefaults() {
	if s.TLS.ClientAuth == "" && s.TLS.ClientCAFile != "" {
		s.TLS.ClientAuth = "require"
	}
}

// serverTLS checks server.tls, the etcd credentials and their pairings.
func (c *checker) serverTLS() {
	s := c.f.Server
	t := s.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		c.add("server.tls.key_file", "is missing; give the PEM key of cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		c.add("server.tls.cert_file", "is missing; give the PEM certificate of key_file")
	}
	if t.ClientAuth != "" {
		if _, err := certs.ParseClientAuth(t.ClientAuth); err != nil {
			c.add("server.tls.client_auth", "%v", err)
		} else if t.ClientAuth != "none" && t.ClientCAFile == "" {
			c.add("server.tls.client_auth", "%s verifies client certificates against client_ca_file; give client_ca_file", t.ClientAuth)
		}
	}
	if t.ClientCAFile != "" && !t.Enabled() {
		c.add("server.tls.cert_file", "is missing; client_ca_file needs the API to serve https")
	}
	e := s.EtcdTLS
	switch {
	case e.CertFile != "" && e.KeyFile == "":
		c.add("server.etcd_tls.key_file", "is missing; give the PEM key of cert_file")
	case e.CertFile == "" && e.KeyFile != "":
		c.add("server.etcd_tls.cert_file", "is missing; give the PEM certificate of key_file")
	}
	if (s.EtcdUsername == "") != (s.EtcdPasswordFile == "") {
		if s.EtcdUsername == "" {
			c.add("server.etcd_password_file", "needs etcd_username, the user it is the password of")
		} else {
			c.add("server.etcd_username", "needs etcd_password_file, a file holding its password")
		}
	}
	if len(s.EtcdEndpoints) == 0 {
		if e.Enabled() {
			c.add("server.etcd_tls", "is for etcd_endpoints; the embedded store makes its own credential in data_dir")
		}
		if s.EtcdUsername != "" {
			c.add("server.etcd_username", "is for etcd_endpoints; the embedded store makes its own credential in data_dir")
		}
	}
}
