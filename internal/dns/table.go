package dns

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
)

// table is every answerable name of every zone at one snapshot revision. It
// is built once per snapshot and never changed after.
type table struct {
	rev   int64
	zones []*zone // longest name first, so the first suffix match is the closest zone
	// maxUDP caps UDP answers (0: DefaultMaxUDPSize).
	maxUDP int
}

// zone is one served zone.
type zone struct {
	name   string // lower case, fully qualified
	soa    *dns.SOA
	negTTL uint32
	names  map[string]*owner // lower-case owner name -> what it holds
	// cuts are the names below the apex that hold NS: delegations.
	cuts map[string]bool
	// hasWildcards: some owner's first label is "*".
	hasWildcards bool
	// nodeAddrs dedups node-name addresses while the zone is built.
	nodeAddrs map[nodeAddr]bool
}

// owner is one name in a zone: static RRsets, synthesized ones, a service's
// dynamic answers, or nothing (an empty non-terminal, which exists: NODATA,
// not NXDOMAIN).
type owner struct {
	sets map[uint16][]dns.RR
	svc  *pool // <service>.<zone>: A/AAAA from the healthy nodes, per policy
}

// pool is a service's answerable addresses and how to pick them.
type pool struct {
	policy  api.AnswerPolicy
	v4, v6  []dns.RR
	w4, w6  []int // weights, parallel to v4 and v6
	variant int   // how many different answers rotation or drawing can give
}

// buildTable turns a snapshot into the name table. zones configure apexes
// (by canonical zone name); nsAddr, when valid, is the address the default
// ns.<zone> answers.
func buildTable(s *registry.Snapshot, nsAddr netip.Addr, zones map[string]Zone) *table {
	t := &table{rev: s.Revision}
	for _, zn := range s.Zones() {
		t.zones = append(t.zones, buildZone(s, zn, nsAddr, zones[zn]))
	}
	slices.SortFunc(t.zones, func(a, b *zone) int { return cmp.Compare(len(b.name), len(a.name)) })
	return t
}

func hdr(name string, typ uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
}

func addrRR(name string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() || a.Is4In6() {
		return &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.Unmap().AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()}
}

func ttlOf(d api.Duration) uint32 {
	s := uint32(time.Duration(d) / time.Second)
	return max(s, 1)
}

func buildZone(s *registry.Snapshot, name string, nsAddr netip.Addr, cfg Zone) *zone {
	z := &zone{name: name, names: map[string]*owner{}, nodeAddrs: map[nodeAddr]bool{}}
	z.addApex(cfg, uint32(s.Revision), nsAddr)
	for _, v := range s.Services() {
		z.addService(v)
	}
	memberAddrs := map[string]bool{} // a member may belong to several groups
	for _, g := range s.Groups() {
		for _, m := range g.Members {
			mn := m.Name + "." + name
			if !memberAddrs[mn+" "+m.Address.String()] {
				memberAddrs[mn+" "+m.Address.String()] = true
				z.add(mn, addrRR(mn, m.Address, 5))
			}
		}
		// The group's own name answers from the store's role record only:
		// every server answers the same at the same revision. Its TTL is 1s
		// so that resolvers follow a failover at once.
		gn := g.Name + "." + name
		z.owner(gn)
		for _, a := range s.GroupAnswer(g) {
			z.add(gn, addrRR(gn, a, 1))
		}
	}
	if zr := s.Records(name); zr != nil {
		for _, r := range zr.Sets {
			z.addStatic(r)
		}
	}
	z.addEmptyNonTerminals()
	for n, o := range z.names {
		if n != z.name && len(o.sets[dns.TypeNS]) > 0 {
			if z.cuts == nil {
				z.cuts = map[string]bool{}
			}
			z.cuts[n] = true
		}
		if strings.HasPrefix(n, "*.") {
			z.hasWildcards = true
		}
	}
	z.nodeAddrs = nil
	return z
}

func (z *zone) owner(name string) *owner {
	o := z.names[name]
	if o == nil {
		o = &owner{sets: map[uint16][]dns.RR{}}
		z.names[name] = o
	}
	return o
}

func (z *zone) add(name string, rr dns.RR) {
	o := z.owner(name)
	t := rr.Header().Rrtype
	o.sets[t] = append(o.sets[t], rr)
}

