package config

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
)

// Validate reports every problem with f (after SetDefaults), each as an *Error
// naming the key path and, when f was read from a file, the line; the errors
// are joined in line order. It has no side effects.
func (f *File) Validate() error { return f.validate().Err() }

func (f *File) validate() errorList {
	c := &checker{f: f}
	c.server()
	c.zones()
	c.api()
	c.dns()
	c.services()
	c.listeners()
	c.groups()
	return c.errs
}

// checker collects the problems of one File.
type checker struct {
	f    *File
	errs errorList
}

func (c *checker) add(path, format string, args ...any) {
	c.errs.Add(c.f.name, c.f.line(path), path, format, args...)
}

func (c *checker) addAll(prefix string, es api.FieldErrors) {
	for _, e := range es.Prefix(prefix) {
		c.add(e.Path, "%s", e.Msg)
	}
}

func (c *checker) name(path, s string) {
	if msg := api.CheckName(s); msg != "" {
		c.add(path, "%s", msg)
	}
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	if v == "" {
		c.add(path, "is missing; set %s", orList(allowed))
		return
	}
	if !slices.Contains(allowed, v) {
		c.add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// unique reports, at path(i), every name already used at an earlier index.
type unique struct {
	c     *checker
	what  string         // "service names"
	first map[string]int // name -> first index
}

func (c *checker) unique(what string) *unique {
	return &unique{c: c, what: what, first: map[string]int{}}
}

func (u *unique) check(name, path, firstPath string, i int) {
	if name == "" {
		return
	}
	if j, dup := u.first[name]; dup {
		u.c.add(path, "%q is also %s; %s must be unique", name, fmt.Sprintf(firstPath, j), u.what)
		return
	}
	u.first[name] = i
}

func (c *checker) server() {
	s := c.f.Server
	c.hostPort("server.http_addr", s.HTTPAddr)
	c.hostPort("server.dns_addr", s.DNSAddr)
	if s.DataDir == "" {
		c.add("server.data_dir", "is empty; give the directory the embedded store lives in")
	}
	if s.Name != "" {
		if msg := api.CheckName(strings.ReplaceAll(s.Name, ".", "-")); msg != "" {
			c.add("server.name", "%s", strings.Replace(msg, "and '-'", "'-' and '.'", 1))
		}
	}
	addrs := []struct{ path, addr string }{
		{"server.http_addr", s.HTTPAddr},
		{"server.dns_addr", s.DNSAddr},
	}
	if len(s.EtcdEndpoints) == 0 {
		c.hostPort("server.etcd_client_addr", s.EtcdClientAddr)
		c.hostPort("server.etcd_peer_addr", s.EtcdPeerAddr)
		addrs = append(addrs,
			struct{ path, addr string }{"server.etcd_client_addr", s.EtcdClientAddr},
			struct{ path, addr string }{"server.etcd_peer_addr", s.EtcdPeerAddr})
	}
	for i, a := range addrs {
		for _, b := range addrs[:i] {
			if a.addr == b.addr && !strings.HasSuffix(a.addr, ":0") && a.addr != "" {
				c.add(a.path, "%q is also %s; each listens on its own address", a.addr, b.path)
				break
			}
		}
	}
	for i, e := range s.EtcdEndpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add(indexPath("server.etcd_endpoints", i), "%q is not an etcd URL like \"http://10.0.0.1:2379\"", e)
		}
	}
	c.serverTLS()
	if s.CheckerLeaseTTL < api.Duration(time.Second) || s.CheckerLeaseTTL > api.Duration(time.Minute) {
		c.add("server.checker_lease_ttl", "%s is out of range (1s to 60s)", s.CheckerLeaseTTL)
	}
	if !strings.HasPrefix(s.StorePrefix, "/") || !strings.HasSuffix(s.StorePrefix, "/") {
		c.add("server.store_prefix", "%q must start and end with '/' (like \"/seamark/\")", s.StorePrefix)
	}
}

