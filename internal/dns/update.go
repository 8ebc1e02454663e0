package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// RecordStore applies changes to a zone's static record sets atomically:
// the store.
type RecordStore interface {
	ApplyChanges(ctx context.Context, zone string, b api.ChangeBatch) (int64, error)
}

var _ RecordStore = (*store.Store)(nil)

// PrimaryOptions configure a Primary.
type PrimaryOptions struct {
	// Store takes the record changes an UPDATE makes.
	Store RecordStore
	// Snapshots give the zone an UPDATE's prerequisites are checked
	// against and a transfer sends: the Server's own.
	Snapshots Snapshots
	// Keys are the TSIG keys an UPDATE must be signed with and a transfer
	// may be signed with; the first signs NOTIFY. Give the Server the same
	// Keyring as Options.TSIG: it verifies the signatures.
	Keys *Keyring
	// Secondaries are sent NOTIFY on every change and may transfer the
	// zones from their address without TSIG.
	Secondaries []netip.AddrPort
	// AllowTransfer are further clients that may transfer without TSIG.
	AllowTransfer []netip.Prefix
	// Logger logs refused updates and transfers and unanswered NOTIFYs.
	Logger *slog.Logger
	// Zones configure zone apexes: give the Server's Options.Zones.
	Zones map[string]Zone
}

// Primary is the primary server's side of dynamic updates (RFC 2136, signed
// with TSIG) and of secondaries: zone transfers (AXFR, and IXFR answered
// with the whole zone) and NOTIFY on every change (Run). It is the Server's
// ExtraHandler. Updates change static records only, through the store; the
// names the registry owns (services, their SRV names, node names, balancer
// members, the apex SOA and NS) are refused.
type Primary struct {
	o     PrimaryOptions
	log   *slog.Logger
	plog  *limitedLog // lines any unsigned packet can trigger
	built atomic.Pointer[builtTable]
	// mu makes updates on this server one at a time (RFC 2136 3.7); the
	// store's guards order them against other writers.
	mu sync.Mutex
}

var _ ExtraHandler = (*Primary)(nil)

// builtTable is a name table built for one snapshot, kept for the next
// update or transfer of the same snapshot.
type builtTable struct {
	snap *registry.Snapshot
	ns   netip.Addr
	t    *table
}

// NewPrimary returns a Primary; Run sends its NOTIFYs.
func NewPrimary(o PrimaryOptions) *Primary {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Primary{o: o, log: o.Logger.With("component", "dns-primary")}
	p.plog = newLimitedLog(p.log, 10, nil, time.Now)
	return p
}

// ServeExtra implements ExtraHandler: UPDATE, AXFR and IXFR.
func (p *Primary) ServeExtra(ctx context.Context, w dns.ResponseWriter, req *dns.Msg, tcp bool) *dns.Msg {
	switch {
	case req.Opcode == dns.OpcodeUpdate:
		return p.serveUpdate(ctx, w, req)
	case req.Opcode == dns.OpcodeNotify:
		// We are the primary: no NOTIFY is taken (NSD's answer).
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeRefused)
		return resp
	case req.Opcode == dns.OpcodeQuery && len(req.Question) == 1 &&
		(req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR):
		return p.serveTransfer(w, req, tcp)
	}
	return nil
}

// signedBy is the name of the key that signed req, or "" when req is
// unsigned or its signature did not verify.
func (p *Primary) signedBy(w dns.ResponseWriter, req *dns.Msg) string {
	t := req.IsTsig()
	if t == nil || w.TsigStatus() != nil || !p.o.Keys.has(t.Hdr.Name) {
		return ""
	}
	return dns.CanonicalName(t.Hdr.Name)
}

// tableFor returns the name table of snap (the one the server answers from
// at that snapshot), built once per snapshot.
func (p *Primary) tableFor(snap *registry.Snapshot, ns netip.Addr) *table {
	if b := p.built.Load(); b != nil && b.snap == snap && b.ns == ns {
		return b.t
	}
	t := buildTable(snap, ns, p.o.Zones)
	p.built.Store(&builtTable{snap: snap, ns: ns, t: t})
	return t
}