// addService adds <svc>.<zone>, _<svc>._tcp.<zone> and <id>.node.<zone>.
func (z *zone) addService(v *registry.ServiceView) {
	svc := v.Service
	ttl := ttlOf(svc.Answers.TTL)
	name := svc.Name + "." + z.name
	nodes := v.Healthy
	if len(nodes) == 0 && svc.Answers.WhenNoneHealthy == api.NoneHealthyFailOpen {
		// As managed DNS does: when every check fails, the checks are more
		// likely wrong than every node; answer every node that is not taken
		// out on purpose.
		for _, n := range v.Nodes {
			if !n.TakenOut() { // by its registrant or an operator (drain, maint)
				nodes = append(nodes, n)
			}
		}
	}
	p := &pool{policy: svc.Answers}
	srvName := "_" + svc.Name + "._tcp." + z.name
	for _, n := range nodes {
		rr := addrRR(name, n.Address, ttl)
		if _, ok := rr.(*dns.A); ok {
			p.v4, p.w4 = append(p.v4, rr), append(p.w4, n.Weight)
		} else {
			p.v6, p.w6 = append(p.v6, rr), append(p.w6, n.Weight)
		}
		target := n.ID + ".node." + z.name
		z.add(srvName, &dns.SRV{Hdr: hdr(srvName, dns.TypeSRV, ttl), Priority: 0, Weight: uint16(min(n.Weight, 65535)), Port: uint16(n.PortOf(svc)), Target: target})
	}
	p.variant = max(len(p.v4), len(p.v6), 1)
	if svc.Answers.Policy == api.PolicyWeighted {
		p.variant = 16 // draws to cycle through; enough to spread load, few enough to pack ahead
	}
	z.owner(name).svc = p
	// <id>.node.<zone> is the machine: one node ID in several services (a
	// host running db and app) is one name, its address once.
	for _, n := range v.Nodes {
		nn := n.ID + ".node." + z.name
		key := nodeAddr{name: nn, addr: n.Address}
		if z.nodeAddrs[key] {
			continue
		}
		z.nodeAddrs[key] = true
		z.add(nn, addrRR(nn, n.Address, ttl))
	}
}

type nodeAddr struct {
	name string
	addr netip.Addr
}

// addStatic adds a static record set; values were validated on the way in.
func (z *zone) addStatic(r api.Record) {
	ttl := ttlOf(r.TTL)
	for _, v := range r.Values {
		var text string
		switch r.Type {
		case "TXT":
			text = r.Name + " " + itoa(ttl) + " IN TXT " + quoteTXT(v)
		case "CNAME", "NS", "MX", "SRV":
			text = r.Name + " " + itoa(ttl) + " IN " + r.Type + " " + fqdnLast(v, z.name)
		default:
			text = r.Name + " " + itoa(ttl) + " IN " + r.Type + " " + v
		}
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			continue
		}
		z.add(r.Name, rr)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// quoteTXT turns a TXT value into one quoted string, split into 255-byte
// character-strings.
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 0 {
		n := min(len(v), 255)
		parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v[:n])+`"`)
		v = v[n:]
	}
	if len(parts) == 0 {
		return `""`
	}
	return strings.Join(parts, " ")
}

// fqdnLast makes the last field (a host name) absolute: relative names are
// taken inside the zone.
func fqdnLast(v, zone string) string {
	f := strings.Fields(v)
	last := f[len(f)-1]
	if !strings.HasSuffix(last, ".") {
		last = last + "." + zone
	}
	f[len(f)-1] = strings.ToLower(last)
	return strings.Join(f, " ")
}

// addEmptyNonTerminals makes every name between an owner and the apex exist,
// so a query for it is NODATA rather than NXDOMAIN (RFC 8020).
func (z *zone) addEmptyNonTerminals() {
	for name := range z.names {
		for n := parent(name); n != "" && len(n) > len(z.name); n = parent(n) {
			if _, ok := z.names[n]; !ok {
				z.names[n] = &owner{sets: map[uint16][]dns.RR{}}
			}
		}
	}
}

func parent(name string) string {
	i := strings.IndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return ""
	}
	return name[i+1:]
}

// find returns the zone holding name (lower case, fully qualified), or nil.
func (t *table) find(name string) *zone {
	for _, z := range t.zones {
		if name == z.name || strings.HasSuffix(name, "."+z.name) {
			return z
		}
	}
	return nil
}

// addrs returns the service's A or AAAA answer for one variant: rotated (all)
// or drawn by weight (weighted), at most max_answers.
func (p *pool) addrs(qtype uint16, variant int) []dns.RR {
	rrs, ws := p.v4, p.w4
	if qtype == dns.TypeAAAA {
		rrs, ws = p.v6, p.w6
	}
	n := len(rrs)
	if n == 0 {
		return nil
	}
	k := min(n, p.policy.MaxAnswers)
	out := make([]dns.RR, 0, k)
	if p.policy.Policy == api.PolicyWeighted {
		rng := rand.New(rand.NewPCG(uint64(variant), 0x5ea4a7c))
		left := slices.Clone(ws)
		total := 0
		for _, w := range left {
			total += w
		}
		for range k {
			r := rng.IntN(total)
			for i, w := range left {
				if r < w {
					out = append(out, rrs[i])
					total -= w
					left[i] = 0
					break
				}
				r -= w
			}
		}
		return out
	}
	off := variant % n
	for i := range k {
		out = append(out, rrs[(off+i)%n])
	}
	return out
}