// hostPort checks that s is host:port with a numeric port (0 picks a free one).
func (c *checker) hostPort(path, s string) {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		c.add(path, "%q is not a host:port like \"127.0.0.1:9400\"", s)
	}
}

func (c *checker) zones() {
	seen := c.unique("zones")
	for i, z := range c.f.Zones {
		p := indexPath("zones", i)
		norm, err := api.NormalizeZone(z)
		if err != nil {
			c.add(p, "%v", err)
			continue
		}
		seen.check(norm, p, "zones[%d]", i)
	}
}

func (c *checker) api() {
	names := c.unique("token names")
	for i, t := range c.f.API.Tokens {
		p := indexPath("api.tokens", i)
		c.name(p+".name", t.Name)
		names.check(t.Name, p+".name", "api.tokens[%d]", i)
		c.secret(p, t.Secret, t.SecretFile, t.secretRead, "the token")
		c.oneOf(p+".access", t.Access, "read", "register", "write")
		switch {
		case t.Access == "register" && len(t.Services) == 0:
			c.add(p+".services", "is missing; a register token needs the services its agents register into (services: [db])")
		case t.Access != "register" && len(t.Services) > 0:
			c.add(p+".services", "only a register token takes services; remove it or set access: register")
		}
		for j, s := range t.Services {
			c.name(indexPath(p+".services", j), s)
		}
	}
}

// secret checks that exactly one of secret and secret_file is given. Messages
// never quote a secret.
func (c *checker) secret(path, secret, file string, read bool, what string) {
	switch {
	case secret != "" && file != "" && !read:
		c.add(path+".secret", "set secret or secret_file, not both")
	case secret == "" && file == "":
		c.add(path+".secret_file", "is missing; give secret_file (a file holding %s) or secret", what)
	}
}

// TSIG algorithms.
var tsigAlgorithms = []string{"hmac-sha1", "hmac-sha256", "hmac-sha512"}

func (c *checker) dns() {
	d := c.f.DNS
	names := c.unique("TSIG key names")
	for i, k := range d.TSIGKeys {
		p := indexPath("dns.tsig_keys", i)
		if msg := checkKeyName(k.Name); msg != "" {
			c.add(p+".name", "%s", msg)
		}
		names.check(strings.ToLower(strings.TrimSuffix(k.Name, ".")), p+".name", "dns.tsig_keys[%d]", i)
		c.oneOf(p+".algorithm", k.Algorithm, tsigAlgorithms...)
		c.secret(p, k.Secret, k.SecretFile, k.secretRead, "the base64 key")
		if k.Secret != "" && !isBase64(k.Secret) {
			if k.secretRead {
				c.add(p+".secret_file", "%s does not hold a base64 key (make one with: openssl rand -base64 32)", k.SecretFile)
			} else {
				c.add(p+".secret", "is not valid base64 (make one with: openssl rand -base64 32)")
			}
		}
	}
	for i, a := range d.Secondaries {
		p := indexPath("dns.secondaries", i)
		switch {
		case !a.IsValid():
			c.add(p, "is missing; give an address:port like \"10.0.0.53:53\"")
		case a.Port() == 0:
			c.add(p, "%s has port 0; give the port the secondary listens on (53)", a)
		}
	}
	for i, pfx := range d.AllowTransfer {
		p := indexPath("dns.allow_transfer", i)
		switch {
		case !pfx.IsValid():
			c.add(p, "is missing; give a CIDR prefix like \"10.0.0.0/24\"")
		case pfx.Masked() != pfx:
			c.add(p, "%q has host bits set; did you mean %q?", pfx.String(), pfx.Masked().String())
		}
	}
	if d.MaxUDPSize != 0 && (d.MaxUDPSize < 512 || d.MaxUDPSize > 65535) {
		c.add("dns.max_udp_size", "%d is not from 512 to 65535 (1232 fits every path without fragments)", d.MaxUDPSize)
	}
	if d.MaxTCPConnections < 0 || d.MaxTCPConnections > 100000 {
		c.add("dns.max_tcp_connections", "%d is not from 1 to 100000", d.MaxTCPConnections)
	}
	if t := time.Duration(d.TCPIdleTimeout); t < 0 || t > time.Hour {
		c.add("dns.tcp_idle_timeout", "%s is not from 1ms to 1h (RFC 7766 suggests 10s)", t)
	}
	c.rateLimit(d.RateLimit)
	zones := c.unique("zones")
	for i, z := range d.Zones {
		c.dnsZone(indexPath("dns.zones", i), z, zones, i)
	}
}

