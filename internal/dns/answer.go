package dns

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// DefaultMaxUDPSize is the largest UDP answer seamark sends and the payload
// size it advertises, unless Options.MaxUDPSize says otherwise (the DNS flag
// day 2020 value: fits without fragmentation on any path).
const DefaultMaxUDPSize = 1232

// maxChase bounds CNAME chains inside our zones.
const maxChase = 8

// answer builds the response to a QUERY from t. variant picks the rotation
// (policy all) or draw (policy weighted) of service answers; tcp lifts the
// size limit. It also returns how many different answers variants give (1
// when the answer does not rotate). It never fails: malformed or unsupported
// queries get an error code.
func (t *table) answer(req *dns.Msg, variant int, tcp bool) (*dns.Msg, int) {
	resp := new(dns.Msg)
	resp.Id = req.Id
	resp.Response = true
	resp.Opcode = req.Opcode
	resp.RecursionDesired = req.RecursionDesired
	resp.CheckingDisabled = req.CheckingDisabled
	resp.Compress = true
	if len(req.Question) == 1 {
		resp.Question = []dns.Question{req.Question[0]}
	}
	if countOPT(req) > 1 {
		resp.Rcode = dns.RcodeFormatError // RFC 6891 6.1.1
		return resp, 1
	}
	serverMax := t.udpMax()
	limit := dns.MinMsgSize
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(uint16(serverMax), opt.Do())
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp, 1
		}
		// The smaller of what the client takes and what we send (RFC 6891
		// 6.2.5): never more than our own cap, whatever the client asks.
		limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), serverMax)
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
		return resp, 1
	case len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Ns) > 0 || req.Response:
		resp.Rcode = dns.RcodeFormatError
		return resp, 1
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp, 1
	}
	switch q.Qtype {
	case dns.TypeAXFR:
		// AXFR is for TCP (RFC 5936 4.2); NSD and Knot say NOTIMP over UDP.
		resp.Rcode = dns.RcodeNotImplemented
		return resp, 1
	case dns.TypeIXFR:
		// Transfers are answered by the Primary, with access control.
		resp.Rcode = dns.RcodeRefused
		return resp, 1
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		resp.Rcode = dns.RcodeFormatError
		return resp, 1
	}
	name := strings.ToLower(q.Name)
	z := t.find(name)
	if z == nil {
		resp.Rcode = dns.RcodeRefused // not ours, and we do not recurse
		return resp, 1
	}
	resp.Authoritative = true
	variants, required := t.resolve(resp, z, name, q.Qtype, variant)
	if !tcp {
		fit(resp, limit, required)
	}
	return resp, variants
}

// udpMax is the table's UDP answer cap.
func (t *table) udpMax() int {
	if t.maxUDP > 0 {
		return t.maxUDP
	}
	return DefaultMaxUDPSize
}

