package dns

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// RRL configures response rate limiting (as BIND, NSD and Knot do it): UDP
// answers to one source prefix, for one answer (a name and type, or one
// zone's negative answers, or errors), are limited to ResponsesPerSecond;
// beyond it most are dropped and every Slip-th is sent as an empty answer
// with TC set, so a real client behind a spoofed flood still gets through
// over TCP. TCP answers are never limited. The zero RRL is the default.
type RRL struct {
	// Disabled turns rate limiting off.
	Disabled bool
	// ResponsesPerSecond per source prefix and answer; default 200 (NSD's
	// default). A resolver's cache makes a legitimate client ask far less.
	ResponsesPerSecond int
	// Window is how long a source over the limit stays limited: its debt
	// is capped at Window's worth of responses; default 15s (BIND's).
	Window time.Duration
	// Slip: every Slip-th limited answer is sent truncated instead of
	// dropped; default 2; -1 drops every one.
	Slip int
	// IPv4PrefixLen and IPv6PrefixLen group sources; defaults 24 and 56.
	IPv4PrefixLen, IPv6PrefixLen int
	// Exempt sources are never limited (the server's config exempts
	// loopback by default: a local resolver, and no one off the machine
	// can send from it).
	Exempt []netip.Prefix
}

// RRL defaults.
const (
	DefaultRRLRate   = 200
	DefaultRRLWindow = 15 * time.Second
	DefaultRRLSlip   = 2
	DefaultRRLIPv4   = 24
	DefaultRRLIPv6   = 56
)

func (r RRL) withDefaults() RRL {
	if r.ResponsesPerSecond <= 0 {
		r.ResponsesPerSecond = DefaultRRLRate
	}
	if r.Window <= 0 {
		r.Window = DefaultRRLWindow
	}
	if r.Slip == 0 {
		r.Slip = DefaultRRLSlip
	}
	if r.IPv4PrefixLen <= 0 || r.IPv4PrefixLen > 32 {
		r.IPv4PrefixLen = DefaultRRLIPv4
	}
	if r.IPv6PrefixLen <= 0 || r.IPv6PrefixLen > 128 {
		r.IPv6PrefixLen = DefaultRRLIPv6
	}
	r.ResponsesPerSecond = min(r.ResponsesPerSecond, 1_000_000)
	r.Window = min(r.Window, time.Hour)
	return r
}

// verdict is what the limiter says about one answer.
type verdict uint8

const (
	send verdict = iota
	drop
	slip
)

// rrlBuckets is the size of the limiter's table: fixed, so a flood of
// sources costs no memory; sources that collide share a bucket.
const rrlBuckets = 1 << 16

type bucket struct {
	key     uint64
	last    int64 // ns
	balance int64 // responses allowed now, times scale (may be negative: debt)
	limited uint32
}

// limiter is response rate limiting's state: a fixed table of buckets
// behind striped locks.
type limiter struct {
	cfg     RRL
	now     func() int64 // ns; injected by tests
	seed    maphash.Seed
	rate    int64 // responses per second
	maxDebt int64 // scaled
	locks   [64]sync.Mutex
	buckets []bucket
}

const scale = int64(time.Second) // balance unit: 1 response = 1e9

func newLimiter(cfg RRL, now func() int64) *limiter {
	cfg = cfg.withDefaults()
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
	}
	return &limiter{
		cfg: cfg, now: now, seed: maphash.MakeSeed(), rate: int64(cfg.ResponsesPerSecond),
		maxDebt: int64(cfg.ResponsesPerSecond) * int64(cfg.Window/time.Second) * scale,
		buckets: make([]bucket, rrlBuckets),
	}
}

