package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits of what the API and the config file accept (docs/api.md,
// "Limits"). They keep every stored object small enough that the whole store
// always loads (it is read in pages) and one write always fits one store
// request.
const (
	// MaxBodySize is the largest request body the API reads (413 beyond).
	MaxBodySize = 1 << 20
	// MaxObjectSize is the largest service, node, record set, listener or
	// group, as JSON.
	MaxObjectSize = 64 << 10
	// MaxTags is the most tags of one node; MaxTagKeyLen and
	// MaxTagValueLen bound each key and value, in bytes.
	MaxTags        = 64
	MaxTagKeyLen   = 128
	MaxTagValueLen = 4 << 10
	// MaxAlternates is the most alternate addresses of one node.
	MaxAlternates = 16
	// MaxRecordValues is the most values of one record set;
	// MaxRecordValueLen bounds each value, in bytes.
	MaxRecordValues   = 100
	MaxRecordValueLen = 4000
	// MaxBatchChanges is the most changes of one change batch.
	MaxBatchChanges = 1000
	// MaxGroupMembers and MaxGroupTracks bound a balancer group.
	MaxGroupMembers = 64
	MaxGroupTracks  = 32
)

// checkSize reports an object whose JSON is larger than MaxObjectSize.
func (c *collector) checkSize(what string, v any) {
	b, err := json.Marshal(v)
	if err == nil && len(b) > MaxObjectSize {
		c.add("", "the %s is %d bytes as JSON; at most %d (MaxObjectSize, docs/api.md)", what, len(b), MaxObjectSize)
	}
}

// FieldError is one problem with one field, named by its path
// ("check.interval", "members[1].priority").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrors is every problem found in one object.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Err returns es as an error, or nil when it is empty.
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Prefix returns es with every path put under prefix.
func (es FieldErrors) Prefix(prefix string) FieldErrors {
	out := make(FieldErrors, len(es))
	for i, e := range es {
		out[i] = FieldError{Path: joinPath(prefix, e.Path), Msg: e.Msg}
	}
	return out
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

// AsFieldErrors returns the FieldErrors in err, if any.
func AsFieldErrors(err error) (FieldErrors, bool) {
	var fe FieldErrors
	ok := errors.As(err, &fe)
	return fe, ok
}

type collector struct{ errs FieldErrors }

func (c *collector) add(path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) addAll(prefix string, es FieldErrors) {
	c.errs = append(c.errs, es.Prefix(prefix)...)
}

// CheckName reports why s is not a valid name (a DNS label: lower-case letters,
// digits and '-', starting with a letter or digit, at most 63 characters), or "".
func CheckName(s string) string {
	if s == "" {
		return "is empty; give it a name"
	}
	if len(s) > 63 {
		return fmt.Sprintf("%q is longer than 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Sprintf("%q is not a valid name: use lower-case letters, digits and '-' (not first or last)", s)
		}
	}
	return ""
}

func (c *collector) name(path, s string) {
	if msg := CheckName(s); msg != "" {
		c.add(path, "%s", msg)
	}
}

func (c *collector) port(path string, p int, optional bool) {
	if optional && p == 0 {
		return
	}
	if p < 1 || p > 65535 {
		c.add(path, "%d is not a port (1-65535)", p)
	}
}

func (c *collector) oneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// NormalizeZone returns zone lower-cased and fully qualified ("example.com.").
func NormalizeZone(zone string) (string, error) {
	z := strings.ToLower(strings.TrimSpace(zone))
	if z == "" || z == "." {
		return "", fmt.Errorf("%q is not a zone name; write it like \"cluster.example.com\"", zone)
	}
	z = strings.TrimSuffix(z, ".")
	for _, label := range strings.Split(z, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a zone name: empty or over-long label", zone)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return "", fmt.Errorf("%q is not a zone name: %q is not allowed", zone, ch)
			}
		}
	}
	if len(z) > 253 {
		return "", fmt.Errorf("%q is not a zone name: longer than 253 characters", zone)
	}
	return z + ".", nil
}

// DefaultReplicas and MaxReplicas bound Check.Replicas.
const (
	DefaultReplicas = 3
	MaxReplicas     = 16
)

// Owners is how many checkers own each node of the check: Replicas, or
// DefaultReplicas for a check stored before replicas existed.
func (c Check) Owners() int {
	if c.Replicas <= 0 {
		return DefaultReplicas
	}
	return min(c.Replicas, MaxReplicas)
}

