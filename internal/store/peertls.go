package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
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
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "seamark embedded store peer CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(peerCertLife),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "seamark"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(peerCertLife),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The CA's key is not kept: a new certificate means a new CA.
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{info.TrustedCAFile, "CERTIFICATE", caDER, 0o600},
		{info.KeyFile, "PRIVATE KEY", kder, 0o600},
		{info.CertFile, "CERTIFICATE", der, 0o600},
	} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
	}
	return nil
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
