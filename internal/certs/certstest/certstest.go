// Package certstest makes throw-away certificate authorities and
// certificates for tests and benchmarks, with crypto/x509 (no openssl), as
// files an operator's tooling would write.
package certstest

import (
	"crypto/x509"
	"math/big"
	"path/filepath"
	"time"

	"github.com/seamark/seamark/internal/certs"
)

// CA is a test certificate authority.
type CA struct {
	Cert   *x509.Certificate
	CAFile string // its PEM certificate
	ca     *certs.Authority
	dir    string
}

// NewCA makes a CA valid for a day and writes its certificate to
// dir/name-ca.pem.
func NewCA(dir, name string) (*CA, error) {
	a, err := certs.NewAuthority(name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: a.Cert, ca: a, dir: dir, CAFile: filepath.Join(dir, name+"-ca.pem")}
	if err := certs.WritePEM(ca.CAFile, "CERTIFICATE", a.DER, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Pair is an issued certificate and its key, as files.
type Pair struct {
	CertFile, KeyFile string
	Serial            *big.Int
}

// Issue makes a certificate for the hosts (IP addresses or names) valid for
// server and client auth, and writes name.pem and name-key.pem.
func (ca *CA) Issue(name string, hosts ...string) (Pair, error) {
	return ca.IssueValid(name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), hosts...)
}

// IssueValid is Issue with a validity period.
func (ca *CA) IssueValid(name string, notBefore, notAfter time.Time, hosts ...string) (Pair, error) {
	l, err := ca.ca.Issue(name, hosts, notBefore, notAfter)
	if err != nil {
		return Pair{}, err
	}
	p := Pair{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem"), Serial: l.Serial}
	if err := certs.WritePEM(p.CertFile, "CERTIFICATE", l.DER, 0o644); err != nil {
		return Pair{}, err
	}
	if err := certs.WritePEM(p.KeyFile, "PRIVATE KEY", l.KeyDER, 0o600); err != nil {
		return Pair{}, err
	}
	return p, nil
}