// SetDefaults fills every unset field of c with its default.
func (c *Check) SetDefaults() {
	if c.Type == "" {
		c.Type = CheckTCP
	}
	if c.Interval == 0 {
		c.Interval = Duration(time.Second)
	}
	if c.Timeout == 0 {
		c.Timeout = min(Duration(time.Second), c.Interval)
	}
	if c.FastInterval == 0 {
		c.FastInterval = c.Interval
	}
	if c.DownInterval == 0 {
		c.DownInterval = c.Interval
	}
	if c.Rise == 0 {
		c.Rise = 2
	}
	if c.Fall == 0 {
		c.Fall = 2
	}
	if c.Initial == "" {
		c.Initial = StateUnhealthy
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if (c.Type == CheckHTTP || c.Type == CheckHTTPS) && c.Method == "" {
		c.Method = "GET"
	}
	if (c.Type == CheckHTTP || c.Type == CheckHTTPS) && c.Path == "" {
		c.Path = "/"
	}
	if (c.Type == CheckHTTP || c.Type == CheckHTTPS) && c.ExpectStatus == "" {
		c.ExpectStatus = "200-399"
	}
}

// Validate reports every problem with c (after SetDefaults).
func (c Check) Validate() FieldErrors {
	var v collector
	v.oneOf("type", c.Type, CheckTCP, CheckHTTP, CheckHTTPS, CheckTLS, CheckNone)
	if c.Interval < Duration(10*time.Millisecond) {
		v.add("interval", "%s is too short (at least 10ms)", c.Interval)
	}
	if c.Timeout > c.Interval {
		v.add("timeout", "%s is longer than the interval %s; a probe must end before the next starts", c.Timeout, c.Interval)
	}
	if c.FastInterval < Duration(10*time.Millisecond) {
		v.add("fast_interval", "%s is too short (at least 10ms)", c.FastInterval)
	}
	if c.DownInterval < Duration(10*time.Millisecond) {
		v.add("down_interval", "%s is too short (at least 10ms)", c.DownInterval)
	}
	if c.Rise < 1 || c.Rise > 100 {
		v.add("rise", "%d is out of range (1-100)", c.Rise)
	}
	if c.Fall < 1 || c.Fall > 100 {
		v.add("fall", "%d is out of range (1-100)", c.Fall)
	}
	v.oneOf("initial", string(c.Initial), string(StateHealthy), string(StateUnhealthy))
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		v.add("replicas", "%d is out of range (1-%d)", c.Replicas, MaxReplicas)
	}
	if c.Address != "" {
		if _, err := netip.ParseAddrPort(c.Address); err != nil {
			v.add("address", "%q is not an address:port like \"127.0.0.1:9400\"", c.Address)
		}
	}
	if c.Type == CheckHTTP || c.Type == CheckHTTPS {
		if !strings.HasPrefix(c.Path, "/") {
			v.add("path", "%q must start with '/'", c.Path)
		}
		if _, _, err := ParseStatusRange(c.ExpectStatus); err != nil {
			v.add("expect_status", "%v", err)
		}
	}
	return v.errs
}

// ParseStatusRange reads "200-399" or "200".
func ParseStatusRange(s string) (lo, hi int, err error) {
	a, b, found := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := lo, error(nil)
	if found {
		hi, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not a status range like \"200-399\"", s)
	}
	return lo, hi, nil
}

// SetDefaults fills every unset field of p with its default.
func (p *AnswerPolicy) SetDefaults() {
	if p.Policy == "" {
		p.Policy = PolicyAll
	}
	if p.MaxAnswers == 0 {
		p.MaxAnswers = 8
	}
	if p.TTL == 0 {
		p.TTL = Duration(5 * time.Second)
	}
	if p.WhenNoneHealthy == "" {
		p.WhenNoneHealthy = NoneHealthyFailOpen
	}
}