func (c *checker) rateLimit(r DNSRateLimit) {
	const p = "dns.rate_limit"
	if r.ResponsesPerSecond < 0 || r.ResponsesPerSecond > 1000000 {
		c.add(p+".responses_per_second", "%d is not from 1 to 1000000 (to turn rate limiting off, set disabled: true)", r.ResponsesPerSecond)
	}
	if w := time.Duration(r.Window); w < 0 || w > time.Hour || w%time.Second != 0 {
		c.add(p+".window", "%s is not whole seconds from 1s to 1h", w)
	}
	if r.Slip < -1 || r.Slip > 10 {
		c.add(p+".slip", "%d is not from 1 to 10, or -1 to drop every limited answer", r.Slip)
	}
	if r.IPv4PrefixLength != 0 && (r.IPv4PrefixLength < 8 || r.IPv4PrefixLength > 32) {
		c.add(p+".ipv4_prefix_length", "%d is not from 8 to 32", r.IPv4PrefixLength)
	}
	if r.IPv6PrefixLength != 0 && (r.IPv6PrefixLength < 16 || r.IPv6PrefixLength > 128) {
		c.add(p+".ipv6_prefix_length", "%d is not from 16 to 128", r.IPv6PrefixLength)
	}
	if len(r.Exempt) > 64 {
		c.add(p+".exempt", "has %d prefixes; at most 64", len(r.Exempt))
	}
	for i, pfx := range r.Exempt {
		ip := indexPath(p+".exempt", i)
		switch {
		case !pfx.IsValid():
			c.add(ip, "is missing; give a CIDR prefix like \"10.0.0.0/24\"")
		case pfx.Masked() != pfx:
			c.add(ip, "%q has host bits set; did you mean %q?", pfx.String(), pfx.Masked().String())
		}
	}
}

// maxZoneNS bounds a zone's name servers and each one's addresses.
const (
	maxZoneNS        = 16
	maxNSAddresses   = 8
	maxSOATimer      = 365 * 24 * time.Hour
	defaultRNameHint = "hostmaster.example.com."
)

func (c *checker) dnsZone(p string, z DNSZone, zones *unique, i int) {
	zone, err := api.NormalizeZone(z.Zone)
	if err != nil {
		c.add(p+".zone", "%q is not a zone name; give one like \"cluster.example.com\"", z.Zone)
		return
	}
	zones.check(zone, p+".zone", "dns.zones[%d]", i)
	if len(z.NS) > maxZoneNS {
		c.add(p+".ns", "has %d name servers; at most %d", len(z.NS), maxZoneNS)
	}
	names := c.unique("name server names")
	for j, ns := range z.NS {
		np := indexPath(p+".ns", j)
		name, ok := absHost(ns.Name, zone)
		if !ok {
			c.add(np+".name", "%q is not a host name; give one like \"ns1\" (in the zone) or \"ns1.example.net.\"", ns.Name)
			continue
		}
		names.check(name, np+".name", p+".ns[%d]", j)
		if len(ns.Addresses) > maxNSAddresses {
			c.add(np+".addresses", "has %d addresses; at most %d", len(ns.Addresses), maxNSAddresses)
		}
		if inside := name == zone || strings.HasSuffix(name, "."+zone); inside && len(ns.Addresses) == 0 {
			c.add(np+".addresses", "is empty; %s is inside the zone, so give its addresses (served as glue)", name)
		}
		for k, a := range ns.Addresses {
			if !a.IsValid() || a.IsUnspecified() {
				c.add(indexPath(np+".addresses", k), "give a specific address, like 192.0.2.53")
			}
		}
	}
	if z.SOA.MName != "" {
		if _, ok := absHost(z.SOA.MName, zone); !ok {
			c.add(p+".soa.mname", "%q is not a host name", z.SOA.MName)
		}
	}
	if z.SOA.RName != "" {
		if _, ok := absHost(z.SOA.RName, zone); !ok || strings.Contains(z.SOA.RName, "@") {
			c.add(p+".soa.rname", "%q is not a mailbox written as a name (hostmaster@example.com is %q)", z.SOA.RName, defaultRNameHint)
		}
	}
	for _, f := range []struct {
		key string
		d   api.Duration
	}{{"refresh", z.SOA.Refresh}, {"retry", z.SOA.Retry}, {"expire", z.SOA.Expire}, {"minimum", z.SOA.Minimum}} {
		if d := time.Duration(f.d); d < 0 || d > maxSOATimer || d%time.Second != 0 {
			c.add(p+".soa."+f.key, "%s is not whole seconds from 1s to 365 days", d)
		}
	}
}

