package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/yamlstrict"
)

// Config is what an agent is told, by flags, by a YAML file (keys as below),
// or both (flags win). Durations are written like "10s" or "500ms".
type Config struct {
	// Servers are the seamark servers' base URLs (http://10.0.0.1:9400); every
	// request tries them in turn until one answers.
	Servers []string `yaml:"servers"`
	// Token is the API bearer token; TokenFile names a file that holds it.
	Token     string `yaml:"-"`
	TokenFile string `yaml:"token_file"`
	// CAFile holds the PEM CA certificates the servers' https certificates
	// are verified against (default: the system's roots). CertFile and
	// KeyFile are the client certificate presented when a server asks for
	// one (mutual TLS).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Service is the service the node joins; it must exist on the server.
	Service string `yaml:"service"`
	// Port is the port the local service listens on and clients connect to.
	Port int `yaml:"port"`
	// ID is the node's ID (a DNS label). Empty: the ID kept in StateFile, else
	// the host name.
	ID string `yaml:"id"`
	// StateFile keeps a generated node ID across restarts. Default
	// /var/lib/seamark/node-id; "none" turns it off.
	StateFile string `yaml:"state_file"`
	// Address is the access address clients must use. When empty, the first
	// of AddressFrom that yields an address is used.
	Address string `yaml:"address"`
	// AddressFrom are address sources, tried in order: iface:NAME, url:URL,
	// route:HOST, cmd:COMMAND (or an IP address). Default: route to the first
	// server's host.
	AddressFrom []string `yaml:"address_from"`
	// IMDSTokenURL, when set, makes url: sources use the IMDSv2 token
	// exchange: a PUT here for a session token, sent with every GET.
	IMDSTokenURL string `yaml:"imds_token_url"`
	// Alternates are further addresses registered with labels, so clients
	// can pick one ("public", "private").
	Alternates []Alternate `yaml:"alternates"`
	// CheckAddr is where the local port is probed (host:port). Default: the
	// access address when it is on this machine, else 127.0.0.1, at Port.
	CheckAddr string `yaml:"check_addr"`
	// Weight and Tags are registered with the node (weight 1-1000, default 1).
	Weight int               `yaml:"weight"`
	Tags   map[string]string `yaml:"tags"`
	// TTL is the longest a node stays registered after its agent dies without
	// a word (default 10s, at least 1.5s).
	TTL api.Duration `yaml:"ttl"`
	// UnhealthyAfter is how long the port may fail to answer before the node
	// is marked unhealthy (default 5s).
	UnhealthyAfter api.Duration `yaml:"unhealthy_after"`
	// CheckInterval is how often the port is probed (default: the smaller of
	// 1s and a quarter of UnhealthyAfter).
	CheckInterval api.Duration `yaml:"check_interval"`
	// WaitTimeout bounds the wait for the port to accept connections before
	// the first registration (default 0: wait for ever).
	WaitTimeout api.Duration `yaml:"wait_timeout"`
	// BackoffMin and BackoffMax bound the retry delay while no server answers
	// (defaults 500ms and 30s); the delay doubles from min to max, with jitter.
	BackoffMin api.Duration `yaml:"backoff_min"`
	BackoffMax api.Duration `yaml:"backoff_max"`
	// IdentityAddr, when set, serves the identity endpoint (GET
	// /v1/identity) on this host:port.
	IdentityAddr string `yaml:"identity_addr"`
	// IdentityCertFile and IdentityKeyFile, when set, serve the identity
	// endpoint over TLS with this PEM certificate and key (both or neither;
	// read at start).
	IdentityCertFile string `yaml:"identity_cert_file"`
	IdentityKeyFile  string `yaml:"identity_key_file"`
	// Command, when set, is run as the agent's child (wrap mode).
	Command []string `yaml:"command"`

	file  string         // the file the config was read from
	lines map[string]int // key -> line in file
}

// Alternate is a further address of the node, found from a source.
type Alternate struct {
	Label string `yaml:"label"`
	// From is an address source, as in AddressFrom (an IP address included).
	From string `yaml:"from"`
}

// ParseAlternate reads the flag form of an alternate, LABEL=SOURCE.
func ParseAlternate(s string) (Alternate, error) {
	label, from, ok := strings.Cut(s, "=")
	if !ok {
		return Alternate{}, fmt.Errorf("--alternate %q: write LABEL=SOURCE, like public=url:http://169.254.169.254/latest/meta-data/public-ipv4", short(s))
	}
	return Alternate{Label: strings.TrimSpace(label), From: strings.TrimSpace(from)}, nil
}

// Defaults.
const (
	DefaultStateFile      = "/var/lib/seamark/node-id"
	DefaultTTL            = 10 * time.Second
	DefaultUnhealthyAfter = 5 * time.Second
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	// MinTTL is the shortest TTL the store can keep: its leases are whole
	// seconds and expired ones are swept every half second.
	MinTTL = time.Second + leaseSweep
)

