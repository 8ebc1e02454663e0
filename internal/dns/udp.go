package dns

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// A UDP worker owns one socket and a cache of packed answers for the current
// table. A query the cache knows costs a parse of the header and question, a
// copy, and a patch of the ID, flags and question case: no allocation, no
// lock. Anything else (a miss, EDNS options, UPDATE, a malformed packet) takes
// the full path through miekg/dns, whose answer is then cached when it can be.

// packed is one cached answer: its variants (rotations or draws) packed with
// ID 0, served in turn.
type packed struct {
	variants [][]byte
	next     int
	// queries is this answer's seamark_dns_queries_total series, looked up
	// once so a hit costs one atomic add.
	queries   prometheus.Counter
	truncated bool
	// rrlKey is the answer's name for rate limiting.
	rrlKey uint64
	// pending hits not yet added to queries (the worker flushes them once
	// per batch: one atomic add, not one per answer on a shared line).
	pending uint32
}

// worker is the state of one UDP socket's goroutine; nothing in it is shared.
type worker struct {
	s     *Server
	conn  *net.UDPConn
	table *table
	cache map[string]*packed
	key   []byte
	out   []byte
	// dirty are the cached answers with pending hits.
	dirty []*packed
	// now is the time of the packets being answered (ns, the server's
	// clock), read once per batch for rate limiting.
	now int64
	// rot picks the variant (rotation or weighted draw) of answers that
	// are not cached, so they spread like cached ones.
	rot int
}

// maxCached bounds one worker's cache; a full cache is dropped and rebuilt
// (a flood of distinct random names must not grow memory without bound).
const maxCached = 1 << 16

func (s *Server) serveUDP(c *net.UDPConn) {
	w := &worker{s: s, conn: c, key: make([]byte, 0, 300), out: make([]byte, 0, 4096)}
	if s.serveUDPBatch(w) {
		return
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !s.handedOff.Load() {
				continue
			}
			return // closed, or handed over (StopReading)
		}
		t0 := s.o.Now()
		w.now = t0.UnixNano()
		if out := w.handle(buf[:n], from); out != nil {
			c.WriteToUDPAddrPort(out, from)
			s.m.seconds.Observe(s.o.Now().Sub(t0).Seconds())
		}
		w.flush()
	}
}

// handle answers one packet. It returns the answer for the caller to send
// (it is w.out's memory: send it before the next packet), or nil when there
// is nothing to send or the full path sent it.
func (w *worker) handle(pkt []byte, from netip.AddrPort) []byte {
	out, key, req := w.respond(pkt)
	switch {
	case out != nil:
		if l := w.s.rrl; l != nil {
			switch l.checkAt(from.Addr(), key, w.now) {
			case drop:
				w.s.m.rrlDropped.Inc()
				return nil
			case slip:
				out = truncatedReply(pkt, w.out)
				if out == nil {
					return nil
				}
				w.s.m.rrlSlipped.Inc()
			}
		}
		return out
	case req != nil:
		var rw dns.ResponseWriter = &udpWriter{conn: w.conn, to: from}
		if t := req.IsTsig(); t != nil {
			rw = w.s.tsigUDP(rw.(*udpWriter), pkt, t)
		}
		if req.Opcode == dns.OpcodeQuery && !isTransfer(req) {
			w.s.serveMsg(context.Background(), rw, req, false) // a signed query: answered here
			return nil
		}
		// UPDATE, NOTIFY and transfers may wait on the store: never on
		// the read loop.
		select {
		case w.s.extra <- extraJob{w: rw, req: req}:
		default:
			w.s.m.extraDropped.Inc()
			w.s.plog.Warn("dns message dropped: the update and transfer workers are busy", "from", from.Addr(), "opcode", dns.OpcodeToString[req.Opcode])
		}
	}
	return nil
}

func isTransfer(req *dns.Msg) bool {
	return len(req.Question) == 1 && (req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR)
}

// respond answers one packet from the cache or the name table, with the
// answer's rate-limiting key, or returns the parsed message when only the
// full server can answer it (UPDATE, NOTIFY, transfers, TSIG). All nil: the
// packet deserves no answer.
func (w *worker) respond(pkt []byte) ([]byte, uint64, *dns.Msg) {
	if t := w.s.table.Load(); t != w.table {
		w.table = t
		if w.cache == nil {
			w.cache = make(map[string]*packed, 1024)
		}
		clear(w.cache) // keeps the map's memory: churn makes no garbage here
	}
	key, ok := w.fastKey(pkt)
	if ok {
		if p := w.cache[string(key)]; p != nil {
			v := p.variants[p.next]
			p.next = (p.next + 1) % len(p.variants)
			out := append(w.out[:0], v...)
			patch(out, pkt)
			if p.pending == 0 {
				w.dirty = append(w.dirty, p)
			}
			p.pending++
			if p.truncated {
				w.s.m.truncated.Inc()
			}
			return out, p.rrlKey, nil
		}
	}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if resp := formErr(pkt); resp != nil {
			w.s.m.queries.WithLabelValues("malformed", "FORMERR").Inc()
			return resp, 0, nil
		}
		return nil, 0, nil
	}
	if req.Response {
		return nil, 0, nil // never answer an answer: two servers would loop
	}
	if req.Opcode != dns.OpcodeQuery || req.IsTsig() != nil || isTransfer(req) {
		return nil, 0, req
	}
	variant := 0
	if !ok { // answered, not cached (an EDNS option, such as dig's cookie): its own draw
		w.rot++
		variant = w.rot
	}
	resp, variants := w.table.answer(req, variant, false)
	first, err := resp.Pack()
	if err != nil {
		return nil, 0, nil
	}
	w.s.count(req, resp)
	rk := answerKey(w.seed(), resp)
	if !ok {
		return first, rk, nil // EDNS options and the like: answered, not cached
	}
	p := &packed{variants: [][]byte{first}, queries: w.s.queryCounter(req, resp), truncated: resp.Truncated, rrlKey: rk}
	for i := 1; i < variants; i++ {
		r, _ := w.table.answer(req, i, false)
		if b, err := r.Pack(); err == nil {
			p.variants = append(p.variants, b)
		}
	}
	p.next = 1 % len(p.variants)
	if len(w.cache) >= maxCached {
		clear(w.cache)
	}
	w.cache[string(key)] = p
	return first, rk, nil
}

