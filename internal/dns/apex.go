package dns

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Zone configures a zone's apex: the name servers that answer it and its
// SOA. The zero Zone is the default: one name server ns.<zone> at the
// address the server listens on, and the SOA below.
type Zone struct {
	// NS are the name servers of the zone, every server that answers it.
	// A name inside the zone gets its Addresses as A/AAAA records (glue);
	// a name outside needs none.
	NS []NameServer
	// SOA fields; zero values take the defaults.
	SOA SOA
}

// NameServer is one apex NS record and, for a name inside the zone, its
// addresses.
type NameServer struct {
	// Name is a host name, absolute ("ns1.example.net.") or relative to
	// the zone ("ns1").
	Name      string
	Addresses []netip.Addr
}

// SOA holds the zone's SOA fields (RFC 1035 3.3.13).
type SOA struct {
	// MName is the primary name server; default the first NS name.
	MName string
	// RName is the mailbox of the person responsible, as a name
	// ("hostmaster.example.com."); default hostmaster.<zone>.
	RName string
	// Refresh, Retry and Expire are what secondaries use between NOTIFYs
	// (defaults 60s, 10s, 1h); Minimum is the negative-answer TTL
	// (default 5s, RFC 2308).
	Refresh, Retry, Expire, Minimum time.Duration
}

// Defaults of the SOA timers.
const (
	DefaultSOARefresh = 60 * time.Second
	DefaultSOARetry   = 10 * time.Second
	DefaultSOAExpire  = time.Hour
	DefaultSOAMinimum = 5 * time.Second
)

// maxSOATimer bounds each SOA timer (RFC 1912 suggests weeks at most).
const maxSOATimer = 365 * 24 * time.Hour

// Check reports every problem with z, naming the field, for the zone called
// zone ("example.com."). It is the validation of the dns.zones config keys.
func (z Zone) Check(zone string) error {
	var errs []string
	add := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(z.NS) > 16 {
		add("ns: %d name servers; at most 16", len(z.NS))
	}
	seen := map[string]bool{}
	for i, ns := range z.NS {
		name, ok := absName(ns.Name, zone)
		if !ok {
			add("ns[%d].name: %q is not a host name (like \"ns1\" or \"ns1.example.net.\")", i, ns.Name)
			continue
		}
		if seen[name] {
			add("ns[%d].name: %q appears twice", i, ns.Name)
		}
		seen[name] = true
		if len(ns.Addresses) > 8 {
			add("ns[%d].addresses: %d addresses; at most 8", i, len(ns.Addresses))
		}
		inside := name == zone || strings.HasSuffix(name, "."+zone)
		if inside && len(ns.Addresses) == 0 {
			add("ns[%d].addresses: %s is inside the zone, so it needs its addresses (glue)", i, name)
		}
		for j, a := range ns.Addresses {
			if !a.IsValid() || a.IsUnspecified() {
				add("ns[%d].addresses[%d]: give a specific address, like 192.0.2.53", i, j)
			}
		}
	}
	if z.SOA.MName != "" {
		if _, ok := absName(z.SOA.MName, zone); !ok {
			add("soa.mname: %q is not a host name", z.SOA.MName)
		}
	}
	if z.SOA.RName != "" {
		if _, ok := absName(z.SOA.RName, zone); !ok || strings.Contains(z.SOA.RName, "@") {
			add("soa.rname: %q is not a mailbox as a name (write hostmaster@example.com as hostmaster.example.com.)", z.SOA.RName)
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"refresh", z.SOA.Refresh}, {"retry", z.SOA.Retry}, {"expire", z.SOA.Expire}, {"minimum", z.SOA.Minimum}} {
		if f.d < 0 || f.d > maxSOATimer || f.d%time.Second != 0 {
			add("soa.%s: %s must be whole seconds from 1s to 365 days", f.name, f.d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

// absName makes a host name absolute and lower case: relative names are
// taken inside zone.
func absName(s, zone string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "." {
		return "", false
	}
	if !strings.HasSuffix(s, ".") {
		s += "." + zone
	}
	if _, ok := dns.IsDomainName(s); !ok || len(s) > 254 {
		return "", false
	}
	for _, l := range dns.SplitDomainName(s) {
		if l == "" || strings.ContainsAny(l, " \t\\\"();@") {
			return "", false
		}
	}
	return s, true
}

func seconds(d, def time.Duration) uint32 {
	if d <= 0 {
		d = def
	}
	return uint32(d / time.Second)
}

// addApex adds the SOA, the apex NS set and the in-zone name servers'
// addresses. addr, when valid, is what the default ns.<zone> answers.
func (z *zone) addApex(cfg Zone, serial uint32, addr netip.Addr) {
	name := z.name
	servers := cfg.NS
	if len(servers) == 0 {
		servers = []NameServer{{Name: "ns." + name}}
		if addr.IsValid() && !addr.IsUnspecified() {
			servers[0].Addresses = []netip.Addr{addr}
		}
	}
	var first string
	for _, ns := range servers {
		n, ok := absName(ns.Name, name)
		if !ok {
			continue
		}
		if first == "" {
			first = n
		}
		z.add(name, &dns.NS{Hdr: hdr(name, dns.TypeNS, 60), Ns: n})
		if n == name || strings.HasSuffix(n, "."+name) {
			for _, a := range ns.Addresses {
				z.add(n, addrRR(n, a, 60))
			}
		}
	}
	mname, rname := first, "hostmaster."+name
	if m, ok := absName(cfg.SOA.MName, name); ok {
		mname = m
	}
	if r, ok := absName(cfg.SOA.RName, name); ok {
		rname = r
	}
	z.negTTL = seconds(cfg.SOA.Minimum, DefaultSOAMinimum)
	z.soa = &dns.SOA{
		Hdr: hdr(name, dns.TypeSOA, 60), Ns: mname, Mbox: rname, Serial: serial,
		Refresh: seconds(cfg.SOA.Refresh, DefaultSOARefresh), Retry: seconds(cfg.SOA.Retry, DefaultSOARetry),
		Expire: seconds(cfg.SOA.Expire, DefaultSOAExpire), Minttl: z.negTTL,
	}
	z.add(name, z.soa)
}
