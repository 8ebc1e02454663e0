package dns

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// TSIGKey is a shared secret that signs dynamic updates, zone transfers and
// NOTIFY (RFC 8945).
type TSIGKey struct {
	// Name is the key's name as both ends know it ("update-key").
	Name string
	// Algorithm is hmac-sha256, hmac-sha512 or hmac-sha1.
	Algorithm string
	// Secret is the key, base64.
	Secret string
}

// Keyring verifies and signs TSIG with a set of keys that Swap replaces at
// once (a config reload rotates keys without a restart). It is the
// dns.TsigProvider of the server (Options.TSIG) and of NOTIFY. An empty
// Keyring knows no key: every signed message fails with BADKEY.
type Keyring struct {
	set atomic.Pointer[keySet]
}

// keySet is one generation of a Keyring's keys.
type keySet struct {
	keys  map[string]ringKey // by canonical key name
	first string             // the first key's canonical name: it signs NOTIFY
}

type ringKey struct {
	alg    string // canonical algorithm name, as dns.HmacSHA256
	secret []byte
}

var _ dns.TsigProvider = (*Keyring)(nil)

// tsigAlgorithms maps the names the config uses to the wire names.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha512": dns.HmacSHA512,
}

// NewKeyring checks keys and returns their Keyring.
func NewKeyring(keys []TSIGKey) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Swap(keys); err != nil {
		return nil, err
	}
	return k, nil
}

// Swap checks keys and, when all are good, makes them the keyring's keys
// at once: a message is verified with the old set or the new one, never a
// mix. On error the keys stay as they were.
func (k *Keyring) Swap(keys []TSIGKey) error {
	set, err := newKeySet(keys)
	if err != nil {
		return err
	}
	k.set.Store(set)
	return nil
}

// load is the current key set (never nil).
func (k *Keyring) load() *keySet {
	if k == nil {
		return &keySet{}
	}
	if s := k.set.Load(); s != nil {
		return s
	}
	return &keySet{}
}