// leaseSweep is how often the store (etcd) revokes expired leases.
const leaseSweep = 500 * time.Millisecond

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.StateFile == "" {
		c.StateFile = DefaultStateFile
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.TTL == 0 {
		c.TTL = api.Duration(DefaultTTL)
	}
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = api.Duration(DefaultUnhealthyAfter)
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = api.Duration(max(min(time.Second, c.UnhealthyAfter.D()/4), 10*time.Millisecond))
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = api.Duration(DefaultBackoffMin)
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = api.Duration(max(DefaultBackoffMax, c.BackoffMin.D()))
	}
}

// leaseTTL is the store lease that keeps the promise that a dead agent's node
// is gone within ttl: whole seconds, leaving room for the sweep.
func leaseTTL(ttl time.Duration) time.Duration {
	return max((ttl - leaseSweep).Truncate(time.Second), time.Second)
}

// flagOf names the command-line flag of a config key.
func flagOf(key string) string {
	switch key {
	case "servers":
		return "--server"
	case "alternates":
		return "--alternate"
	case "tags":
		return "--tag"
	case "command":
		return "the command after --"
	case "token_file":
		return "token_file"
	case "ca_file", "cert_file", "key_file":
		return "--" + strings.ReplaceAll(key, "_", "-")
	}
	return "--" + strings.ReplaceAll(key, "_", "-")
}

// SetByFlag records that key's value came from a flag, not the file, so that
// a problem with it is reported against the flag.
func (c *Config) SetByFlag(key string) {
	for p := range c.lines {
		if yamlstrict.Under(p, key) {
			delete(c.lines, p)
		}
	}
}

// InFile reports whether key was set in the config file.
func (c *Config) InFile(key string) bool {
	_, ok := c.lines[key]
	return ok
}

// problems collects what is wrong with a config, each named by where the
// value came from: "agent.yaml:4: ttl: ..." or "--ttl: ...".
type problems struct {
	c    *Config
	errs []error
}

