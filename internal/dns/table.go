package dns

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
)

// table is every answerable name of every zone at one snapshot revision. It
// is never changed after it is published. A table for the next snapshot is
// made from the previous one by changing only what the snapshot's Delta says
// changed (update); a change of zones, records, groups or the configuration
// rebuilds it whole (buildTable).
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
	names  *nameMap // lower-case owner name -> what it holds
	// cuts are the names below the apex that hold NS: delegations.
	cuts map[string]bool
	// hasWildcards: some owner's first label is "*".
	hasWildcards bool
}

// owner is one name in a zone: static RRsets, synthesized ones, a service's
// dynamic answers, or nothing (an empty non-terminal, which exists: NODATA,
// not NXDOMAIN). An owner is never changed once its table is published; a
// change makes a new owner.
type owner struct {
	sets map[uint16][]dns.RR
	svc  *pool     // <service>.<zone>: A/AAAA from the healthy nodes, per policy
	lazy *lazySets // sets made at the first query (a service's SRV set)
	// nodes are what <id>.node.<zone> answers: each service's address of
	// the node, sorted by service.
	nodes []nodeContrib
	// addrs are a node name's address records: A (the first n4), then
	// AAAA; sets is nil then (one small slice per node, not a map).
	addrs []dns.RR
	n4    int
	// static: the owner also holds records that are not a node's address
	// (a static record at a node's name); such a name is rebuilt whole.
	static bool
}

// nodeContrib is one service's address for a node name.
type nodeContrib struct {
	service string
	addr    netip.Addr
	ttl     uint32
}

// pool is a service's answerable addresses and how to pick them. Its lists
// are made from the service view at the first query that needs them (fill),
// so a change to a service of 100 000 nodes costs nothing until asked.
type pool struct {
	policy  api.AnswerPolicy
	once    sync.Once
	fill    func(p *pool)
	v4, v6  []dns.RR
	w4, w6  []int // weights, parallel to v4 and v6
	variant int   // how many different answers rotation or drawing can give
}

