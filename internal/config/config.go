package config

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/yamlstrict"
)

// Defaults of the server section.
const (
	DefaultHTTPAddr       = "127.0.0.1:9400"
	DefaultDNSAddr        = "127.0.0.1:9453"
	DefaultDataDir        = "./seamark-data"
	DefaultEtcdClientAddr = "127.0.0.1:9479"
	DefaultEtcdPeerAddr   = "127.0.0.1:9480"
	DefaultStorePrefix    = "/seamark/"
	// DefaultCheckerLeaseTTL is the health checker's lease.
	DefaultCheckerLeaseTTL = api.Duration(3 * time.Second)
)

// Default TSIG algorithm.
const DefaultTSIGAlgorithm = "hmac-sha256"

// Load reads the config file at path; see Parse. It returns a nil File only
// when the file cannot be read.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a config file (YAML, or JSON, which is YAML too), applies every
// default and validates the result. name is the file name errors are reported
// against. It always returns a File, holding what could be read; the error
// joins every problem found, each an *Error, in line order. An empty file is a
// valid, empty config.
func Parse(name string, data []byte) (*File, error) {
	f := &File{name: name}
	r := yamlstrict.Decode(name, data, f, decodeOptions)
	f.lines = r.Lines
	f.resolvePaths()
	f.SetDefaults()
	errs := r.Errs
	if r.Cut {
		return f, errs.Err() // cut short: validating half a file helps no one
	}
	bad := r.Bad
	for _, p := range r.Bad {
		if base, ok := strings.CutSuffix(p, ".ports"); ok {
			// A listener's port and ports are one choice: when ports
			// cannot be read, port is not missing too.
			bad = append(bad, base+".port")
		}
	}
	for _, e := range f.validate() {
		if !slices.ContainsFunc(bad, func(p string) bool { return under(e.Path, p) }) {
			errs = append(errs, e)
		}
	}
	return f, errs.Err()
}

// decodeOptions map the file onto the api types: keys are their json names,
// and the keys seamark fills in itself (who owns an object, a node's service,
// health and lease) are refused with a word to remove them.
var decodeOptions = yamlstrict.Options{
	Tag:  "json",
	Root: "sections (zones, services, listeners ...)",
	ServerSet: map[reflect.Type][]string{
		reflect.TypeFor[Service]():      {"source"},
		reflect.TypeFor[api.Node]():     {"service", "source", "registered", "healthy", "lease", "held"},
		reflect.TypeFor[api.Listener](): {"source"},
		reflect.TypeFor[api.Group]():    {"source"},
	},
	Describe: func(t reflect.Type) string {
		switch t {
		case reflect.TypeFor[api.Duration]():
			return `a duration (like "1s" or "500ms")`
		case reflect.TypeFor[api.PortRange]():
			return `a port range (like "9100-9199")`
		}
		return ""
	},
}

// Name returns the file name f was read from, as given to Parse or Load.
func (f *File) Name() string { return f.name }

// line returns the line of path in the file, or of the nearest enclosing key
// the file gives (a default has no line of its own), or 0.
func (f *File) line(path string) int {
	for ; path != ""; path = parentPath(path) {
		if l, ok := f.lines[path]; ok {
			return l
		}
	}
	return 0
}

// SetDefaults fills every unset value of f with its default, normalises zone
// names ("Cluster.Test" becomes "cluster.test.") and marks every object f
// declares as owned by the config file. It is safe to call more than once.
func (f *File) SetDefaults() {
	f.Server.setDefaults()
	for i, z := range f.Zones {
		if norm, err := api.NormalizeZone(z); err == nil {
			f.Zones[i] = norm
		}
	}
	if f.API.AnonymousRead == nil {
		t := true
		f.API.AnonymousRead = &t
	}
	if f.DNS.RateLimit.Exempt == nil {
		f.DNS.RateLimit.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	for i, z := range f.DNS.Zones {
		if norm, err := api.NormalizeZone(z.Zone); err == nil {
			f.DNS.Zones[i].Zone = norm
		}
	}
	for i := range f.DNS.TSIGKeys {
		if f.DNS.TSIGKeys[i].Algorithm == "" {
			f.DNS.TSIGKeys[i].Algorithm = DefaultTSIGAlgorithm
		}
	}
	for i := range f.Services {
		f.Services[i].setDefaults()
	}
	for i := range f.Listeners {
		f.Listeners[i].SetDefaults()
		f.Listeners[i].Source = api.SourceConfig
	}
	for i := range f.Groups {
		f.Groups[i].SetDefaults()
		f.Groups[i].Source = api.SourceConfig
	}
}

func (s *Server) setDefaults() {
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set(&s.HTTPAddr, DefaultHTTPAddr)
	set(&s.DNSAddr, DefaultDNSAddr)
	set(&s.DataDir, DefaultDataDir)
	set(&s.EtcdClientAddr, DefaultEtcdClientAddr)
	set(&s.EtcdPeerAddr, DefaultEtcdPeerAddr)
	set(&s.StorePrefix, DefaultStorePrefix)
	if s.CheckerLeaseTTL == 0 {
		s.CheckerLeaseTTL = DefaultCheckerLeaseTTL
	}
	s.setTLSDefaults()
}

func (s *Service) setDefaults() {
	s.Service.SetDefaults()
	s.Source = api.SourceConfig
	for i := range s.Nodes {
		s.Nodes[i].SetDefaults()
		s.Nodes[i].Service = s.Name
		s.Nodes[i].Source = api.SourceConfig
	}
}