// Validate reports every problem with p (after SetDefaults).
func (p AnswerPolicy) Validate() FieldErrors {
	var v collector
	v.oneOf("policy", p.Policy, PolicyAll, PolicyWeighted)
	if p.MaxAnswers < 1 || p.MaxAnswers > 64 {
		v.add("max_answers", "%d is out of range (1-64)", p.MaxAnswers)
	}
	if p.TTL < Duration(time.Second) || p.TTL > Duration(24*time.Hour) || p.TTL%Duration(time.Second) != 0 {
		v.add("ttl", "%s must be whole seconds from 1s to 24h", p.TTL)
	}
	v.oneOf("when_none_healthy", p.WhenNoneHealthy, NoneHealthyFailOpen, NoneHealthyEmpty)
	return v.errs
}

// MaxCandidates is the most addresses a service's candidate pool may hold.
const MaxCandidates = 1 << 16

// SetDefaults fills every unset field of s with its default.
func (s *Service) SetDefaults() {
	s.Check.SetDefaults()
	s.Answers.SetDefaults()
}

// Validate reports every problem with s (after SetDefaults).
func (s Service) Validate() FieldErrors {
	var v collector
	v.name("name", s.Name)
	v.port("port", s.Port, false)
	v.addAll("check", s.Check.Validate())
	v.addAll("answers", s.Answers.Validate())
	total := 0
	for i, c := range s.Candidates {
		n, err := CandidateSize(c)
		if err != nil {
			v.add(fmt.Sprintf("candidates[%d]", i), "%v", err)
			continue
		}
		total += n
	}
	if total > MaxCandidates {
		v.add("candidates", "%d addresses in total; at most %d (a /16) may be probed", total, MaxCandidates)
	}
	v.checkSize("service", s)
	return v.errs
}

// CandidateSize returns how many addresses a candidate entry (an address or a
// CIDR prefix) stands for.
func CandidateSize(c string) (int, error) {
	if a, err := netip.ParseAddr(c); err == nil {
		if a.Zone() != "" {
			return 0, fmt.Errorf("%q: zones are not allowed", c)
		}
		return 1, nil
	}
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return 0, fmt.Errorf("%q is neither an address nor a CIDR prefix like \"10.0.1.0/27\"", c)
	}
	if p.Masked() != p {
		return 0, fmt.Errorf("%q has host bits set; did you mean %q?", c, p.Masked().String())
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits > 16 {
		return 0, fmt.Errorf("%q is larger than a /16 of addresses", c)
	}
	return 1 << hostBits, nil
}

// SetDefaults fills every unset field of n with its default.
func (n *Node) SetDefaults() {
	if n.Weight == 0 {
		n.Weight = 1
	}
	if n.State == "" {
		n.State = StateHealthy
	}
}

// Validate reports every problem with n (after SetDefaults).
func (n Node) Validate() FieldErrors {
	var v collector
	v.name("id", n.ID)
	if !n.Address.IsValid() {
		v.add("address", "is missing; give the address clients must use, like \"10.0.1.5\"")
	} else if n.Address.IsUnspecified() || n.Address.IsMulticast() {
		v.add("address", "%s cannot be dialled; give the node's own address", n.Address)
	}
	if len(n.Alternates) > MaxAlternates {
		v.add("alternates", "%d alternates; at most %d", len(n.Alternates), MaxAlternates)
	}
	if len(n.Tags) > MaxTags {
		v.add("tags", "%d tags; at most %d", len(n.Tags), MaxTags)
	}
	for k, val := range n.Tags {
		if k == "" || len(k) > MaxTagKeyLen {
			v.add("tags", "key %.40q is %d bytes; a key has 1 to %d", k, len(k), MaxTagKeyLen)
		}
		if len(val) > MaxTagValueLen {
			v.add("tags."+k, "is %d bytes; at most %d", len(val), MaxTagValueLen)
		}
	}
	for i, a := range n.Alternates {
		p := fmt.Sprintf("alternates[%d]", i)
		v.name(p+".label", a.Label)
		if !a.Address.IsValid() {
			v.add(p+".address", "is missing")
		}
	}
	v.port("port", n.Port, true)
	if n.Weight < 1 || n.Weight > 1000 {
		v.add("weight", "%d is out of range (1-1000)", n.Weight)
	}
	v.oneOf("state", string(n.State), string(StateHealthy), string(StateUnhealthy), string(StateDraining), string(StateMaintenance))
	if n.TTL != 0 && (n.TTL < Duration(time.Second) || n.TTL > Duration(24*time.Hour)) {
		v.add("ttl", "%s is out of range (1s to 24h, or unset for no lease)", n.TTL)
	}
	if len(v.errs) == 0 {
		v.checkSize("node", n)
	}
	return v.errs
}