// flush adds the pending hits of cached answers to their counters.
func (w *worker) flush() {
	for _, p := range w.dirty {
		p.queries.Add(float64(p.pending))
		p.pending = 0
	}
	clear(w.dirty)
	w.dirty = w.dirty[:0]
}

// seed is the rate limiter's hash seed (any when it is off).
func (w *worker) seed() maphash.Seed {
	if w.s.rrl != nil {
		return w.s.rrl.seed
	}
	return zeroSeed
}

var zeroSeed = maphash.MakeSeed()

// fastKey checks that pkt is a plain query the cache can answer (one
// question, no records but at most an OPT without options, version 0) and
// returns its cache key: the lower-cased question name, type, class, and the
// EDNS facts that shape the answer (present, DO bit, payload size).
func (w *worker) fastKey(pkt []byte) ([]byte, bool) {
	if len(pkt) < 17 {
		return nil, false
	}
	flags := binary.BigEndian.Uint16(pkt[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(pkt[4:]), binary.BigEndian.Uint16(pkt[6:]), binary.BigEndian.Uint16(pkt[8:]), binary.BigEndian.Uint16(pkt[10:])
	// QR=0, opcode QUERY, no TC.
	if flags&0x8000 != 0 || (flags>>11)&0xf != 0 || flags&0x0200 != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return nil, false
	}
	key := w.key[:0]
	i := 12
	for {
		if i >= len(pkt) {
			return nil, false
		}
		l := int(pkt[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 || i+1+l > len(pkt) {
			return nil, false // a compression pointer or a bad length: the full path decides
		}
		key = append(key, byte(l))
		for _, c := range pkt[i+1 : i+1+l] {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		i += 1 + l
	}
	if i+4 > len(pkt) || i-12 > 255 {
		return nil, false
	}
	key = append(key, 0, pkt[i], pkt[i+1], pkt[i+2], pkt[i+3]) // type, class
	i += 4
	if ar == 0 {
		if i != len(pkt) {
			return nil, false
		}
		w.key = key
		return append(key, 0), true
	}
	// One OPT: root name, type 41, class = payload size, TTL = ext rcode,
	// version, flags; no options.
	if i+11 != len(pkt) || pkt[i] != 0 || binary.BigEndian.Uint16(pkt[i+1:]) != dns.TypeOPT {
		return nil, false
	}
	size := binary.BigEndian.Uint16(pkt[i+3:])
	if pkt[i+6] != 0 || binary.BigEndian.Uint16(pkt[i+9:]) != 0 { // version 0, no options
		return nil, false
	}
	do := pkt[i+7] & 0x80
	w.key = key
	return append(key, 1, do, byte(size>>8), byte(size)), true
}

// patch makes a cached answer this query's: its ID, its RD and CD bits, and
// its question name as the client wrote it (case is preserved, RFC 4343).
func patch(out, req []byte) {
	copy(out[0:2], req[0:2])
	out[2] = out[2]&^0x01 | req[2]&0x01 // RD
	out[3] = out[3]&^0x10 | req[3]&0x10 // CD
	i := 12
	for req[i] != 0 {
		i += int(req[i]) + 1
	}
	copy(out[12:i], req[12:i])
}

// formErr answers a packet that does not parse with FORMERR, echoing its ID,
// when it is at least a header (RFC 1035 4.1.1); otherwise nothing.
func formErr(pkt []byte) []byte {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		return nil // too short to answer, or itself a response: never answer those
	}
	out := make([]byte, 12)
	copy(out, pkt[:2])
	out[2] = 0x80 | pkt[2]&0x78 | pkt[2]&0x01 // QR, opcode, RD
	out[3] = dns.RcodeFormatError
	return out
}

// udpWriter lets the full path answer over UDP.
type udpWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (u *udpWriter) LocalAddr() net.Addr  { return u.conn.LocalAddr() }
func (u *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(u.to) }
func (u *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = u.conn.WriteToUDPAddrPort(b, u.to)
	return err
}
func (u *udpWriter) Write(b []byte) (int, error) { return u.conn.WriteToUDPAddrPort(b, u.to) }
func (u *udpWriter) Close() error                { return nil }
func (u *udpWriter) TsigStatus() error           { return nil }
func (u *udpWriter) TsigTimersOnly(bool)         {}
func (u *udpWriter) Hijack()                     {}

var _ dns.ResponseWriter = (*udpWriter)(nil)
