package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles name the PEM files a client speaks https with. All are optional:
// with no CAFile the system's roots verify the server; CertFile and KeyFile
// (both or neither) are the client certificate presented when the server
// asks for one (mutual TLS).
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// Config loads the files into a client TLS configuration (TLS 1.2 or newer).
// The client certificate is read again, at the next handshake, whenever its
// files change, so a long-running client (an agent) picks up a renewed
// certificate without a restart; a pair that does not load (half written,
// mismatched) is skipped and the last good one is sent.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := LoadCertPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		r := &clientCert{certFile: f.CertFile, keyFile: f.KeyFile}
		if err := r.load(); err != nil {
			return nil, fmt.Errorf("load client certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
		}
		c.GetClientCertificate = r.get
	case f.CertFile != "":
		return nil, fmt.Errorf("client certificate %s has no key file; give its key too", f.CertFile)
	case f.KeyFile != "":
		return nil, fmt.Errorf("client key %s has no certificate file; give its certificate too", f.KeyFile)
	}
	return c, nil
}

// maxPEMFile bounds a CA file (a bundle of a few hundred certificates).
const maxPEMFile = 4 << 20

// LoadCertPool reads PEM CA certificates from file.
func LoadCertPool(file string) (*x509.CertPool, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	if st.Size() > maxPEMFile {
		return nil, fmt.Errorf("read CA file %s: larger than %d bytes", file, maxPEMFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := ParseCertPool(data)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", file, err)
	}
	return pool, nil
}

// ParseCertPool parses PEM CERTIFICATE blocks; any block that is not a
// valid certificate, or no certificate at all, is an error.
func ParseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")")
	}
	return pool, nil
}

// WithTLSConfig makes the client speak https with c (see TLSFiles.Config).
// It sets the transport of the default http.Client; with WithHTTPClient, set
// TLSClientConfig on that client's transport instead.
func WithTLSConfig(c *tls.Config) ClientOption { return func(cl *Client) { cl.tls = c } }

// clientCert is a client certificate re-read when its files change.
type clientCert struct {
	certFile, keyFile string

	mu    sync.Mutex
	stamp [2]fileStamp
	cert  *tls.Certificate
}

// fileStamp tells a changed file from an unchanged one.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(file string) fileStamp {
	st, err := os.Stat(file)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.ModTime(), st.Size()}
}

func (r *clientCert) load() error {
	stamp := [2]fileStamp{stampOf(r.certFile), stampOf(r.keyFile)}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if [2]fileStamp{stampOf(r.certFile), stampOf(r.keyFile)} != r.stamp {
		r.load() // on failure the last good certificate stays
	}
	return r.cert, nil
}