// localAddr is the address w's connection arrived at: the address the
// synthesized ns.<zone> answers, as the Server's own table does.
func localAddr(w dns.ResponseWriter) netip.Addr {
	return addrOf(w.LocalAddr())
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// updateTimeout bounds one UPDATE: store writes, and waiting for the
// snapshot that shows them.
const updateTimeout = 5 * time.Second

func (p *Primary) serveUpdate(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	from := addrOf(w.RemoteAddr())
	key := p.signedBy(w, req)
	if key == "" {
		p.plog.Warn("dns update refused: not signed with a TSIG key", "from", from)
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	ctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	resp.Rcode = p.update(ctx, req, localAddr(w), key, from)
	return resp
}

// update runs one UPDATE (RFC 2136 3) and returns its RCODE.
func (p *Primary) update(ctx context.Context, req *dns.Msg, ns netip.Addr, key string, from netip.Addr) int {
	if len(req.Question) != 1 || req.Question[0].Qtype != dns.TypeSOA {
		return dns.RcodeFormatError // 3.1.1: exactly one zone, of type SOA
	}
	zq := req.Question[0]
	zoneName := dns.CanonicalName(zq.Name)
	if zq.Qclass != dns.ClassINET {
		return dns.RcodeNotAuth // we serve class IN only
	}
	log := p.log.With("zone", zoneName, "key", key, "from", from)
	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 0; ; attempt++ {
		snap := p.o.Snapshots.Current()
		if snap == nil {
			return dns.RcodeServerFailure
		}
		if !snap.HasZone(zoneName) {
			return dns.RcodeNotAuth // 3.1.2: not a zone we are authoritative for
		}
		t := p.tableFor(snap, ns)
		z := t.find(zoneName)
		if z == nil || z.name != zoneName {
			return dns.RcodeNotAuth
		}
		if rc := checkPrereqs(z, req.Answer); rc != dns.RcodeSuccess {
			return rc
		}
		batch, rc, why := planUpdate(snap, z, req.Ns)
		if rc != dns.RcodeSuccess {
			if why != "" {
				log.Warn("dns update refused", "reason", why)
			}
			return rc
		}
		if len(batch.Changes) == 0 {
			return dns.RcodeSuccess // nothing changes (3.4.2: no-ops are not errors)
		}
		if err := batch.Validate().Err(); err != nil {
			log.Warn("dns update refused", "reason", err.Error())
			return dns.RcodeRefused
		}
		rev, err := p.o.Store.ApplyChanges(ctx, zoneName, batch)
		switch {
		case err == nil:
			log.Info("dns update applied", "changes", describe(batch), "revision", rev)
			p.waitRevision(ctx, rev)
			return dns.RcodeSuccess
		case errors.Is(err, store.ErrNotFound):
			return dns.RcodeNotAuth // the zone went away meanwhile
		case errors.Is(err, store.ErrConflict) && attempt < 3:
			// Another writer changed a set we read: check again on a
			// newer snapshot.
			p.waitNewer(ctx, snap)
		default:
			log.Error("dns update failed", "err", err)
			return dns.RcodeServerFailure
		}
	}
}

// waitRevision waits (bounded by ctx) until the snapshot shows rev, so the
// client's next update or query sees what it just wrote.
func (p *Primary) waitRevision(ctx context.Context, rev int64) {
	for {
		s := p.o.Snapshots.Current()
		if s != nil && s.Revision >= rev {
			return
		}
		select {
		case <-p.o.Snapshots.Next(s):
		case <-ctx.Done():
			return
		}
	}
}

func (p *Primary) waitNewer(ctx context.Context, s *registry.Snapshot) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	select {
	case <-p.o.Snapshots.Next(s):
	case <-ctx.Done():
	}
}

func describe(b api.ChangeBatch) string {
	var parts []string
	for _, c := range b.Changes {
		parts = append(parts, c.Action+" "+c.Record.Name+" "+c.Record.Type+" "+strings.Join(c.Record.Values, ","))
	}
	return strings.Join(parts, "; ")
}

// inZone reports whether name (canonical) is zone or below it.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// rrsetOf is every record the zone holds at name of type typ: static and
// synthesized sets, and a service's whole answer pool (not one rotation).
func (z *zone) rrsetOf(name string, typ uint16) []dns.RR {
	o := z.names[name]
	if o == nil {
		return nil
	}
	rrs := o.sets[typ]
	if o.svc != nil {
		switch typ {
		case dns.TypeA:
			rrs = append(slices.Clip(rrs), o.svc.v4...)
		case dns.TypeAAAA:
			rrs = append(slices.Clip(rrs), o.svc.v6...)
		}
	}
	return rrs
}

// inUse reports whether at least one record exists at name (RFC 2136 2.4.4;
// an empty non-terminal holds none).
func (z *zone) inUse(name string) bool {
	o := z.names[name]
	if o == nil {
		return false
	}
	for _, rrs := range o.sets {
		if len(rrs) > 0 {
			return true
		}
	}
	return o.svc != nil && len(o.svc.v4)+len(o.svc.v6) > 0
}

type setKey struct {
	name string
	typ  uint16
}

// checkPrereqs checks the prerequisite section against the zone (RFC 2136
// 3.2) and returns the RCODE: NOERROR when every prerequisite holds.
func checkPrereqs(z *zone, prereqs []dns.RR) int {
	valued := map[setKey][]dns.RR{}
	var order []setKey
	for _, rr := range prereqs {
		h := rr.Header()
		if h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		name := dns.CanonicalName(h.Name)
		if !inZone(name, z.name) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if !z.inUse(name) {
					return dns.RcodeNameError
				}
			} else if len(z.rrsetOf(name, h.Rrtype)) == 0 {
				return dns.RcodeNXRrset
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if z.inUse(name) {
					return dns.RcodeYXDomain
				}
			} else if len(z.rrsetOf(name, h.Rrtype)) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassINET:
			if isMetaType(h.Rrtype) {
				return dns.RcodeFormatError
			}
			k := setKey{name, h.Rrtype}
			if _, ok := valued[k]; !ok {
				order = append(order, k)
			}
			valued[k] = append(valued[k], rr)
		default:
			return dns.RcodeFormatError
		}
	}
	for _, k := range order {
		if !sameRRset(z.rrsetOf(k.name, k.typ), valued[k]) {
			return dns.RcodeNXRrset
		}
	}
	return dns.RcodeSuccess
}