func (p *problems) add(key, sub, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	line, ok := p.c.lines[key+sub]
	if !ok {
		line, ok = p.c.lines[key]
	}
	if ok {
		p.errs = append(p.errs, fmt.Errorf("%s:%d: %s%s: %s", p.c.file, line, key, sub, msg))
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s%s: %s", flagOf(key), sub, msg))
}

// Validate reports every problem of c (after SetDefaults), each saying what to
// change. It has no side effects.
func (c *Config) Validate() error {
	p := &problems{c: c}
	if len(c.Servers) == 0 {
		p.add("servers", "", "none given; give the seamark server URL(s), like http://10.0.0.1:9400")
	}
	for i, s := range c.Servers {
		if err := checkServerURL(s); err != nil {
			p.add("servers", fmt.Sprintf("[%d]", i), "%v", err)
		}
	}
	if (c.IdentityCertFile == "") != (c.IdentityKeyFile == "") {
		if c.IdentityCertFile == "" {
			p.add("identity_cert_file", "", "is missing; identity_key_file needs its certificate")
		} else {
			p.add("identity_key_file", "", "is missing; give the PEM key of identity_cert_file")
		}
	} else if c.IdentityCertFile != "" && c.IdentityAddr == "" {
		p.add("identity_cert_file", "", "serves the identity endpoint over TLS; set identity_addr too")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			p.add("cert_file", "", "is missing; key_file needs its certificate")
		} else {
			p.add("key_file", "", "is missing; give the PEM key of cert_file")
		}
	}
	if msg := api.CheckName(c.Service); msg != "" {
		p.add("service", "", "%s (the service this node joins)", msg)
	}
	if c.Port < 1 || c.Port > 65535 {
		p.add("port", "", "%d is not a port; give the port your service listens on (1-65535)", c.Port)
	}
	if c.ID != "" {
		if msg := api.CheckName(c.ID); msg != "" {
			p.add("id", "", "%s", msg)
		}
	}
	if c.Address != "" {
		if s, err := ParseSource(c.Address); err != nil {
			p.add("address", "", "%v", err)
		} else if s.Kind != SourceLiteral {
			p.add("address", "", "%q is not an IP address; use --address-from for %s", short(c.Address), s.Kind+": sources")
		}
	}
	for i, spec := range c.AddressFrom {
		if _, err := ParseSource(spec); err != nil {
			p.add("address_from", fmt.Sprintf("[%d]", i), "%v", err)
		}
	}
	if c.IMDSTokenURL != "" {
		if u, err := url.Parse(c.IMDSTokenURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("imds_token_url", "", "%q is not an http(s) URL like http://169.254.169.254/latest/api/token", short(c.IMDSTokenURL))
		}
	}
	labels := map[string]bool{}
	for i, a := range c.Alternates {
		sub := fmt.Sprintf("[%d]", i)
		if msg := api.CheckName(a.Label); msg != "" {
			p.add("alternates", sub+".label", "%s", msg)
		} else if labels[a.Label] {
			p.add("alternates", sub+".label", "%q is given twice", a.Label)
		}
		labels[a.Label] = true
		if _, err := ParseSource(a.From); err != nil {
			p.add("alternates", sub+".from", "%v", err)
		}
	}
	if c.CheckAddr != "" {
		if _, port, err := net.SplitHostPort(c.CheckAddr); err != nil || !isPort(port) {
			p.add("check_addr", "", "%q is not host:port, like 127.0.0.1:3000", short(c.CheckAddr))
		}
	}
	if c.Weight < 1 || c.Weight > 1000 {
		p.add("weight", "", "%d is out of range (1-1000)", c.Weight)
	}
	for k := range c.Tags {
		if k == "" {
			p.add("tags", "", "a tag has an empty name")
		}
	}
	switch ttl := c.TTL.D(); {
	case ttl < MinTTL:
		p.add("ttl", "", "%v is too short: the store's leases are whole seconds and expired ones are swept every %v, so %v is the shortest it can keep", ttl, leaseSweep, MinTTL)
	case ttl > 24*time.Hour:
		p.add("ttl", "", "%v is longer than 24h", ttl)
	}
	if c.UnhealthyAfter <= 0 {
		p.add("unhealthy_after", "", "must be more than 0")
	}
	if c.CheckInterval < api.Duration(10*time.Millisecond) {
		p.add("check_interval", "", "%v is shorter than 10ms", c.CheckInterval)
	} else if c.CheckInterval > c.UnhealthyAfter {
		p.add("check_interval", "", "%v is longer than unhealthy_after (%v); probe at least once within it", c.CheckInterval, c.UnhealthyAfter)
	}
	if c.BackoffMin < api.Duration(time.Millisecond) {
		p.add("backoff_min", "", "%v is shorter than 1ms", c.BackoffMin)
	}
	if c.BackoffMax < c.BackoffMin {
		p.add("backoff_max", "", "%v is shorter than backoff_min (%v)", c.BackoffMax, c.BackoffMin)
	}
	if c.IdentityAddr != "" {
		if _, port, err := net.SplitHostPort(c.IdentityAddr); err != nil || !isPort(port) && port != "0" {
			p.add("identity_addr", "", "%q is not host:port, like 0.0.0.0:9401", short(c.IdentityAddr))
		}
	}
	if len(c.Command) > 0 && strings.TrimSpace(c.Command[0]) == "" {
		p.add("command", "", "the program to run is empty")
	}
	return errors.Join(p.errs...)
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

// checkServerURL applies the api client's rules for a server URL.
func checkServerURL(s string) error {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not a server URL like http://127.0.0.1:9400", short(raw))
	}
	return nil
}

// LoadConfig reads a config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseConfig(path, data)
}

// maxConfig is the largest config file read.
const maxConfig = 1 << 20

// decodeOptions map an agent config file onto Config through the same
// strict decoder as the server's file, so both word their errors alike.
var decodeOptions = yamlstrict.Options{
	Tag:  "yaml",
	Root: "keys (service, port, servers ...)",
	Describe: func(t reflect.Type) string {
		if t == reflect.TypeFor[api.Duration]() {
			return `a duration (like "10s" or "500ms")`
		}
		return ""
	},
}

// ParseConfig reads a YAML config file's content; name is used in errors
// ("agent.yaml:4: ttl: ..."). Unknown keys are errors, with the key probably
// meant. Only the types are checked here: call SetDefaults and Validate next.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{file: name, lines: map[string]int{}}
	if len(data) > maxConfig {
		return nil, fmt.Errorf("%s: larger than %d bytes; is it the right file?", name, maxConfig)
	}
	r := yamlstrict.Decode(name, data, c, decodeOptions)
	if err := r.Errs.Err(); err != nil {
		return nil, err
	}
	c.lines = r.Lines
	return c, nil
}

// Sources returns the parsed access-address sources, in order (valid config only).
func (c *Config) Sources() []Source {
	var out []Source
	if c.Address != "" {
		s, _ := ParseSource(c.Address)
		out = append(out, s)
	}
	for _, spec := range c.AddressFrom {
		s, _ := ParseSource(spec)
		out = append(out, s)
	}
	if len(out) == 0 && len(c.Servers) > 0 {
		out = append(out, defaultRoute(c.Servers[0]))
	}
	return out
}

// defaultRoute is the source used when none is given: the address this
// machine reaches the first server from.
func defaultRoute(server string) Source {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	host := "127.0.0.1"
	if u, err := url.Parse(server); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	return Source{Kind: SourceRoute, Arg: host}
}
