package dns

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size seamark advertises (the DNS flag day 2020
// value: fits without fragmentation on any path).
const ednsSize = 1232

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
	limit := dns.MinMsgSize
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(ednsSize, opt.Do())
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp, 1
		}
		limit = max(int(opt.UDPSize()), dns.MinMsgSize)
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
	case dns.TypeAXFR, dns.TypeIXFR:
		// Transfers are answered by the TCP server, with access control.
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
	variants := t.resolve(resp, z, name, q.Qtype, variant)
	if !tcp {
		resp.Truncate(limit)
	}
	return resp, variants
}

// resolve fills the answer, chasing CNAMEs inside our zones (RFC 1034 4.3.2),
// and returns how many variants the answer has.
func (t *table) resolve(resp *dns.Msg, z *zone, name string, qtype uint16, variant int) int {
	for range maxChase {
		o := z.names[name]
		if o == nil {
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, z.negativeSOA())
			return 1
		}
		if cn := o.sets[dns.TypeCNAME]; len(cn) > 0 && qtype != dns.TypeCNAME {
			resp.Answer = append(resp.Answer, cn[0])
			target := strings.ToLower(cn[0].(*dns.CNAME).Target)
			next := t.find(target)
			if next == nil {
				return 1 // outside our zones: the client's resolver goes on from here
			}
			z, name = next, target
			continue
		}
		rrs := o.rrset(qtype, variant)
		if len(rrs) == 0 {
			resp.Ns = append(resp.Ns, z.negativeSOA()) // NODATA (RFC 2308 2.2)
			return 1
		}
		resp.Answer = append(resp.Answer, rrs...)
		t.glue(resp, rrs, variant)
		if o.svc != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
			return o.svc.variant
		}
		return 1
	}
	return 1 // a chain longer than maxChase: answer what we have
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
		if z == nil {
			continue
		}
		if o := z.names[target]; o != nil {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				resp.Extra = append(resp.Extra, o.rrset(qt, variant)...)
			}
		}
	}
}

// negativeSOA is the SOA for the authority section of a negative answer, its
// TTL the lesser of the SOA's own and its minimum (RFC 2308 3).
func (z *zone) negativeSOA() dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return &soa
}