func isMetaType(t uint16) bool {
	switch t {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return true
	}
	return false
}

// sameRRset compares two sets of records by value, ignoring TTL, order and
// duplicates (RFC 2136 3.2.3).
func sameRRset(a, b []dns.RR) bool {
	has := func(set []dns.RR, rr dns.RR) bool {
		return slices.ContainsFunc(set, func(x dns.RR) bool { return dns.IsDuplicate(x, rr) })
	}
	for _, rr := range a {
		if !has(b, rr) {
			return false
		}
	}
	for _, rr := range b {
		if !has(a, rr) {
			return false
		}
	}
	return true
}

// staticTypes are the record types static record sets may have, by name;
// staticTypeList the same in a fixed order.
var (
	staticTypes = map[uint16]string{
		dns.TypeA: "A", dns.TypeAAAA: "AAAA", dns.TypeCNAME: "CNAME", dns.TypeTXT: "TXT",
		dns.TypeSRV: "SRV", dns.TypeMX: "MX", dns.TypeNS: "NS",
	}
	staticTypeList = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeNS, dns.TypeSRV, dns.TypeTXT}
)

// workSet is one static record set as an update changes it.
type workSet struct {
	ttl    uint32
	vals   []string    // canonical values, in order
	stored *api.Record // the set in the store, nil when absent
	orig   []string    // stored values, canonical
}