// get returns p with its lists made.
func (p *pool) get() *pool {
	if p.fill != nil {
		p.once.Do(func() { p.fill(p) })
	}
	return p
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

// update makes the table of snap from t, the table of prev, changing only
// the services d names. It returns nil when it cannot (the table is not
// prev's, or something other than services changed): rebuild then.
func (t *table) update(prev, snap *registry.Snapshot, d *registry.Delta) *table {
	if d == nil || prev == nil || t.rev != d.From || prev.Revision != d.From || len(d.Other) > 0 {
		return nil
	}
	nt := &table{rev: snap.Revision, maxUDP: t.maxUDP, zones: make([]*zone, 0, len(t.zones))}
	for _, z := range t.zones {
		nz := &zone{name: z.name, negTTL: z.negTTL, cuts: z.cuts, hasWildcards: z.hasWildcards, names: z.names.fork()}
		// The serial is the revision: a new SOA on a new apex owner.
		soa := *z.soa
		soa.Serial = uint32(snap.Revision)
		nz.soa = &soa
		apex := *nz.names.get(z.name)
		apex.sets = maps.Clone(apex.sets)
		apex.sets[dns.TypeSOA] = []dns.RR{nz.soa}
		nz.names.set(z.name, &apex)
		for name, sd := range d.Services {
			if !nz.updateService(prev, snap, name, sd) {
				return nil
			}
		}
		nz.names.seal()
		nt.zones = append(nt.zones, nz)
	}
	return nt
}

// updateService applies one service's change to a zone being made; false
// when the change touches a name that also holds static records.
func (z *zone) updateService(prev, snap *registry.Snapshot, name string, sd registry.ServiceDelta) bool {
	v, ok := snap.Service(name)
	if sd.Whole || !ok {
		if old, ok := prev.Service(name); ok {
			z.names.del(old.Service.Name + "." + z.name)
			z.names.del(srvName(old.Service.Name, z.name))
			for _, n := range old.Nodes() {
				if !z.dropNode(name, n.ID) {
					return false
				}
			}
		}
		if ok {
			z.putService(v)
			ttl := ttlOf(v.Service.Answers.TTL)
			for _, n := range v.Nodes() {
				if !z.putNode(name, n.ID, n.Address, ttl) {
					return false
				}
			}
		}
		return true
	}
	z.putService(v)
	ttl := ttlOf(v.Service.Answers.TTL)
	for _, id := range sd.Nodes {
		var done bool
		if n, ok := v.Node(id); ok {
			done = z.putNode(name, id, n.Address, ttl)
		} else {
			done = z.dropNode(name, id)
		}
		if !done {
			return false
		}
	}
	return true
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
	z := &zone{name: name, names: newNameMap()}
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
	z.names.each(func(n string, o *owner) {
		if n != z.name && len(o.sets[dns.TypeNS]) > 0 {
			if z.cuts == nil {
				z.cuts = map[string]bool{}
			}
			z.cuts[n] = true
		}
		if strings.HasPrefix(n, "*.") {
			z.hasWildcards = true
		}
	})
	z.names.seal()
	return z
}

// owner returns the owner of name to add records to, made when missing. Only
// while the zone is built whole: its owners are its own.
func (z *zone) owner(name string) *owner {
	o := z.names.get(name)
	if o == nil {
		o = &owner{sets: map[uint16][]dns.RR{}}
		z.names.set(name, o)
	}
	if o.sets == nil {
		o.sets = o.setsOf() // a node name: its addresses become sets
		o.addrs, o.n4 = nil, 0
	}
	if o.sets == nil {
		o.sets = map[uint16][]dns.RR{}
	}
	return o
}

func (z *zone) add(name string, rr dns.RR) {
	o := z.owner(name)
	t := rr.Header().Rrtype
	o.sets[t] = append(o.sets[t], rr)
	o.static = true
}

func srvName(service, zone string) string { return "_" + service + "._tcp." + zone }

// addService adds <svc>.<zone>, _<svc>._tcp.<zone> and <id>.node.<zone>.
func (z *zone) addService(v *registry.ServiceView) {
	z.putService(v)
	ttl := ttlOf(v.Service.Answers.TTL)
	for _, n := range v.Nodes() {
		z.putNode(v.Service.Name, n.ID, n.Address, ttl)
	}
}

// putService sets <svc>.<zone> and _<svc>._tcp.<zone> to answer from v.
// Both are made at their first query, so this costs the same for a service
// of one node and of 100 000.
func (z *zone) putService(v *registry.ServiceView) {
	svc := &v.Service
	ttl := ttlOf(svc.Answers.TTL)
	name := svc.Name + "." + z.name
	srv := srvName(svc.Name, z.name)
	zname := z.name
	answered := func() []*api.Node {
		nodes := slices.Clip(v.Healthy())
		if len(nodes) == 0 && svc.Answers.WhenNoneHealthy == api.NoneHealthyFailOpen {
			// As managed DNS does: when every check fails, the checks are more
			// likely wrong than every node; answer every node that is not taken
			// out on purpose.
			for _, n := range v.Nodes() {
				if !n.TakenOut() { // by its registrant or an operator (drain, maint)
					nodes = append(nodes, n)
				}
			}
		}
		return nodes
	}
	p := &pool{policy: svc.Answers, fill: func(p *pool) {
		for _, n := range answered() {
			rr := addrRR(name, n.Address, ttl)
			if _, ok := rr.(*dns.A); ok {
				p.v4, p.w4 = append(p.v4, rr), append(p.w4, n.Weight)
			} else {
				p.v6, p.w6 = append(p.v6, rr), append(p.w6, n.Weight)
			}
		}
		p.variant = max(len(p.v4), len(p.v6), 1)
		if svc.Answers.Policy == api.PolicyWeighted {
			p.variant = 16 // draws to cycle through; enough to spread load, few enough to pack ahead
		}
	}}
	z.putOwner(name, func(o *owner) { o.svc = p })
	z.putOwner(srv, func(o *owner) {
		o.lazy = &lazySets{fill: func() map[uint16][]dns.RR {
			nodes := answered()
			if len(nodes) == 0 {
				return nil
			}
			rrs := make([]dns.RR, 0, len(nodes))
			for _, n := range nodes {
				target := n.ID + ".node." + zname
				rrs = append(rrs, &dns.SRV{Hdr: hdr(srv, dns.TypeSRV, ttl), Priority: 0, Weight: uint16(min(n.Weight, 65535)), Port: uint16(n.PortOf(*svc)), Target: target})
			}
			return map[uint16][]dns.RR{dns.TypeSRV: rrs}
		}}
	})
}

// putOwner replaces name's owner by a new one that set fills, keeping what
// a static record put there (as a whole build would), and makes the names
// between it and the apex exist.
func (z *zone) putOwner(name string, set func(o *owner)) {
	o := &owner{}
	if old := z.names.get(name); old != nil && old.static {
		o.sets, o.static = old.sets, true
	} else if old == nil {
		z.addParents(name)
	}
	set(o)
	z.names.set(name, o)
}

// putNode sets service's address for node id; dropNode removes it. A node
// name holds one address per service (the same node ID in db and app is one
// machine, its address once). False when the name also holds static
// records (rebuild whole).
func (z *zone) putNode(service, id string, addr netip.Addr, ttl uint32) bool {
	return z.changeNode(id, nodeContrib{service: service, addr: addr, ttl: ttl}, true)
}

func (z *zone) dropNode(service, id string) bool {
	return z.changeNode(id, nodeContrib{service: service}, false)
}

func (z *zone) changeNode(id string, c nodeContrib, put bool) bool {
	nn := id + ".node." + z.name
	old := z.names.get(nn)
	if old != nil && old.static {
		return false
	}
	var list []nodeContrib
	if old != nil {
		list = old.nodes
	}
	i, found := slices.BinarySearchFunc(list, c.service, func(e nodeContrib, s string) int { return strings.Compare(e.service, s) })
	switch {
	case put && found:
		if list[i] == c {
			return true
		}
		list = slices.Clone(list)
		list[i] = c
	case put:
		list = slices.Insert(slices.Clip(list), i, c)
	case found:
		list = slices.Delete(slices.Clone(list), i, i+1)
	default:
		return true
	}
	if len(list) == 0 {
		z.names.del(nn) // the empty non-terminals above stay until a rebuild
		return true
	}
	if old == nil {
		z.addParents(nn)
	}
	o := &owner{nodes: list}
	var v6 []dns.RR
	for j, c := range list {
		if slices.ContainsFunc(list[:j], func(p nodeContrib) bool { return p.addr == c.addr }) {
			continue
		}
		rr := addrRR(nn, c.addr, c.ttl)
		if _, ok := rr.(*dns.A); ok {
			o.addrs = append(o.addrs, rr)
		} else {
			v6 = append(v6, rr)
		}
	}
	o.n4 = len(o.addrs)
	o.addrs = append(o.addrs, v6...)
	z.names.set(nn, o)
	return true
}

// addParents makes every name between name and the apex exist.
func (z *zone) addParents(name string) {
	for n := parent(name); n != "" && len(n) > len(z.name); n = parent(n) {
		if z.names.get(n) != nil {
			return
		}
		z.names.set(n, &owner{})
	}
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
	var names []string
	z.names.each(func(n string, _ *owner) { names = append(names, n) })
	for _, name := range names {
		z.addParents(name)
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
	p = p.get()
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
