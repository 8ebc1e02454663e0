package dns

import (
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

// absName makes a host name absolute and lower case (relative names are
// inside zone); false for an empty one. Names were validated by the config.
func absName(s, zone string) (string, bool) {
	if strings.TrimSpace(s) == "" {
		return "", false
	}
	return fqdnLast(s, zone), true
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