// planUpdate turns the update section into one change batch of whole static
// record sets (RFC 2136 3.4). A non-zero RCODE comes with a reason to log
// when it is a refusal by policy.
func planUpdate(snap *registry.Snapshot, z *zone, updates []dns.RR) (api.ChangeBatch, int, string) {
	// 3.4.1: prescan, before anything changes.
	for _, rr := range updates {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if !inZone(name, z.name) {
			return api.ChangeBatch{}, dns.RcodeNotZone, ""
		}
		switch h.Class {
		case dns.ClassINET:
			if isMetaType(h.Rrtype) || h.Rdlength == 0 {
				return api.ChangeBatch{}, dns.RcodeFormatError, ""
			}
		case dns.ClassANY:
			if h.Ttl != 0 || h.Rdlength != 0 || (isMetaType(h.Rrtype) && h.Rrtype != dns.TypeANY) {
				return api.ChangeBatch{}, dns.RcodeFormatError, ""
			}
		case dns.ClassNONE:
			if h.Ttl != 0 || isMetaType(h.Rrtype) {
				return api.ChangeBatch{}, dns.RcodeFormatError, ""
			}
		default:
			return api.ChangeBatch{}, dns.RcodeFormatError, ""
		}
	}
	// Policy: static record types only, and never a name the registry owns.
	dyn := dynamicNames(snap, z)
	for _, rr := range updates {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		apexSynth := name == z.name && (h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS)
		if h.Class == dns.ClassINET {
			if apexSynth {
				return api.ChangeBatch{}, dns.RcodeRefused, fmt.Sprintf("%s %s is synthesized by seamark", name, dns.TypeToString[h.Rrtype])
			}
			if _, ok := staticTypes[h.Rrtype]; !ok {
				return api.ChangeBatch{}, dns.RcodeRefused, fmt.Sprintf("type %s: only A, AAAA, CNAME, TXT, SRV, MX and NS records can be updated", dns.TypeToString[h.Rrtype])
			}
		}
		if name != z.name && dyn(name) {
			return api.ChangeBatch{}, dns.RcodeRefused, fmt.Sprintf("%s is owned by the registry (a service, node or balancer name); change it through the API or an agent", name)
		}
		if !isRecordName(name) {
			return api.ChangeBatch{}, dns.RcodeRefused, fmt.Sprintf("%q is not a name static records can have", name)
		}
	}

	static := staticIndex(snap, z)
	work := map[setKey]*workSet{}
	var order []setKey
	get := func(k setKey) *workSet {
		if ws, ok := work[k]; ok {
			return ws
		}
		ws := &workSet{}
		if r := static[k]; r != nil {
			ws.stored = r
			ws.ttl = ttlOf(r.TTL)
			ws.orig = canonicalValues(z.name, *r)
			ws.vals = slices.Clone(ws.orig)
		}
		work[k] = ws
		order = append(order, k)
		return ws
	}
	// otherData reports whether name holds anything but a CNAME (for the
	// CNAME rules of 3.4.2.2); the apex always does (SOA, NS).
	otherData := func(name string) bool {
		if name == z.name {
			return true
		}
		for _, typ := range staticTypeList {
			if typ != dns.TypeCNAME && len(get(setKey{name, typ}).vals) > 0 {
				return true
			}
		}
		return false
	}
	// 3.4.2: apply in order.
	for _, rr := range updates {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		apexSynth := name == z.name && (h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS)
		switch h.Class {
		case dns.ClassINET:
			val, ok := rrValue(rr)
			if !ok {
				return api.ChangeBatch{}, dns.RcodeFormatError, ""
			}
			ws := get(setKey{name, h.Rrtype})
			if h.Rrtype == dns.TypeCNAME {
				if otherData(name) {
					continue // 3.4.2.2: a CNAME beside other data is ignored
				}
				ws.vals, ws.ttl = []string{val}, h.Ttl
				continue
			}
			if len(get(setKey{name, dns.TypeCNAME}).vals) > 0 {
				continue // 3.4.2.2: other data beside a CNAME is ignored
			}
			if !slices.Contains(ws.vals, val) {
				ws.vals = append(ws.vals, val)
			}
			ws.ttl = h.Ttl // the set has one TTL: the last one given
		case dns.ClassANY:
			if h.Rrtype == dns.TypeANY {
				for _, typ := range staticTypeList {
					if name == z.name && typ == dns.TypeNS {
						continue // 3.4.2.3: the apex keeps its NS
					}
					get(setKey{name, typ}).vals = nil
				}
				continue
			}
			if apexSynth {
				continue // 3.4.2.3: SOA and apex NS are not deleted
			}
			if _, ok := staticTypes[h.Rrtype]; ok {
				get(setKey{name, h.Rrtype}).vals = nil
			}
		case dns.ClassNONE:
			if apexSynth {
				continue // 3.4.2.4: SOA and apex NS are not deleted
			}
			if _, ok := staticTypes[h.Rrtype]; !ok {
				continue // nothing of that type can exist here
			}
			val, ok := rrValue(rr)
			if !ok {
				continue
			}
			ws := get(setKey{name, h.Rrtype})
			ws.vals = slices.DeleteFunc(ws.vals, func(v string) bool { return v == val })
		}
	}
	// Whole sets, guarded: a set that was read is deleted with the values
	// read, which fails the batch if another writer changed it meanwhile.
	var b api.ChangeBatch
	b.Comment = "dns update"
	for _, k := range order {
		ws := work[k]
		typ := staticTypes[k.typ]
		if ws.stored != nil && sameValues(ws.orig, ws.vals) && ws.ttl == ttlOf(ws.stored.TTL) {
			continue
		}
		if ws.stored == nil && len(ws.vals) == 0 {
			continue
		}
		if ws.stored != nil {
			b.Changes = append(b.Changes, api.Change{Action: api.ActionDelete,
				Record: api.Record{Name: k.name, Type: typ, Values: ws.stored.Values}})
		}
		if len(ws.vals) > 0 {
			ttl := min(max(ws.ttl, 1), 7*24*3600)
			b.Changes = append(b.Changes, api.Change{Action: api.ActionCreate,
				Record: api.Record{Name: k.name, Type: typ, TTL: api.Duration(time.Duration(ttl) * time.Second), Values: ws.vals}})
		}
	}
	return b, dns.RcodeSuccess, ""
}