// absHost makes a host name absolute (relative names are inside zone) and
// lower case, and reports whether it is one.
func absHost(s, zone string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "." || strings.Contains(s, "@") {
		return "", false
	}
	if !strings.HasSuffix(s, ".") {
		s += "." + zone
	}
	norm, err := api.NormalizeZone(s)
	return norm, err == nil
}

// checkKeyName reports why s is not a TSIG key name (a domain name), or "".
func checkKeyName(s string) string {
	if s == "" {
		return "is empty; give the key's name, like \"update-key\""
	}
	if _, err := api.NormalizeZone(s); err != nil {
		return fmt.Sprintf("%q is not a key name: use a domain name like \"update-key\"", s)
	}
	return ""
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return err == nil
}

func (c *checker) services() {
	names := c.unique("service names")
	for i, s := range c.f.Services {
		p := indexPath("services", i)
		c.addAll(p, s.Service.Validate())
		names.check(s.Name, p+".name", "services[%d]", i)
		ids := c.unique("node IDs within a service")
		for j, n := range s.Nodes {
			np := indexPath(p+".nodes", j)
			c.addAll(np, n.Validate())
			ids.check(n.ID, np+".id", p+".nodes[%d]", j)
			if n.TTL != 0 {
				c.add(np+".ttl", "a node in the file has no lease; remove ttl (agents set it when they register)")
			}
		}
	}
}

func (c *checker) listeners() {
	names := c.unique("listener names")
	for i, l := range c.f.Listeners {
		p := indexPath("listeners", i)
		c.addAll(p, l.Validate())
		names.check(l.Name, p+".name", "listeners[%d]", i)
		if l.Service != "" && api.CheckName(l.Service) == "" && !c.hasService(l.Service) {
			c.add(p+".service", "%q is not a service in this file; %s", l.Service, c.serviceList())
		}
	}
	c.portOverlaps()
}

func (c *checker) hasService(name string) bool {
	return slices.ContainsFunc(c.f.Services, func(s Service) bool { return s.Name == name })
}

func (c *checker) serviceList() string {
	var names []string
	for _, s := range c.f.Services {
		if s.Name != "" && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return "the file declares no services"
	}
	slices.Sort(names)
	return "services are: " + strings.Join(names, ", ")
}

// span is the ports one listener takes on one bind address.
type span struct {
	i           int // index in Listeners
	first, last int
	bind        netip.Addr
}

