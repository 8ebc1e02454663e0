package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/internal/registry"
)

// Zone transfers (RFC 5936) and NOTIFY (RFC 1996): what a secondary such as
// BIND or NSD needs to serve seamark's zones beside it. The SOA serial is the
// snapshot revision, so it grows with every change.

// xfrChunk bounds the records of one transfer message (uncompressed bytes),
// well under the 64 KiB a message may hold.
const xfrChunk = 16 << 10

// serveTransfer answers AXFR and IXFR. Over TCP the whole zone is streamed
// (IXFR too: RFC 1995 4 lets a server answer with the full zone); over UDP
// IXFR gets the SOA alone, which sends the client to TCP (RFC 1995 2), and
// AXFR is refused.
func (p *Primary) serveTransfer(w dns.ResponseWriter, req *dns.Msg, tcp bool) *dns.Msg {
	q := req.Question[0]
	resp := new(dns.Msg)
	resp.SetReply(req)
	from := addrOf(w.RemoteAddr())
	zoneName := dns.CanonicalName(q.Name)
	if !tcp && q.Qtype == dns.TypeAXFR {
		resp.Rcode = dns.RcodeNotImplemented // AXFR is for TCP (RFC 5936 4.2), as NSD and Knot answer
		return resp
	}
	if !p.mayTransfer(w, req, from) {
		p.plog.Warn("zone transfer refused: not signed with a TSIG key, and not from a secondary or allow_transfer",
			"zone", zoneName, "from", from)
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	snap := p.o.Snapshots.Current()
	if snap == nil || !snap.HasZone(zoneName) || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		resp.Rcode = dns.RcodeNotAuth
		return resp
	}
	z := p.tableFor(snap, localAddr(w)).find(zoneName)
	if z == nil || z.name != zoneName {
		resp.Rcode = dns.RcodeNotAuth
		return resp
	}
	resp.Authoritative = true
	if !tcp || (q.Qtype == dns.TypeIXFR && upToDate(req, z.soa.Serial)) {
		resp.Answer = []dns.RR{z.soa}
		return resp
	}
	n, err := writeZone(w, req, z)
	if err != nil {
		p.log.Warn("zone transfer broken off", "zone", zoneName, "to", from, "err", err)
	} else {
		p.log.Debug("zone transferred", "zone", zoneName, "to", from, "serial", z.soa.Serial, "records", n)
	}
	return nil
}

// mayTransfer reports whether the client may transfer: a request signed
// with one of our keys, or a client address that is a secondary's or in
// allow_transfer.
func (p *Primary) mayTransfer(w dns.ResponseWriter, req *dns.Msg, from netip.Addr) bool {
	if p.signedBy(w, req) != "" {
		return true
	}
	if req.IsTsig() != nil || !from.IsValid() {
		return false
	}
	for _, s := range p.o.Secondaries {
		if s.Addr().Unmap() == from {
			return true
		}
	}
	for _, pfx := range p.o.AllowTransfer {
		if pfx.Contains(from) {
			return true
		}
	}
	return false
}

// upToDate reports whether an IXFR names our serial or a later one in its
// authority section (RFC 1982 serial arithmetic).
func upToDate(req *dns.Msg, serial uint32) bool {
	for _, rr := range req.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return int32(serial-soa.Serial) <= 0
		}
	}
	return false
}

// writeZone streams z: the SOA, every record set of every name, the SOA
// again; signed when the request was (every message, the later ones over
// the timers only, RFC 8945 5.3.1). It returns the records sent.
func writeZone(w dns.ResponseWriter, req *dns.Msg, z *zone) (int, error) {
	rrs := zoneRecords(z)
	t := req.IsTsig()
	first := true
	send := func(chunk []dns.RR) error {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Compress = true
		m.Answer = chunk
		ensureOPT(req, m, DefaultMaxUDPSize)
		if t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		if err := w.WriteMsg(m); err != nil {
			return err
		}
		if first {
			w.TsigTimersOnly(true)
			first = false
		}
		return nil
	}
	start, size := 0, 0
	for i, rr := range rrs {
		l := dns.Len(rr)
		if i > start && size+l > xfrChunk {
			if err := send(rrs[start:i]); err != nil {
				return 0, err
			}
			start, size = i, 0
		}
		size += l
	}
	if err := send(rrs[start:]); err != nil {
		return 0, err
	}
	return len(rrs), nil
}