func sameValues(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// dynamicNames returns whether a name of z is owned by the registry: a
// service name and its SRV name, anything under node.<zone>, a balancer
// group or member, ns.<zone>, or any name holding a record that is not
// static.
func dynamicNames(snap *registry.Snapshot, z *zone) func(string) bool {
	owned := map[string]bool{"ns." + z.name: true, "node." + z.name: true}
	for _, v := range snap.Services() {
		n := strings.ToLower(v.Service.Name)
		owned[n+"."+z.name] = true
		owned["_"+n+"._tcp."+z.name] = true
	}
	for _, g := range snap.Groups() {
		owned[strings.ToLower(g.Name)+"."+z.name] = true
		for _, m := range g.Members {
			owned[strings.ToLower(m.Name)+"."+z.name] = true
		}
	}
	static := map[setKey]bool{}
	if zr := snap.Records(z.name); zr != nil {
		for _, r := range zr.Sets {
			static[setKey{dns.CanonicalName(r.Name), dns.StringToType[r.Type]}] = true
		}
	}
	return func(name string) bool {
		if owned[name] || strings.HasSuffix(name, ".node."+z.name) {
			return true
		}
		o := z.names[name]
		if o == nil {
			return false
		}
		if o.svc != nil {
			return true
		}
		for typ, rrs := range o.sets {
			if len(rrs) > 0 && !static[setKey{name, typ}] {
				return true
			}
		}
		return false
	}
}

// isRecordName reports whether name is made of labels a static record name
// may have (letters, digits, '-', '_', and '*').
func isRecordName(name string) bool {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
				return false
			}
		}
	}
	return true
}

// staticIndex maps every static record set of z by name and type.
func staticIndex(snap *registry.Snapshot, z *zone) map[setKey]*api.Record {
	out := map[setKey]*api.Record{}
	if zr := snap.Records(z.name); zr != nil {
		for i := range zr.Sets {
			r := &zr.Sets[i]
			out[setKey{dns.CanonicalName(r.Name), dns.StringToType[r.Type]}] = r
		}
	}
	return out
}

// canonicalValues returns a stored set's values in the form rrValue gives,
// parsed the way the name table parses them.
func canonicalValues(zoneName string, r api.Record) []string {
	scratch := &zone{name: zoneName, names: map[string]*owner{}}
	scratch.addStatic(r)
	var out []string
	for _, o := range scratch.names {
		for _, rrs := range o.sets {
			for _, rr := range rrs {
				if v, ok := rrValue(rr); ok {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// rrValue is a record's data as a static record value (api.Record.Values),
// names absolute and lower case.
func rrValue(rr dns.RR) (string, bool) {
	switch v := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(v.A)
		if !ok {
			return "", false
		}
		a = a.Unmap()
		return a.String(), a.Is4()
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(v.AAAA)
		if !ok || !a.Is6() {
			return "", false
		}
		return a.String(), true
	case *dns.CNAME:
		return dns.CanonicalName(v.Target), true
	case *dns.NS:
		return dns.CanonicalName(v.Ns), true
	case *dns.MX:
		return strconv.Itoa(int(v.Preference)) + " " + dns.CanonicalName(v.Mx), true
	case *dns.SRV:
		return fmt.Sprintf("%d %d %d %s", v.Priority, v.Weight, v.Port, dns.CanonicalName(v.Target)), true
	case *dns.TXT:
		var sb strings.Builder
		for _, s := range v.Txt {
			sb.WriteString(unescapeTXT(s))
		}
		return sb.String(), true
	}
	return "", false
}

// unescapeTXT turns miekg's presentation form of a character-string (\"
// and \DDD escapes) back into its bytes.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n <= 255 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
