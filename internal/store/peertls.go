package store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/seamark/seamark/internal/certs"
)

// The embedded etcd's peer listener speaks raft to members; a single member
// has none, but the port is open, and raft messages sent to it could write to
// the store around authentication. It therefore serves TLS and requires a
// client certificate of a CA made for it alone, kept in data_dir/peer-tls
// (mode 0700, keys 0600) and made again when missing or expired. Nothing
// outside the server ever needs it.
const (
	peerTLSDir      = "peer-tls"
	peerCertFile    = "peer.pem"
	peerKeyFile     = "peer-key.pem"
	peerCAFile      = "ca.pem"
	peerCertLife    = 10 * 365 * 24 * time.Hour
	peerCertRenewAt = 30 * 24 * time.Hour // before expiry
)

// peerTLS returns the peer listener's TLS settings for host, making the
// certificates when they are missing, unreadable or about to expire.
func peerTLS(dataDir, host string) (transport.TLSInfo, error) {
	dir := filepath.Join(dataDir, peerTLSDir)
	info := transport.TLSInfo{
		CertFile:       filepath.Join(dir, peerCertFile),
		KeyFile:        filepath.Join(dir, peerKeyFile),
		TrustedCAFile:  filepath.Join(dir, peerCAFile),
		ClientCertAuth: true,
	}
	if peerCertUsable(info, host) {
		return info, nil
	}
	if err := makePeerCerts(dir, host, info); err != nil {
		return transport.TLSInfo{}, fmt.Errorf("open store: make the embedded store's peer certificate in %s: %w", dir, err)
	}
	return info, nil
}

// peerCertUsable reports whether the pair loads, names host and is valid for
// a while yet.
func peerCertUsable(info transport.TLSInfo, host string) bool {
	c, err := tls.LoadX509KeyPair(info.CertFile, info.KeyFile)
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < peerCertRenewAt {
		return false
	}
	return leaf.VerifyHostname(host) == nil
}

func makePeerCerts(dir, host string, info transport.TLSInfo) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	ca, err := certs.NewAuthority("seamark embedded store peer CA", now.Add(-time.Hour), now.Add(peerCertLife))
	if err != nil {
		return err
	}
	leaf, err := ca.Issue("seamark", []string{"localhost", "127.0.0.1", "::1", host}, now.Add(-time.Hour), now.Add(peerCertLife))
	if err != nil {
		return err
	}
	// The CA's key is not kept: a new certificate means a new CA.
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{
		{info.TrustedCAFile, "CERTIFICATE", ca.DER},
		{info.KeyFile, "PRIVATE KEY", leaf.KeyDER},
		{info.CertFile, "CERTIFICATE", leaf.DER},
	} {
		if err := certs.WritePEM(f.path, f.typ, f.der, 0o600); err != nil {
			return err
		}
	}
	return nil
}