// Record types a static record set may have.
var RecordTypes = []string{"A", "AAAA", "CNAME", "TXT", "SRV", "MX", "NS"}

// SetDefaults fills every unset field of r with its default.
func (r *Record) SetDefaults() {
	r.Type = strings.ToUpper(r.Type)
	if r.TTL == 0 {
		r.TTL = Duration(60 * time.Second)
	}
}

// Validate reports every problem with r (after SetDefaults). The name is checked
// against its zone by the server.
func (r Record) Validate() FieldErrors {
	var v collector
	if r.Name == "" {
		v.add("name", "is empty; use \"@\" for the zone apex")
	}
	v.oneOf("type", r.Type, RecordTypes...)
	if r.TTL < Duration(time.Second) || r.TTL%Duration(time.Second) != 0 || r.TTL > Duration(7*24*time.Hour) {
		v.add("ttl", "%s must be whole seconds from 1s to 7 days", r.TTL)
	}
	if len(r.Values) == 0 {
		v.add("values", "is empty; a record set needs at least one value")
	}
	if len(r.Values) > MaxRecordValues {
		v.add("values", "%d values; at most %d in one record set", len(r.Values), MaxRecordValues)
	}
	if r.Type == "CNAME" && len(r.Values) > 1 {
		v.add("values", "a CNAME has exactly one value, got %d", len(r.Values))
	}
	for i, val := range r.Values {
		if len(val) > MaxRecordValueLen {
			v.add(fmt.Sprintf("values[%d]", i), "is %d bytes; at most %d", len(val), MaxRecordValueLen)
			continue
		}
		if msg := checkRecordValue(r.Type, val); msg != "" {
			v.add(fmt.Sprintf("values[%d]", i), "%s", msg)
		}
	}
	if len(v.errs) == 0 {
		v.checkSize("record set", r)
	}
	return v.errs
}

func checkRecordValue(typ, val string) string {
	switch typ {
	case "A":
		if a, err := netip.ParseAddr(val); err != nil || !a.Is4() {
			return fmt.Sprintf("%q is not an IPv4 address", val)
		}
	case "AAAA":
		if a, err := netip.ParseAddr(val); err != nil || !a.Is6() || a.Is4In6() {
			return fmt.Sprintf("%q is not an IPv6 address", val)
		}
	case "CNAME", "NS":
		if !isHostname(val) {
			return fmt.Sprintf("%q is not a host name", val)
		}
	case "MX":
		f := strings.Fields(val)
		if len(f) != 2 || !isUint16(f[0]) || !isHostname(f[1]) {
			return fmt.Sprintf("%q is not \"PREFERENCE HOST\" like \"10 mail.example.com.\"", val)
		}
	case "SRV":
		f := strings.Fields(val)
		if len(f) != 4 || !isUint16(f[0]) || !isUint16(f[1]) || !isUint16(f[2]) || !isHostname(f[3]) {
			return fmt.Sprintf("%q is not \"PRIORITY WEIGHT PORT TARGET\" like \"0 5 3000 db-a.node.example.com.\"", val)
		}
	}
	return ""
}

func isUint16(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n <= 65535
}

func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
				return false
			}
		}
	}
	return true
}

// Validate reports every problem with a change batch, before anything is applied.
func (b ChangeBatch) Validate() FieldErrors {
	var v collector
	if len(b.Changes) == 0 {
		v.add("changes", "is empty; nothing to apply")
	}
	if len(b.Changes) > MaxBatchChanges {
		v.add("changes", "%d changes; at most %d in one batch", len(b.Changes), MaxBatchChanges)
	}
	for i, ch := range b.Changes {
		p := fmt.Sprintf("changes[%d]", i)
		v.oneOf(p+".action", ch.Action, ActionCreate, ActionDelete, ActionUpsert)
		r := ch.Record
		r.SetDefaults()
		if ch.Action == ActionDelete && len(r.Values) == 0 {
			// DELETE names the set by name and type; values are optional.
			r.Values = []string{"-"}
			if r.Type == "A" {
				r.Values = []string{"0.0.0.0"}
			}
		}
		if ch.Action != ActionDelete {
			v.addAll(p+".record", r.Validate())
		} else {
			if r.Name == "" {
				v.add(p+".record.name", "is empty; use \"@\" for the zone apex")
			}
			v.oneOf(p+".record.type", r.Type, RecordTypes...)
		}
	}
	return v.errs
}