// zoneRecords is every record of z in transfer order: the SOA, the apex,
// the other names in order, the SOA again. A service's A and AAAA are its
// whole answer pool, as a secondary cannot rotate or draw.
func zoneRecords(z *zone) []dns.RR {
	names := make([]string, 0, len(z.names))
	for n := range z.names {
		if n != z.name {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = append([]string{z.name}, names...)
	out := []dns.RR{z.soa}
	for _, n := range names {
		o := z.names[n]
		if o == nil {
			continue
		}
		types := make([]uint16, 0, len(o.sets)+2)
		for typ := range o.sets {
			types = append(types, typ)
		}
		if o.svc != nil {
			types = append(types, dns.TypeA, dns.TypeAAAA)
		}
		slices.Sort(types)
		types = slices.Compact(types)
		for _, typ := range types {
			if typ == dns.TypeSOA {
				continue
			}
			set := o.sets[typ]
			if o.svc != nil && (typ == dns.TypeA || typ == dns.TypeAAAA) {
				// As answers do: the service's pool when it has one.
				pool := o.svc.v4
				if typ == dns.TypeAAAA {
					pool = o.svc.v6
				}
				if len(pool) > 0 {
					set = pool
				}
			}
			out = appendUnique(out, set)
		}
	}
	return append(out, z.soa)
}

// appendUnique appends the records of set that are not already in it (two
// nodes may share an address, on different ports).
func appendUnique(out []dns.RR, set []dns.RR) []dns.RR {
	start := len(out)
	for _, rr := range set {
		if !slices.ContainsFunc(out[start:], func(x dns.RR) bool { return dns.IsDuplicate(x, rr) }) {
			out = append(out, rr)
		}
	}
	return out
}

// NOTIFY.

// notifyEvery is the least time between two rounds of NOTIFY: a burst of
// changes makes one round with the last serial.
const notifyEvery = 200 * time.Millisecond

// notifyTries are how long each try of a NOTIFY waits for the answer; the
// gaps grow, so a secondary that restarts is still told.
var notifyTries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// Run sends NOTIFY for every zone to every secondary when it starts and
// after every change, until ctx ends. Each secondary has its own sender, so
// one that does not answer delays no other.
func (p *Primary) Run(ctx context.Context) {
	if len(p.o.Secondaries) == 0 {
		return
	}
	var wg sync.WaitGroup
	kicks := make([]chan struct{}, len(p.o.Secondaries))
	for i, to := range p.o.Secondaries {
		kicks[i] = make(chan struct{}, 1)
		wg.Add(1)
		go func() { defer wg.Done(); p.notifier(ctx, to, kicks[i]) }()
	}
	defer wg.Wait()
	snap := p.o.Snapshots.Current()
	for {
		if snap != nil {
			for _, k := range kicks {
				select {
				case k <- struct{}{}:
				default: // a round is pending: it will read the newest snapshot
				}
			}
		}
		last := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-p.o.Snapshots.Next(snap):
		}
		if !sleep(ctx, notifyEvery-time.Since(last)) {
			return
		}
		snap = p.o.Snapshots.Current()
	}
}

// notifier tells one secondary about the current serial of every zone each
// time it is kicked.
func (p *Primary) notifier(ctx context.Context, to netip.AddrPort, kick <-chan struct{}) {
	sent := map[string]uint32{} // zone -> serial the secondary acknowledged
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		snap := p.o.Snapshots.Current()
		if snap == nil {
			continue
		}
		for _, zn := range snap.Zones() {
			serial := uint32(snap.Revision)
			if s, ok := sent[zn]; ok && s == serial {
				continue
			}
			soa := p.soaOf(snap, zn)
			if soa == nil {
				continue
			}
			if err := p.notify(ctx, to, zn, soa); err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Warn("secondary did not answer NOTIFY", "secondary", to.String(), "zone", zn, "serial", serial, "err", err)
				continue
			}
			sent[zn] = serial
		}
	}
}

// notify sends one NOTIFY (RFC 1996) with the zone's SOA, signed with the
// first TSIG key if there is one, and tries again while no answer comes.
func (p *Primary) notify(ctx context.Context, to netip.AddrPort, zone string, soa *dns.SOA) error {
	var lastErr error
	for _, wait := range notifyTries {
		t0 := time.Now()
		r, err := p.notifyOnce(ctx, to, zone, soa, wait)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r != nil {
			if r.Rcode != dns.RcodeSuccess || err != nil {
				p.log.Warn("secondary turned NOTIFY down", "secondary", to.String(), "zone", zone,
					"rcode", dns.RcodeToString[r.Rcode], "err", err)
			}
			return nil
		}
		lastErr = err
		// A refused port answers at once: still wait the try's time.
		if !sleep(ctx, wait-time.Since(t0)) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("notify %s: no answer after %d tries: %w", zone, len(notifyTries), lastErr)
}

func (p *Primary) notifyOnce(ctx context.Context, to netip.AddrPort, zone string, soa *dns.SOA, wait time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetNotify(zone)
	m.Answer = []dns.RR{soa}
	c := &dns.Client{Net: "udp", Timeout: wait}
	if p.o.Keys.sign(m) {
		c.TsigProvider = p.o.Keys
	}
	conn, err := c.DialContext(ctx, to.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	return r, err
}

// sleep waits d, or less if ctx ends first (false then).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// soaOf is zone's SOA at snap, from the table last built when it is of
// snap (the name server's address does not matter here).
func (p *Primary) soaOf(snap *registry.Snapshot, zone string) *dns.SOA {
	var t *table
	if b := p.built.Load(); b != nil && b.snap == snap {
		t = b.t
	} else {
		t = p.tableFor(snap, netip.Addr{})
	}
	if z := t.find(zone); z != nil && z.name == zone {
		return z.soa
	}
	return nil
}