// portOverlaps reports every listener that takes a port another listener
// before it already takes on an overlapping bind address. Listeners are swept
// in port order, so this stays fast with thousands of them.
func (c *checker) portOverlaps() {
	var spans []span
	for i, l := range c.f.Listeners {
		first, last := l.Port, l.Port
		if l.Port == 0 {
			first, last = l.Ports.First, l.Ports.Last
		}
		if (l.Port != 0 && !l.Ports.IsZero()) || first < 1 || last > 65535 || first > last {
			continue // reported by the listener's own validation
		}
		bind := l.Bind.Unmap()
		if !bind.IsValid() {
			bind = netip.IPv4Unspecified() // the default
		}
		spans = append(spans, span{i: i, first: first, last: last, bind: bind})
	}
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.i, b.i))
	})
	reported := map[int]bool{}
	var active []span
	for _, s := range spans {
		active = slices.DeleteFunc(active, func(a span) bool { return a.last < s.first })
		for _, a := range active {
			if bindsOverlap(a.bind, s.bind) {
				c.overlap(a, s, reported)
			}
		}
		active = append(active, s)
	}
}

// overlap reports the later of two overlapping listeners, once.
func (c *checker) overlap(a, b span, reported map[int]bool) {
	if a.i > b.i {
		a, b = b, a
	}
	if reported[b.i] {
		return
	}
	reported[b.i] = true
	port := max(a.first, b.first)
	l, other := c.f.Listeners[b.i], c.f.Listeners[a.i]
	where := "on " + b.bind.String()
	if a.bind != b.bind {
		where = fmt.Sprintf("on %s, which overlaps %s", a.bind, b.bind)
	}
	p := indexPath("listeners", b.i)
	if l.Port != 0 {
		c.add(p+".port", "%d is also taken by listeners[%d] (%q) %s", port, a.i, other.Name, where)
		return
	}
	c.add(p+".ports", "port %d of %s is also taken by listeners[%d] (%q) %s", port, l.Ports, a.i, other.Name, where)
}

// bindsOverlap reports whether listening on a and on b would claim the same
// port: the same address, or an unspecified one that covers the other (:: takes
// IPv4 as well on Linux).
func bindsOverlap(a, b netip.Addr) bool {
	covers := func(x, y netip.Addr) bool {
		return x.IsUnspecified() && (x.Is6() || y.Is4())
	}
	return a == b || covers(a, b) || covers(b, a)
}

func (c *checker) groups() {
	names := c.unique("group names")
	services := map[string]int{}
	for i, s := range c.f.Services {
		if _, ok := services[s.Name]; !ok && s.Name != "" {
			services[s.Name] = i
		}
	}
	groups := map[string]int{}
	for i, g := range c.f.Groups {
		if _, ok := groups[g.Name]; !ok && g.Name != "" {
			groups[g.Name] = i
		}
	}
	type owner struct {
		path string
		addr netip.Addr
	}
	members := map[string]owner{} // member name -> first member of that name in another group
	for i, g := range c.f.Groups {
		p := indexPath("groups", i)
		c.addAll(p, g.Validate())
		names.check(g.Name, p+".name", "groups[%d]", i)
		if j, ok := services[g.Name]; ok {
			c.add(p+".name", "%q is also the name of services[%d]; both would be served as %s.<zone>", g.Name, j, g.Name)
		}
		for k, m := range g.Members {
			mp := fmt.Sprintf("%s.members[%d]", p, k)
			if m.Name == "" {
				continue
			}
			if j, ok := services[m.Name]; ok {
				c.add(mp+".name", "%q is also the name of services[%d]; both would be served as %s.<zone>", m.Name, j, m.Name)
			} else if j, ok := groups[m.Name]; ok {
				c.add(mp+".name", "%q is also the name of groups[%d]; both would be served as %s.<zone>", m.Name, j, m.Name)
			} else if o, ok := members[m.Name]; ok && !strings.HasPrefix(o.path, p+".") && o.addr != m.Address {
				c.add(mp+".name", "%q is also %s with address %s; one name, %s.<zone>, cannot lead to both", m.Name, o.path, o.addr, m.Name)
			} else if !ok {
				members[m.Name] = owner{path: mp, addr: m.Address}
			}
		}
	}
}
