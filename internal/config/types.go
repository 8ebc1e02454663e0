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
	// CheckerLeaseTTL is the lease this server's health checker announces
	// itself and writes its verdicts on: when the server dies without a
	// word, the other servers take over the nodes it probed once it
	// expires (docs/health.md). Default 3s; from 1s to 60s.
	CheckerLeaseTTL api.Duration `json:"checker_lease_ttl"`
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
	// Access is read (reads only), register (an agent: register, renew and
	// deregister nodes of Services, and read) or write (everything).
	Access string `json:"access"`
	// Services are the services a register token may touch; required for
	// register, not allowed otherwise.
	Services []string `json:"services"`

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
	// MaxUDPSize caps UDP answers, in bytes: an answer is at most the
	// smaller of this and the size the client's EDNS gives (512 without
	// EDNS); larger answers are truncated and the client asks over TCP.
	// Default 1232; from 512 to 65535.
	MaxUDPSize int `json:"max_udp_size"`
	// MaxTCPConnections caps open DNS TCP connections; beyond it new ones
	// are closed at once. Default 256.
	MaxTCPConnections int `json:"max_tcp_connections"`
	// TCPIdleTimeout closes a TCP connection that sends no query for this
	// long (1s while the cap is more than 3/4 used). Default 10s.
	TCPIdleTimeout api.Duration `json:"tcp_idle_timeout"`
	// RateLimit is response rate limiting of UDP answers, on by default.
	RateLimit DNSRateLimit `json:"rate_limit"`
	// Zones set a zone's apex: the name servers that answer it and its SOA.
	// A zone not listed gets ns.<zone> at the DNS address and the default
	// SOA.
	Zones []DNSZone `json:"zones"`
}

// DNSRateLimit is the `dns.rate_limit:` section: response rate limiting as
// BIND, NSD and Knot do it. UDP answers to one source prefix for one answer
// (a name and type, a zone's negative answers, or errors) are limited to
// responses_per_second; over it most are dropped and every slip-th is sent
// empty with TC set, so a real client behind a spoofed flood retries over
// TCP, which is never limited.
type DNSRateLimit struct {
	// Disabled turns rate limiting off.
	Disabled bool `json:"disabled"`
	// ResponsesPerSecond per source prefix and answer. Default 200.
	ResponsesPerSecond int `json:"responses_per_second"`
	// Window is how long a source over the limit stays limited. Default 15s.
	Window api.Duration `json:"window"`
	// Slip: every slip-th limited answer is sent truncated instead of
	// dropped. Default 2; -1 drops every one.
	Slip int `json:"slip"`
	// IPv4PrefixLength and IPv6PrefixLength group sources. Defaults 24, 56.
	IPv4PrefixLength int `json:"ipv4_prefix_length"`
	IPv6PrefixLength int `json:"ipv6_prefix_length"`
	// Exempt sources are never limited. Default loopback (127.0.0.0/8,
	// ::1/128): a resolver on the same machine, and no one off the machine
	// can send from it. Set [] to limit loopback too.
	Exempt []netip.Prefix `json:"exempt"`
}

// DNSZone is one entry of `dns.zones:`.
type DNSZone struct {
	// Zone is the zone's name ("cluster.example.com").
	Zone string `json:"zone"`
	// NS are every server that answers the zone. A name inside the zone
	// needs its addresses (they are served as glue).
	NS []DNSNameServer `json:"ns"`
	// SOA fields; unset ones take their defaults.
	SOA DNSSOA `json:"soa"`
}

// DNSNameServer is one name server of a zone.
type DNSNameServer struct {
	// Name is absolute ("ns1.example.net.") or relative to the zone ("ns1").
	Name      string       `json:"name"`
	Addresses []netip.Addr `json:"addresses"`
}

// DNSSOA holds a zone's SOA fields.
type DNSSOA struct {
	// MName is the primary name server. Default the first NS name.
	MName string `json:"mname"`
	// RName is the responsible person's mailbox written as a name
	// (hostmaster.example.com. for hostmaster@example.com). Default
	// hostmaster.<zone>.
	RName string `json:"rname"`
	// Refresh, Retry, Expire: what secondaries use between NOTIFYs.
	// Defaults 60s, 10s, 1h.
	Refresh api.Duration `json:"refresh"`
	Retry   api.Duration `json:"retry"`
	Expire  api.Duration `json:"expire"`
	// Minimum is the TTL of negative answers (RFC 2308). Default 5s.
	Minimum api.Duration `json:"minimum"`
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