func newKeySet(keys []TSIGKey) (*keySet, error) {
	k := &keySet{keys: make(map[string]ringKey, len(keys))}
	var errs []error
	for i, key := range keys {
		name := dns.CanonicalName(key.Name)
		alg, ok := tsigAlgorithms[strings.TrimSuffix(strings.ToLower(key.Algorithm), ".")]
		if key.Algorithm == "" {
			alg, ok = dns.HmacSHA256, true
		}
		secret, err := base64.StdEncoding.DecodeString(key.Secret)
		switch {
		case key.Name == "" || name == ".":
			errs = append(errs, fmt.Errorf("tsig key %d: has no name", i))
		case !ok:
			errs = append(errs, fmt.Errorf("tsig key %q: algorithm %q is not hmac-sha256, hmac-sha512 or hmac-sha1", key.Name, key.Algorithm))
		case err != nil || len(secret) == 0:
			errs = append(errs, fmt.Errorf("tsig key %q: the secret is not base64", key.Name))
		default:
			if _, dup := k.keys[name]; dup {
				errs = append(errs, fmt.Errorf("tsig key %q: given twice", key.Name))
				continue
			}
			k.keys[name] = ringKey{alg: alg, secret: secret}
			if k.first == "" {
				k.first = name
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return k, nil
}

// Len is the number of keys.
func (k *Keyring) Len() int {
	return len(k.load().keys)
}

// has reports whether name (any case) is a key of k.
func (k *Keyring) has(name string) bool {
	_, ok := k.load().keys[dns.CanonicalName(name)]
	return ok
}

// sign adds a TSIG RR for the first key to m (it is signed when packed by a
// writer or client with k as its provider); false when k has no key.
func (k *Keyring) sign(m *dns.Msg) bool {
	set := k.load()
	if len(set.keys) == 0 {
		return false
	}
	m.SetTsig(set.first, set.keys[set.first].alg, 300, time.Now().Unix())
	return true
}

// mac computes the HMAC of msg with the key t names, refusing an algorithm
// other than the key's (RFC 8945 5.2.1: BADKEY).
func (k *Keyring) mac(msg []byte, t *dns.TSIG) ([]byte, error) {
	key, ok := k.load().keys[dns.CanonicalName(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != key.alg {
		return nil, dns.ErrKeyAlg
	}
	var h hash.Hash
	switch key.alg {
	case dns.HmacSHA1:
		h = hmac.New(sha1.New, key.secret)
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, key.secret)
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, key.secret)
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Generate implements dns.TsigProvider.
func (k *Keyring) Generate(msg []byte, t *dns.TSIG) ([]byte, error) { return k.mac(msg, t) }

// Verify implements dns.TsigProvider.
func (k *Keyring) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.mac(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(got, want) {
		return dns.ErrSig
	}
	return nil
}

// tsigErrorCode is the TSIG error (RFC 8945 5.2) for a failed verification.
func tsigErrorCode(err error) uint16 {
	switch {
	case errors.Is(err, dns.ErrTime):
		return dns.RcodeBadTime
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return dns.RcodeBadKey
	default:
		return dns.RcodeBadSig
	}
}

// tsigFailure answers a signed request whose signature did not verify (or
// that the server has no keys for): NOTAUTH with the TSIG error, unsigned
// but for BADTIME (RFC 8945 5.2, 5.3.2). Nil when the signature is good.
func tsigFailure(w dns.ResponseWriter, req *dns.Msg, haveKeys bool) *dns.Msg {
	t := req.IsTsig()
	if t == nil {
		return nil
	}
	err := w.TsigStatus()
	if !haveKeys {
		err = dns.ErrSecret
	}
	if err == nil {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeNotAuth)
	now := time.Now().Unix()
	resp.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, now)
	rt := resp.Extra[len(resp.Extra)-1].(*dns.TSIG)
	rt.Error = tsigErrorCode(err)
	if rt.Error == dns.RcodeBadTime {
		rt.OtherLen, rt.OtherData = 6, fmt.Sprintf("%012x", now)
		rt.TimeSigned = t.TimeSigned // the client's time: it signs our answer (5.2.3)
	}
	return resp
}

// signReply adds a TSIG RR to the answer to a signed request, so that the
// writer signs it with the request's key (RFC 8945 5.3).
func signReply(req, resp *dns.Msg) {
	t := req.IsTsig()
	if t == nil || resp.IsTsig() != nil {
		return
	}
	resp.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
}

// tsigUDPWriter answers a signed message over UDP: the signature is checked
// on the packet as received (a parsed and packed again message is not the
// same bytes), and what is written back is signed with the request's MAC,
// as miekg's server does for TCP.
type tsigUDPWriter struct {
	*udpWriter
	provider   dns.TsigProvider
	status     error
	requestMAC string
}

// tsigUDP wraps u for a signed request received as pkt.
func (s *Server) tsigUDP(u *udpWriter, pkt []byte, t *dns.TSIG) dns.ResponseWriter {
	w := &tsigUDPWriter{udpWriter: u, provider: s.o.TSIG, status: dns.ErrSecret, requestMAC: t.MAC}
	if w.provider != nil {
		// TsigVerify rewrites the ID and count in place: work on a copy.
		w.status = dns.TsigVerifyWithProvider(append([]byte(nil), pkt...), w.provider, "", false)
	}
	return w
}

func (w *tsigUDPWriter) TsigStatus() error { return w.status }

func (w *tsigUDPWriter) WriteMsg(m *dns.Msg) error {
	if w.provider == nil || m.IsTsig() == nil {
		return w.udpWriter.WriteMsg(m)
	}
	b, _, err := dns.TsigGenerateWithProvider(m, w.provider, w.requestMAC, false)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

var _ dns.ResponseWriter = (*tsigUDPWriter)(nil)