// countOPT counts the OPT records of m's additional section.
func countOPT(m *dns.Msg) int {
	n := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

// resolve fills the answer as RFC 1034 4.3.2 does: a referral at a zone cut,
// the owner's data, a CNAME chased inside our zones, wildcard synthesis (RFC
// 4592), NXDOMAIN or NODATA. It returns how many variants the answer has, and
// how many leading additional records the answer needs (the glue of a
// referral, RFC 9471): if they do not fit, the answer is truncated.
func (t *table) resolve(resp *dns.Msg, z *zone, name string, qtype uint16, variant int) (int, int) {
	for range maxChase {
		if cut := z.cutAbove(name); cut != "" && (cut != name || qtype != dns.TypeDS) {
			// A delegation: the names at and below the cut are the child's
			// (DS at the cut is the parent's own, RFC 4035 3.1.4.1).
			if len(resp.Answer) == 0 {
				resp.Authoritative = false
			}
			ns := z.names[cut].sets[dns.TypeNS]
			resp.Ns = append(resp.Ns, ns...)
			return 1, t.referralGlue(resp, z, cut, ns)
		}
		o, wild := z.lookup(name)
		if o == nil {
			resp.Rcode = dns.RcodeNameError // of the last name in a chain (RFC 6604 2.1)
			resp.Ns = append(resp.Ns, z.negativeSOA())
			return 1, 0
		}
		if cn := o.sets[dns.TypeCNAME]; len(cn) > 0 && qtype != dns.TypeCNAME && qtype != dns.TypeANY {
			rr := synth(cn[:1], wild, name)[0]
			resp.Answer = append(resp.Answer, rr)
			target := strings.ToLower(rr.(*dns.CNAME).Target)
			next := t.find(target)
			if next == nil || slices.ContainsFunc(resp.Answer[:len(resp.Answer)-1], func(x dns.RR) bool {
				return strings.EqualFold(x.Header().Name, target)
			}) {
				return 1, 0 // outside our zones (the client's resolver goes on), or a loop
			}
			z, name = next, target
			continue
		}
		rrs := o.rrset(qtype, variant)
		if len(rrs) == 0 {
			resp.Ns = append(resp.Ns, z.negativeSOA()) // NODATA (RFC 2308 2.2)
			return 1, 0
		}
		resp.Answer = append(resp.Answer, synth(rrs, wild, name)...)
		t.glue(resp, rrs, variant)
		if o.svc != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
			return o.svc.variant, 0
		}
		return 1, 0
	}
	return 1, 0 // a chain longer than maxChase: answer what we have
}

// synth returns rrs owned by name when they come from a wildcard (RFC 4592
// 3.3.1), rrs themselves otherwise.
func synth(rrs []dns.RR, wild bool, name string) []dns.RR {
	if !wild {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = name
		out[i] = c
	}
	return out
}

// lookup finds name's owner: the name itself (an empty non-terminal exists
// too), or else the wildcard at its closest encloser (RFC 4592 3.3.1), with
// wild set. nil: the name does not exist.
func (z *zone) lookup(name string) (*owner, bool) {
	if o := z.names[name]; o != nil {
		return o, false
	}
	if !z.hasWildcards {
		return nil, false
	}
	for ce := parent(name); ce != "" && len(ce) >= len(z.name); ce = parent(ce) {
		if _, ok := z.names[ce]; ok || ce == z.name {
			return z.names["*."+ce], true
		}
	}
	return nil, false
}

// cutAbove returns the highest zone cut (a name below the apex holding NS)
// at or above name, or "".
func (z *zone) cutAbove(name string) string {
	if len(z.cuts) == 0 {
		return ""
	}
	cut := ""
	for n := name; n != "" && len(n) > len(z.name); n = parent(n) {
		if z.cuts[n] {
			cut = n
		}
	}
	return cut
}

// referralGlue adds the addresses of the delegation's name servers to the
// additional section: first those at or below the cut (glue, which the
// referral needs), then others inside the zone. It returns how many records
// are glue.
func (t *table) referralGlue(resp *dns.Msg, z *zone, cut string, ns []dns.RR) int {
	var glue, other []dns.RR
	seen := map[string]bool{}
	for _, rr := range ns {
		target := strings.ToLower(rr.(*dns.NS).Ns)
		if seen[target] {
			continue
		}
		seen[target] = true
		below := target == cut || strings.HasSuffix(target, "."+cut)
		tz := z
		if !below {
			if tz = t.find(target); tz == nil {
				continue
			}
		}
		o := tz.names[target]
		if o == nil {
			continue
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if below {
				glue = append(glue, o.sets[qt]...)
			} else if tz.cutAbove(target) == "" {
				other = append(other, o.rrset(qt, 0)...)
			}
		}
	}
	resp.Extra = append(resp.Extra, glue...)
	resp.Extra = append(resp.Extra, other...)
	return len(glue)
}

