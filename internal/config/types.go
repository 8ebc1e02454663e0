package config

import (
	"net/netip"

	"github.com/seamark/seamark/api"
)

// File is the desired state an operator writes: zones, services with their
// static nodes and candidate pools, listeners, balancer groups, API and DNS
// settings, and the server's own addresses. Keys are snake_case. Nodes that
// agents or the API register live beside it and are never touched by a reload.
type File struct {
	// Server holds the addresses and store settings of `seamark server`; every
	// key here has a command-line flag of the same name that overrides it.
	Server Server `json:"server"`
	// Zones are the DNS zones names are served under ("cluster.example.com").
	Zones []string `json:"zones"`
	// API configures the HTTP API.
	API API `json:"api"`
	// DNS configures the authoritative DNS server.
	DNS DNS `json:"dns"`
	// Services are the pools of nodes names lead to.
	Services []Service `json:"services"`
	// Listeners are TCP ports balanced to services.
	Listeners []api.Listener `json:"listeners"`
	// Groups are balancer groups that fail over by name.
	Groups []api.Group `json:"groups"`
	// AllowEmpty lets a reload remove every zone, service, listener or
	// group the running config has; without it such a file (often an empty
	// or truncated one) is rejected and nothing changes.
	AllowEmpty bool `json:"allow_empty"`

	// name is the file name errors are reported against; lines maps a key
	// path ("services[2].check.interval") to its line in the file.
	name  string
	lines map[string]int
}

// Server is the `server:` section.
type Server struct {
	// HTTPAddr is where the HTTP API and dashboard listen. Default 127.0.0.1:9400.
	HTTPAddr string `json:"http_addr"`
	// DNSAddr is where DNS listens, UDP and TCP. Default 127.0.0.1:9453.
	DNSAddr string `json:"dns_addr"`
	// DataDir holds the embedded store. Default ./seamark-data.
	DataDir string `json:"data_dir"`
	// EtcdEndpoints, when set, use an existing etcd cluster and start no
	// embedded store ("http://10.0.0.1:2379").
	EtcdEndpoints []string `json:"etcd_endpoints"`
	// EtcdClientAddr and EtcdPeerAddr are the embedded store's loopback
	// listeners. Defaults 127.0.0.1:9479 and 127.0.0.1:9480 (not etcd's
	// 2379/2380, so a real etcd on the same machine does not collide).
	EtcdClientAddr string `json:"etcd_client_addr"`
	EtcdPeerAddr   string `json:"etcd_peer_addr"`
	// StorePrefix is the key prefix every key lives under. Default /seamark/.
	StorePrefix string `json:"store_prefix"`
	// Name identifies this server among the servers sharing one store: its
	// health verdicts and events carry it. Default: the host name and a
	// random suffix, new at every start.
	Name string `json:"name"`
	// Balancer runs the listeners (the TCP load balancer) on this server.
	// Default true; false on servers that share the store but must not
	// open the balancer's ports.
	Balancer *bool `json:"balancer"`
	// Member, when set, makes this server the balancer group member of that
	// name: it campaigns for the active role of every group listing it.
	Member string `json:"member"`
	// TLS serves the HTTP API over https (see tls.go).
	TLS TLS `json:"tls"`
	// EtcdTLS and EtcdUsername/EtcdPasswordFile are the credentials of an
	// external etcd cluster (etcd_endpoints).
	EtcdTLS          EtcdTLS `json:"etcd_tls"`
	EtcdUsername     string  `json:"etcd_username"`
	EtcdPasswordFile string  `json:"etcd_password_file"`
	// InsecureExpose lets the server listen on a non-loopback API or
	// embedded etcd address without TLS and a token.
	InsecureExpose bool `json:"insecure_expose"`
}

// RunsBalancer reports whether this server opens the listeners.
func (s Server) RunsBalancer() bool { return s.Balancer == nil || *s.Balancer }

// Service is a service with the nodes the file declares for it.
type Service struct {
	api.Service
	// Nodes are static nodes owned by the file.
	Nodes []api.Node `json:"nodes"`
}

// API is the `api:` section.
type API struct {
	// Tokens, when any is given, are required for writes (access: write) and,
	// unless anonymous_read is true, for reads.
	Tokens []Token `json:"tokens"`
	// AnonymousRead lets requests without a token read. Default true.
	AnonymousRead *bool `json:"anonymous_read"`
	// Route53 configures the Route 53 API under /2013-04-01/ (docs/route53.md).
	Route53 Route53 `json:"route53"`
}

// Route53 is the `api.route53:` section.
type Route53 struct {
	// InsecureUnsigned lets the Route 53 API accept unsigned requests (as a
	// write token) while no api.tokens are configured. Without tokens and
	// without it, every Route 53 request is refused.
	InsecureUnsigned bool `json:"insecure_unsigned"`
}

// Token is one bearer token of the API.
type Token struct {
	// Name names the token in logs; unique among tokens.
	Name string `json:"name"`
	// SecretFile holds the token (surrounding white space is trimmed; a
	// relative path is taken from the config file's directory). Secret gives
	// it inline instead; prefer a file. Exactly one of them is required.
	SecretFile string `json:"secret_file"`
	Secret     string `json:"secret"`
	// Access is read or write.
	Access string `json:"access"`

	// secretRead is set when ReadSecrets filled Secret from SecretFile.
	secretRead bool
}

// DNS is the `dns:` section.
type DNS struct {
	// TSIGKeys sign dynamic updates and zone transfers.
	TSIGKeys []TSIGKey `json:"tsig_keys"`
	// Secondaries are sent NOTIFY on every change and may transfer the zones.
	Secondaries []netip.AddrPort `json:"secondaries"`
	// AllowTransfer lists further prefixes allowed to transfer without TSIG.
	AllowTransfer []netip.Prefix `json:"allow_transfer"`
}

// TSIGKey is a shared secret for DNS UPDATE and AXFR.
type TSIGKey struct {
	// Name is the key's name as the other server knows it ("update-key").
	Name string `json:"name"`
	// Algorithm is hmac-sha256 (default), hmac-sha512 or hmac-sha1.
	Algorithm string `json:"algorithm"`
	// SecretFile holds the base64 key; Secret gives it inline instead.
	// Exactly one of them is required.
	SecretFile string `json:"secret_file"`
	Secret     string `json:"secret"`

	// secretRead is set when ReadSecrets filled Secret from SecretFile.
	secretRead bool
}