// answerKey is the limiter's name for an answer: the question's name and
// type for a positive answer, the zone for a negative one (a flood of random
// names is one key), the RCODE for an error.
func answerKey(seed maphash.Seed, resp *dns.Msg) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], uint16(resp.Rcode))
	switch {
	case resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 && len(resp.Question) == 1:
		binary.BigEndian.PutUint16(b[2:], resp.Question[0].Qtype)
		h.Write(b[:])
		h.WriteString(strings.ToLower(resp.Question[0].Name))
	case (resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) && len(resp.Ns) > 0:
		b[2] = 1
		h.Write(b[:])
		h.WriteString(strings.ToLower(resp.Ns[0].Header().Name)) // the zone (SOA) or the cut (NS)
	default:
		b[2] = 2
		h.Write(b[:])
	}
	return h.Sum64()
}

// check counts one answer with key to from and says whether to send it.
func (l *limiter) check(from netip.Addr, key uint64) verdict {
	return l.checkAt(from, key, l.now())
}

// checkAt is check at time now (ns on the limiter's clock): the UDP
// workers read the clock once per batch of queries, not once per answer.
func (l *limiter) checkAt(from netip.Addr, key uint64, now int64) verdict {
	from = from.Unmap()
	for _, p := range l.cfg.Exempt {
		if p.Contains(from) {
			return send
		}
	}
	a := sourcePrefix(from, l.cfg.IPv4PrefixLen, l.cfg.IPv6PrefixLen)
	k := key ^ maphash.Bytes(l.seed, a[:])*0x9e3779b97f4a7c15
	i := k % rrlBuckets
	mu := &l.locks[i%uint64(len(l.locks))]
	mu.Lock()
	defer mu.Unlock()
	b := &l.buckets[i]
	if b.key != k || b.last == 0 {
		*b = bucket{key: k, last: now, balance: l.rate * scale}
	} else if el := now - b.last; el > 0 {
		el = min(el, int64(time.Hour)) // no overflow: a bucket is full long before
		b.balance = min(b.balance+el*l.rate, l.rate*scale)
		b.last = now
	}
	if b.balance >= scale {
		b.balance -= scale
		b.limited = 0
		return send
	}
	b.balance = max(b.balance-scale, -l.maxDebt)
	b.limited++
	if l.cfg.Slip > 0 && b.limited%uint32(l.cfg.Slip) == 0 {
		return slip
	}
	return drop
}

// sourcePrefix is from's prefix of bits4 (IPv4) or bits6 (IPv6) bits as
// 16 bytes (IPv4 in its IPv6-mapped form), the source's name for rate
// limiting. Masked by hand: netip.Addr.Prefix cost more than the rest of
// check.
func sourcePrefix(from netip.Addr, bits4, bits6 int) [16]byte {
	var a [16]byte
	if from.Is4() {
		v := from.As4()
		m := binary.BigEndian.Uint32(v[:]) &^ (^uint32(0) >> min(bits4, 32))
		a[10], a[11] = 0xff, 0xff
		binary.BigEndian.PutUint32(a[12:], m)
		return a
	}
	a = from.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	bits := min(bits6, 128)
	if bits >= 64 {
		lo &^= ^uint64(0) >> (bits - 64)
	} else {
		hi &^= ^uint64(0) >> bits
		lo = 0
	}
	binary.BigEndian.PutUint64(a[:8], hi)
	binary.BigEndian.PutUint64(a[8:], lo)
	return a
}

// truncatedReply is the slip answer to query pkt: its header and question
// with QR and TC set and no records; nil when pkt's question does not parse.
func truncatedReply(pkt, out []byte) []byte {
	if len(pkt) < 12 {
		return nil
	}
	i := 12
	for {
		if i >= len(pkt) {
			return nil
		}
		l := int(pkt[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 {
			return nil
		}
		i += 1 + l
	}
	i += 4
	if i > len(pkt) || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return nil
	}
	out = append(out[:0], pkt[:i]...)
	out[2] = 0x80 | pkt[2]&0x79 | 0x02 // QR, opcode, TC, RD
	out[3] = pkt[3] & 0x10             // CD
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}