// rrset returns the owner's records of qtype; ANY is answered minimally with
// one set (RFC 8482).
func (o *owner) rrset(qtype uint16, variant int) []dns.RR {
	if o.svc != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
		if rrs := o.svc.addrs(qtype, variant); len(rrs) > 0 {
			return rrs
		}
	}
	if qtype == dns.TypeANY {
		if o.svc != nil {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				if rrs := o.svc.addrs(t, variant); len(rrs) > 0 {
					return rrs
				}
			}
		}
		types := make([]uint16, 0, len(o.sets))
		for t := range o.sets {
			types = append(types, t)
		}
		slices.Sort(types)
		if len(types) > 0 {
			return o.sets[types[0]]
		}
		return nil
	}
	return o.sets[qtype]
}

// glue adds the addresses of in-zone targets of SRV, NS and MX answers to the
// additional section.
func (t *table) glue(resp *dns.Msg, rrs []dns.RR, variant int) {
	seen := map[string]bool{}
	for _, rr := range rrs {
		var target string
		switch v := rr.(type) {
		case *dns.SRV:
			target = v.Target
		case *dns.NS:
			target = v.Ns
		case *dns.MX:
			target = v.Mx
		default:
			continue
		}
		target = strings.ToLower(target)
		if seen[target] {
			continue
		}
		seen[target] = true
		z := t.find(target)
		if z == nil || z.cutAbove(target) != "" {
			continue
		}
		if o := z.names[target]; o != nil {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				resp.Extra = append(resp.Extra, o.rrset(qt, variant)...)
			}
		}
	}
}

// fit makes resp fit in limit bytes as RFC 2181 9 says: additional records
// that do not fit are left out, whole RRsets from the end, and TC is set only
// when the answer, the authority or the first required additional records
// do not fit (the client must then ask over TCP).
func fit(resp *dns.Msg, limit, required int) {
	if resp.Len() <= limit {
		return
	}
	var opt dns.RR
	extra := make([]dns.RR, 0, len(resp.Extra))
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = rr
		} else {
			extra = append(extra, rr)
		}
	}
	with := func(n int) []dns.RR {
		e := extra[:n:n]
		if opt != nil {
			e = append(e, opt)
		}
		return e
	}
	// Cut points: the ends of RRsets, from required on.
	var cuts []int
	for i := required; i <= len(extra); i++ {
		if i == len(extra) || i == required || !sameOwnerType(extra[i-1], extra[i]) {
			cuts = append(cuts, i)
		}
	}
	// The largest cut that fits (binary search: fitting is monotone).
	lo, hi := 0, len(cuts)-1
	best := -1
	for lo <= hi {
		mid := (lo + hi) / 2
		resp.Extra = with(cuts[mid])
		if resp.Len() <= limit {
			best, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	if best >= 0 {
		resp.Extra = with(cuts[best])
		return
	}
	resp.Truncated = true
	resp.Answer, resp.Ns = nil, nil
	resp.Extra = with(0)
}

func sameOwnerType(a, b dns.RR) bool {
	ha, hb := a.Header(), b.Header()
	return ha.Rrtype == hb.Rrtype && strings.EqualFold(ha.Name, hb.Name)
}

// negativeSOA is the SOA for the authority section of a negative answer, its
// TTL the lesser of the SOA's own and its minimum (RFC 2308 3).
func (z *zone) negativeSOA() dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return &soa
}

// ensureOPT adds an OPT to resp when req had one and resp has none (every
// answer to an EDNS query carries one, RFC 6891 6.1.1), before a TSIG.
func ensureOPT(req, resp *dns.Msg, size int) {
	if resp == nil || countOPT(req) != 1 || countOPT(resp) > 0 {
		return
	}
	o := req.IsEdns0()
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: uint16(size)}}
	if o != nil && o.Do() {
		opt.SetDo()
	}
	if n := len(resp.Extra); n > 0 && resp.Extra[n-1].Header().Rrtype == dns.TypeTSIG {
		resp.Extra = append(resp.Extra[:n-1:n-1], opt, resp.Extra[n-1])
		return
	}
	resp.Extra = append(resp.Extra, opt)
}
