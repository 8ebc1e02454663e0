package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
)

// ClientAuthNames are the values of server.tls.client_auth.
var ClientAuthNames = []string{"none", "request", "require"}

// ParseClientAuth turns a client_auth value into what crypto/tls does with
// it: none asks for no certificate; request verifies one when it is sent;
// require refuses a handshake without a verified one.
func ParseClientAuth(s string) (tls.ClientAuthType, error) {
	switch s {
	case "", "none":
		return tls.NoClientCert, nil
	case "request":
		return tls.VerifyClientCertIfGiven, nil
	case "require":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(ClientAuthNames, ", "))
}

// Files name a server certificate and how clients are verified.
type Files struct {
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates; ClientAuth is a
	// ClientAuthNames value.
	ClientCAFile string
	ClientAuth   string
}

// maxPEMFile bounds each file read.
const maxPEMFile = 4 << 20

// Server is a reloadable server TLS configuration.
type Server struct {
	files Files
	cur   atomic.Pointer[tls.Config]
	now   func() time.Time
}

// NewServer loads the files.
func NewServer(f Files) (*Server, error) {
	s := &Server{files: f, now: time.Now}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On any error the configuration in use stays
// and the error says which file to fix.
func (s *Server) Reload() error {
	commit, err := s.Prepare()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare reads the files and returns the function that puts them in use,
// so a caller reloading more than certificates can swap everything at once
// or nothing.
func (s *Server) Prepare() (commit func(), err error) {
	c, err := load(s.files, s.now())
	if err != nil {
		return nil, err
	}
	return func() { s.cur.Store(c) }, nil
}

// TLSConfig is the configuration to serve with: every handshake gets the
// files loaded last.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// Leaf is the certificate served now.
func (s *Server) Leaf() *x509.Certificate { return s.cur.Load().Certificates[0].Leaf }

func load(f Files, now time.Time) (*tls.Config, error) {
	auth, err := ParseClientAuth(f.ClientAuth)
	if err != nil {
		return nil, fmt.Errorf("server.tls.client_auth: %w", err)
	}
	certPEM, err := readPEM(f.CertFile, "cert_file")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM(f.KeyFile, "key_file")
	if err != nil {
		return nil, err
	}
	cert, err := ParsePair(certPEM, keyPEM, now)
	if err != nil {
		return nil, fmt.Errorf("server.tls: certificate %s with key %s: %w", f.CertFile, f.KeyFile, err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{cert},
		ClientAuth:   auth,
	}
	if f.ClientCAFile != "" {
		data, err := readPEM(f.ClientCAFile, "client_ca_file")
		if err != nil {
			return nil, err
		}
		if c.ClientCAs, err = api.ParseCertPool(data); err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %s %w", f.ClientCAFile, err)
		}
	} else if auth != tls.NoClientCert {
		return nil, fmt.Errorf("server.tls.client_ca_file: is missing; client_auth %s verifies client certificates against it", f.ClientAuth)
	}
	return c, nil
}

// ParsePair parses a PEM certificate chain and its key and refuses a leaf
// that is expired or not yet valid at now.
func ParsePair(certPEM, keyPEM []byte, now time.Time) (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, err
		}
		cert.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return tls.Certificate{}, fmt.Errorf("expired on %s; give a current certificate", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return tls.Certificate{}, fmt.Errorf("not valid before %s; check the clock or the certificate", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

func readPEM(file, key string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("server.tls.%s: is missing", key)
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("server.tls.%s: %w", key, err)
	}
	if st.Size() > maxPEMFile {
		return nil, fmt.Errorf("server.tls.%s: %s is larger than %d bytes", key, file, maxPEMFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("server.tls.%s: %w", key, err)
	}
	if len(data) == 0 {
		return nil, errors.New("server.tls." + key + ": " + file + " is empty")
	}
	return data, nil
}