// checkListenerName allows what CheckName allows plus '_': a listener name is
// a label for metrics and the API, never a DNS name.
func checkListenerName(s string) string {
	if msg := CheckName(strings.ReplaceAll(s, "_", "-")); msg != "" {
		return strings.Replace(msg, "and '-'", "'-' and '_'", 1)
	}
	return ""
}

// SetDefaults fills every unset field of l with its default.
func (l *Listener) SetDefaults() {
	if !l.Bind.IsValid() {
		l.Bind = netip.IPv4Unspecified()
	}
	if l.Balance == "" {
		l.Balance = BalanceRoundRobin
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = Duration(2 * time.Second)
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = Duration(5 * time.Minute)
	}
	if l.Retries == nil {
		r := 2
		l.Retries = &r
	}
	if l.OnBackendDown == "" {
		l.OnBackendDown = BackendDownKeep
	}
	if l.DrainTimeout == 0 {
		l.DrainTimeout = Duration(30 * time.Second)
	}
}

// Validate reports every problem with l (after SetDefaults).
func (l Listener) Validate() FieldErrors {
	var v collector
	if msg := checkListenerName(l.Name); msg != "" {
		v.add("name", "%s", msg)
	}
	switch {
	case l.Port != 0 && !l.Ports.IsZero():
		v.add("ports", "set either port or ports, not both")
	case l.Port == 0 && l.Ports.IsZero():
		v.add("port", "is missing; set port (9001) or ports (\"9100-9199\")")
	case l.Port != 0:
		v.port("port", l.Port, false)
	case l.Ports.Last-l.Ports.First >= 10000:
		v.add("ports", "%s is more than 10000 ports", l.Ports)
	}
	v.name("service", l.Service)
	if l.TargetPort != 0 {
		v.port("target_port", l.TargetPort, false)
	}
	v.oneOf("balance", l.Balance, BalanceRoundRobin, BalanceLeastConn, BalanceHash, BalanceRandom2)
	if l.MaxConns < 0 {
		v.add("max_conns", "%d is negative", l.MaxConns)
	}
	if r := l.RetryCount(); r < 0 || r > 10 {
		v.add("retries", "%d is out of range (0-10)", r)
	}
	v.oneOf("on_backend_down", l.OnBackendDown, BackendDownKeep, BackendDownCut)
	if l.ProxyProtocol != "" {
		v.oneOf("proxy_protocol", l.ProxyProtocol, "v1", "v2")
	}
	for _, f := range []struct {
		key  string
		list []netip.Prefix
	}{{"allow", l.Allow}, {"deny", l.Deny}, {"accept_proxy_from", l.AcceptProxyFrom}} {
		if len(f.list) > MaxListenerPrefixes {
			v.add(f.key, "has %d networks, more than %d", len(f.list), MaxListenerPrefixes)
		}
		for i, p := range f.list {
			if !p.IsValid() {
				v.add(fmt.Sprintf("%s[%d]", f.key, i), "is not a network like 192.0.2.0/24")
			} else if p != p.Masked() {
				v.add(fmt.Sprintf("%s[%d]", f.key, i), "%s has host bits set; write %s", p, p.Masked())
			}
		}
	}
	if len(l.AcceptProxyFrom) > 0 && !l.AcceptProxy {
		v.add("accept_proxy_from", "is set but accept_proxy is not; set accept_proxy: true or remove it")
	}
	v.checkSize("listener", l)
	return v.errs
}

// PortList returns every port l listens on.
func (l Listener) PortList() []int {
	if l.Port != 0 {
		return []int{l.Port}
	}
	ports := make([]int, 0, l.Ports.Last-l.Ports.First+1)
	for p := l.Ports.First; p <= l.Ports.Last && p > 0; p++ {
		ports = append(ports, p)
	}
	return ports
}

// SetDefaults fills every unset field of g with its default.
func (g *Group) SetDefaults() {
	if g.Mode == "" {
		g.Mode = ModeActiveStandby
	}
	if g.Preempt == nil {
		t := true
		g.Preempt = &t
	}
	if g.LeaseTTL == 0 {
		g.LeaseTTL = Duration(time.Second)
	}
	if g.ReassertInterval == 0 {
		g.ReassertInterval = Duration(30 * time.Second)
	}
	for i := range g.Track {
		g.Track[i].Check.SetDefaults()
	}
}

// Validate reports every problem with g (after SetDefaults).
func (g Group) Validate() FieldErrors {
	var v collector
	v.name("name", g.Name)
	v.oneOf("mode", g.Mode, ModeActiveStandby, ModeActiveActive)
	if len(g.Members) == 0 {
		v.add("members", "is empty; a group needs at least one member")
	}
	if len(g.Members) > MaxGroupMembers {
		v.add("members", "%d members; at most %d", len(g.Members), MaxGroupMembers)
	}
	if len(g.Track) > MaxGroupTracks {
		v.add("track", "%d tracked checks; at most %d", len(g.Track), MaxGroupTracks)
	}
	seen := map[string]int{}
	for i, m := range g.Members {
		p := fmt.Sprintf("members[%d]", i)
		v.name(p+".name", m.Name)
		if j, dup := seen[m.Name]; dup {
			v.add(p+".name", "%q is also members[%d]; member names must be unique", m.Name, j)
		}
		seen[m.Name] = i
		if !m.Address.IsValid() {
			v.add(p+".address", "is missing; give the member's own address")
		}
		if m.Priority < 1 || m.Priority > 254 {
			v.add(p+".priority", "%d is out of range (1-254)", m.Priority)
		}
	}
	for i, t := range g.Track {
		p := fmt.Sprintf("track[%d]", i)
		chk := t.Check
		if port, ok := strings.CutPrefix(chk.Address, ":"); ok {
			// ":443" probes each member's own address.
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.add(p+".check.address", "%q has no valid port; use \":443\" for each member's own address, or an address:port", chk.Address)
			}
			chk.Address = ""
		} else if chk.Type != CheckNone && chk.Address == "" {
			v.add(p+".check.address", "is missing; a tracked check needs the address:port it probes (\":443\": each member's own address)")
		}
		v.addAll(p+".check", chk.Validate())
		if t.Weight < -254 || t.Weight > 254 {
			v.add(p+".weight", "%d is out of range (-254..254; 0 makes a failing check a fault)", t.Weight)
		}
	}
	if g.LeaseTTL < Duration(time.Second) || g.LeaseTTL%Duration(time.Second) != 0 {
		v.add("lease_ttl", "%s must be whole seconds, at least 1s", g.LeaseTTL)
	}
	if g.ReassertInterval < Duration(time.Second) {
		v.add("reassert_interval", "%s is too short (at least 1s)", g.ReassertInterval)
	}
	v.checkSize("group", g)
	return v.errs
}

// CandidateID names the node a candidate address becomes when it passes its
// checks: "c-10-0-1-5" for 10.0.1.5, "c-fd00--5" for fd00::5.
func CandidateID(a netip.Addr) string {
	r := strings.NewReplacer(".", "-", ":", "-")
	return "c-" + r.Replace(a.Unmap().String())
}

// ParseCandidateID reads back the address of a CandidateID.
func ParseCandidateID(id string) (netip.Addr, bool) {
	rest, ok := strings.CutPrefix(id, "c-")
	if !ok {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(strings.ReplaceAll(rest, "-", ".")); err == nil && a.Is4() {
		return a, true
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(rest, "-", ":"))
	return a, err == nil && a.Is6()
}

// InCandidates reports whether a is one of the candidates (addresses and
// prefixes, as Service.Candidates holds them).
func InCandidates(candidates []string, a netip.Addr) bool {
	for _, c := range candidates {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a) {
			return true
		}
		if b, err := netip.ParseAddr(c); err == nil && b == a {
			return true
		}
	}
	return false
}

// ExpandCandidates lists every address of a service's candidate pool, in
// order, without duplicates. Entries that do not parse are skipped
// (Validate reports them).
func ExpandCandidates(candidates []string) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, c := range candidates {
		if n, err := CandidateSize(c); err != nil || n > MaxCandidates {
			continue
		}
		if a, err := netip.ParseAddr(c); err == nil {
			add(a)
			continue
		}
		p := netip.MustParsePrefix(c)
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			add(a)
		}
	}
	return out
}
