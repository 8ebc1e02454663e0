package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Source says who owns an object. The config file owns what it declares and a
// reload may change or delete it; nothing else is ever touched by a reload.
type Source string

// Owners of objects.
const (
	SourceConfig    Source = "config"    // declared in the config file
	SourceAPI       Source = "api"       // created through the HTTP API
	SourceAgent     Source = "agent"     // registered by a seamark agent
	SourceCandidate Source = "candidate" // found by probing a service's candidate pool
)

// NodeState is the state a node's registrant reports. Health checks decide on
// top of it: a node is advertised only when its state is healthy and its checks
// pass.
type NodeState string

// Node states.
const (
	StateHealthy     NodeState = "healthy"
	StateUnhealthy   NodeState = "unhealthy"
	StateDraining    NodeState = "draining"    // no new connections or answers; existing ones run out
	StateMaintenance NodeState = "maintenance" // taken out by an operator
)

// Service is a named pool of nodes that serve on one port. It is served in DNS
// as <name>.<zone> (A/AAAA) and _<name>._tcp.<zone> (SRV).
type Service struct {
	// Name is a DNS label: lower-case letters, digits and '-', at most 63 characters.
	Name string `json:"name"`
	// Port is the port clients connect to on every node (a node may override it).
	Port int `json:"port"`
	// Check says how nodes are probed; see Check.
	Check Check `json:"check"`
	// Answers says how DNS answers for this service are formed.
	Answers AnswerPolicy `json:"answers"`
	// Candidates are addresses and CIDR prefixes that are probed; the ones that
	// pass are advertised as nodes (at most 65 536 addresses in total).
	Candidates []string `json:"candidates,omitempty"`
	// OnChange is run when a node of the service changes health: a command
	// (run with the event as JSON on stdin) or an http(s) URL (POSTed the
	// event as JSON). Failures are logged and retried with backoff.
	OnChange string `json:"on_change,omitempty"`
	// Source is set by the server: config or api.
	Source Source `json:"source,omitempty"`
}

// Check kinds.
const (
	CheckTCP   = "tcp"
	CheckHTTP  = "http"
	CheckHTTPS = "https"
	CheckTLS   = "tls"
	CheckNone  = "none"
)

// Check describes a health probe.
type Check struct {
	// Type is tcp (connect), http, https, tls (handshake) or none (trust the
	// registration). Default tcp.
	Type string `json:"type,omitempty"`
	// Interval between probes of a node whose state is settled. Default 1s.
	Interval Duration `json:"interval,omitempty"`
	// Timeout of one probe. Default 1s; at most the interval.
	Timeout Duration `json:"timeout,omitempty"`
	// FastInterval is used while a node is changing state. Default: Interval.
	FastInterval Duration `json:"fast_interval,omitempty"`
	// DownInterval is used while a node is down. Default: Interval.
	DownInterval Duration `json:"down_interval,omitempty"`
	// Rise is how many passes in a row make a node healthy. Default 2.
	Rise int `json:"rise,omitempty"`
	// Fall is how many failures in a row make a node unhealthy. Default 2.
	Fall int `json:"fall,omitempty"`
	// Initial is the state of a node before its first verdict: unhealthy
	// (default: never advertise an unchecked node) or healthy.
	Initial NodeState `json:"initial,omitempty"`
	// Replicas is how many checkers probe each node: the live seamark
	// servers are ranked per node by rendezvous hashing and the first
	// replicas of them (or every one, when fewer are live) own the node;
	// the majority of their verdicts decides (docs/health.md). Default 3;
	// 1 to 16.
	Replicas int `json:"replicas,omitempty"`
	// Address overrides the probed address (host:port); used by group tracks.
	Address string `json:"address,omitempty"`
	// Method, Path, Host, ExpectStatus and ExpectBody shape http/https probes.
	Method       string `json:"method,omitempty"`
	Path         string `json:"path,omitempty"`
	Host         string `json:"host,omitempty"`
	ExpectStatus string `json:"expect_status,omitempty"` // "200-399" (default) or "200"
	ExpectBody   string `json:"expect_body,omitempty"`
	// SNI is the server name sent by tls and https probes.
	SNI string `json:"sni,omitempty"`
}

// Answer policies.
const (
	PolicyAll      = "all"      // every healthy node, rotated per query
	PolicyWeighted = "weighted" // max_answers nodes drawn by weight
)

// What to answer when no node of a service is healthy.
const (
	NoneHealthyFailOpen = "fail_open" // answer every node, as managed DNS does
	NoneHealthyEmpty    = "empty"     // answer NODATA
)

// AnswerPolicy says how DNS answers for a service are formed.
type AnswerPolicy struct {
	Policy          string   `json:"policy,omitempty"`            // all (default) or weighted
	MaxAnswers      int      `json:"max_answers,omitempty"`       // default 8
	TTL             Duration `json:"ttl,omitempty"`               // default 5s
	WhenNoneHealthy string   `json:"when_none_healthy,omitempty"` // fail_open (default) or empty
}

// AltAddress is another address of a node, with a label clients select it by
// ("public", "private").
type AltAddress struct {
	Label   string     `json:"label"`
	Address netip.Addr `json:"address"`
}

// Node is one member of a service.
type Node struct {
	// ID is stable across restarts of the node: a DNS label.
	ID string `json:"id"`
	// Service is the service the node belongs to (taken from the URL on register).
	Service string `json:"service,omitempty"`
	// Address is the access address clients must use.
	Address netip.Addr `json:"address"`
	// Alternates are further addresses, selectable by label.
	Alternates []AltAddress `json:"alternates,omitempty"`
	// Port overrides the service's port for this node (0: the service's).
	Port int `json:"port,omitempty"`
	// Weight for weighted answers and balancing. Default 1, at most 1000.
	Weight int `json:"weight,omitempty"`
	// Tags are free-form labels.
	Tags map[string]string `json:"tags,omitempty"`
	// State is what the registrant reports. Default healthy.
	State NodeState `json:"state,omitempty"`
	// TTL, when set, puts the registration on a lease: the node disappears
	// unless renewed within TTL. At least 1s, at most 24h.
	TTL Duration `json:"ttl,omitempty"`
	// Source is set by the server: config, api, agent or candidate.
	Source Source `json:"source,omitempty"`
	// Registered is set by the server.
	Registered time.Time `json:"registered,omitzero"`

	// Healthy is computed by the server from State and the health verdicts; it
	// is ignored on writes.
	Healthy bool `json:"healthy"`
	// Lease is the store lease the registration lives on (0: none); set by the server.
	Lease int64 `json:"lease,omitempty"`
	// Checks are the live health checkers' verdicts on the node; set by the server.
	Checks []Verdict `json:"checks,omitempty"`
	// Held is true while Healthy is the state verdicts decided before and no
	// verdict counts now: the checker that owned the node is gone and the
	// new owner has not written yet (docs/health.md); set by the server.
	Held bool `json:"held,omitempty"`
	// Admin is the operator's admin state of the node (drain, maint, a
	// weight override), kept apart from the registration and never changed
	// by it; nil means ready. Set by the server from
	// PUT /v1/services/{service}/nodes/{id}/admin; ignored on writes.
	Admin *NodeAdmin `json:"admin,omitempty"`
	// RegisteredWeight is the weight the registrant gave, set by the server
	// when Admin overrides it (Weight is then the override in force).
	RegisteredWeight int `json:"registered_weight,omitempty"`
}

// PortOf returns the port clients use for n in service s.
func (n Node) PortOf(s Service) int {
	if n.Port != 0 {
		return n.Port
	}
	return s.Port
}

// Record is a static resource record set: every value of one name and type.
type Record struct {
	// Name is relative to the zone ("www", "@" for the apex) or absolute with a
	// trailing dot inside the zone.
	Name string `json:"name"`
	// Type is A, AAAA, CNAME, TXT, SRV, MX or NS.
	Type string `json:"type"`
	// TTL of the set. Default 60s.
	TTL Duration `json:"ttl,omitempty"`
	// Values in presentation format: "192.0.2.1", "10 mail.example.com.",
	// "0 5 3000 db-a.node.example.com.", "some text".
	Values []string `json:"values"`
}

// Change actions, with Route 53's meaning.
const (
	ActionCreate = "CREATE" // fails if the record set exists
	ActionDelete = "DELETE" // fails if the record set does not exist
	ActionUpsert = "UPSERT" // creates or replaces
)

// Change is one step of a ChangeBatch.
type Change struct {
	Action string `json:"action"`
	Record Record `json:"record"`
}

// ChangeBatch is applied atomically: every change or none.
type ChangeBatch struct {
	Comment string   `json:"comment,omitempty"`
	Changes []Change `json:"changes"`
}

// ChangeResult answers a ChangeBatch.
type ChangeResult struct {
	// Revision is the store revision at which the batch was applied.
	Revision int64 `json:"revision"`
	Applied  int   `json:"applied"`
}

// Zone is a DNS zone seamark is authoritative for.
type Zone struct {
	Name   string `json:"name"` // fully qualified, lower case, with a trailing dot
	Source Source `json:"source,omitempty"`
}

// PortRange is an inclusive range of ports written "9100-9199" (or "9100").
type PortRange struct{ First, Last int }

// String formats r as "first-last".
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// IsZero reports whether r is unset.
func (r PortRange) IsZero() bool { return r.First == 0 && r.Last == 0 }

// MarshalText writes r as "first-last".
func (r PortRange) MarshalText() ([]byte, error) {
	if r.IsZero() {
		return []byte(""), nil
	}
	return []byte(r.String()), nil
}

// UnmarshalText reads "9100-9199" or "9100".
func (r *PortRange) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		*r = PortRange{}
		return nil
	}
	lo, hi, found := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(lo))
	last, err2 := first, error(nil)
	if found {
		last, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%q is not a port range (write it like \"9100-9199\")", s)
	}
	if first < 1 || last > 65535 || first > last {
		return fmt.Errorf("%q is not a port range: ports go from 1 to 65535, first before last", s)
	}
	*r = PortRange{First: first, Last: last}
	return nil
}

// Balance algorithms.
const (
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceHash       = "hash"
	BalanceRandom2    = "random2"
)

// Listener is a TCP port (or range of ports) balanced to a service's healthy nodes.
type Listener struct {
	Name string `json:"name"`
	// Port, or Ports for a range ("9100-9199", one listener per port).
	Port  int       `json:"port,omitempty"`
	Ports PortRange `json:"ports,omitzero"`
	// Bind is the local address to listen on. Default 0.0.0.0.
	Bind    netip.Addr `json:"bind,omitzero"`
	Service string     `json:"service"`
	// TargetPort, when set, is the port connections go to on the nodes,
	// instead of the service's (or node's) port: a listener can front
	// another port of the same nodes, such as their agents' identity
	// endpoints.
	TargetPort int `json:"target_port,omitempty"`
	// Balance is round_robin (default), least_conn, hash or random2.
	Balance        string   `json:"balance,omitempty"`
	MaxConns       int      `json:"max_conns,omitempty"`
	ConnectTimeout Duration `json:"connect_timeout,omitempty"` // default 2s
	IdleTimeout    Duration `json:"idle_timeout,omitempty"`    // default 5m
	// Retries is how many further backends a connection tries after a
	// connect failure before the client is closed. Default 2; 0 tries one.
	Retries *int `json:"retries,omitempty"`
	// ProxyProtocol sends a PROXY header to backends: "", v1 or v2.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`
	// AcceptProxy reads a PROXY header from an upstream balancer.
	AcceptProxy bool `json:"accept_proxy,omitempty"`
	// AcceptProxyFrom are the upstream balancers whose PROXY headers are
	// believed (with AcceptProxy). A connection from anywhere else is
	// closed before a byte is read, so a client that reaches the port
	// directly cannot claim another address. Default: loopback only.
	AcceptProxyFrom []netip.Prefix `json:"accept_proxy_from,omitempty"`
	// Allow, when set, are the only client networks served; Deny are
	// networks never served (Deny wins). The client is the TCP peer, or the
	// PROXY header's source with AcceptProxy. Checked before any backend is
	// dialed; a refused client is counted in denied.
	Allow []netip.Prefix `json:"allow,omitempty"`
	Deny  []netip.Prefix `json:"deny,omitempty"`
	// Log writes one line per connection when it ends (client, backend,
	// connect and total time, bytes both ways, how it ended), like
	// HAProxy's tcplog.
	Log bool `json:"log,omitempty"`
	// DrainTimeout bounds how long a removed listener's connections (and,
	// with OnBackendDown cut, a failed backend's) may go on. Default 30s.
	DrainTimeout Duration `json:"drain_timeout,omitempty"`
	// OnBackendDown says what happens to the open connections of a backend
	// that leaves the healthy set: keep (default) lets them run to their
	// end; cut closes them after DrainTimeout.
	OnBackendDown string `json:"on_backend_down,omitempty"`
	Source        Source `json:"source,omitempty"`
}

// MaxListenerPrefixes bounds each of a listener's allow, deny and
// accept_proxy_from lists.
const MaxListenerPrefixes = 1024

// What happens to a failed backend's connections.
const (
	BackendDownKeep = "keep"
	BackendDownCut  = "cut"
)

// RetryCount is l's Retries with the default applied.
func (l Listener) RetryCount() int {
	if l.Retries == nil {
		return 2
	}
	return *l.Retries
}

// Listener states in ListenerStats.
const (
	ListenerListening = "listening"
	ListenerDraining  = "draining"
	ListenerFailed    = "failed"
)

// ListenerStats are one balancer port's live counters on one seamark server
// (GET /v1/lb).
type ListenerStats struct {
	Name    string         `json:"name"`
	Addr    netip.AddrPort `json:"addr"`
	Service string         `json:"service"`
	Balance string         `json:"balance"`
	// State is listening, draining (removed, connections still open) or
	// failed (could not bind; Error says why).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// MaxConns is the listener's cap of connections on this port (0: none).
	MaxConns int `json:"max_conns,omitempty"`
	// Paused counts the times the port stopped accepting because it was at
	// MaxConns; Queued is how many clients wait meanwhile in the kernel's
	// accept queue (the listen backlog), read when the stats are.
	Paused uint64 `json:"paused"`
	Queued int64  `json:"queued"`
	ConnStats
	// Backends are the service's current healthy nodes and any that still
	// carry connections of this port.
	Backends []BackendStats `json:"backends"`
}

// ConnStats are connection counters.
type ConnStats struct {
	Active        int64  `json:"active"`
	Total         uint64 `json:"total"`
	BytesIn       uint64 `json:"bytes_in"`  // from clients
	BytesOut      uint64 `json:"bytes_out"` // to clients
	ConnectErrors uint64 `json:"connect_errors"`
	// ConnectRefused and ConnectTimeouts are the connect errors a backend
	// refused (ECONNREFUSED) and the ones that timed out (connect_timeout);
	// the rest (unreachable, reset, a failed PROXY header write) is
	// ConnectErrors minus both.
	ConnectRefused  uint64 `json:"connect_refused"`
	ConnectTimeouts uint64 `json:"connect_timeouts"`
	// Resets counts connections that ended by a read or write error (a
	// reset, mostly) rather than a clean close.
	Resets  uint64 `json:"resets"`
	Retries uint64 `json:"retries"`
	// Refused counts clients closed because no backend could be reached.
	Refused uint64 `json:"refused"`
	// Denied counts clients closed by a listener's allow/deny lists or for
	// sending PROXY from an address not in accept_proxy_from (listeners
	// only).
	Denied uint64 `json:"denied"`
}

// Add adds o's counters to c.
func (c *ConnStats) Add(o ConnStats) {
	c.Active += o.Active
	c.Total += o.Total
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	c.ConnectErrors += o.ConnectErrors
	c.ConnectRefused += o.ConnectRefused
	c.ConnectTimeouts += o.ConnectTimeouts
	c.Resets += o.Resets
	c.Retries += o.Retries
	c.Refused += o.Refused
	c.Denied += o.Denied
}

// BackendStats are one backend's counters, summed over every port of the
// service on this server.
type BackendStats struct {
	Node    string         `json:"node"`
	Addr    netip.AddrPort `json:"addr"`
	Healthy bool           `json:"healthy"`
	Weight  int            `json:"weight"`
	// DownSince is when the balancer last saw the node leave the healthy
	// set (absent while it is healthy).
	DownSince *time.Time `json:"down_since,omitempty"`
	ConnStats
}

// Group modes.
const (
	ModeActiveStandby = "active-standby"
	ModeActiveActive  = "active-active"
)

// Member is one balancer instance of a Group.
type Member struct {
	Name     string     `json:"name"`
	Address  netip.Addr `json:"address"`
	Priority int        `json:"priority"` // 1-254, higher wins
}

// Track is a check whose failure shifts a member's priority by Weight.
type Track struct {
	Check  Check `json:"check"`
	Weight int   `json:"weight"` // -254..254
}

// Hooks are commands (or http(s) URLs) run on role changes.
type Hooks struct {
	OnActive  string `json:"on_active,omitempty"`
	OnStandby string `json:"on_standby,omitempty"`
	OnFault   string `json:"on_fault,omitempty"`
}

// Group is a set of balancer instances that back each other up under one name.
type Group struct {
	Name             string   `json:"name"`
	Mode             string   `json:"mode,omitempty"` // active-standby (default) or active-active
	Members          []Member `json:"members"`
	Track            []Track  `json:"track,omitempty"`
	Preempt          *bool    `json:"preempt,omitempty"` // default true
	PreemptDelay     Duration `json:"preempt_delay,omitempty"`
	LeaseTTL         Duration `json:"lease_ttl,omitempty"`         // default 1s
	ReassertInterval Duration `json:"reassert_interval,omitempty"` // default 30s
	// FastFailover (default true) lets the other members and the live
	// checkers end an active member's lease once a majority of them find its
	// endpoint dead, and makes the active member step down after 300 ms
	// without the store (docs/groups.md). false: only lease expiry moves the
	// role from a member that vanished.
	FastFailover *bool  `json:"fast_failover,omitempty"`
	Hooks        Hooks  `json:"hooks,omitzero"`
	Source       Source `json:"source,omitempty"`
}

// StoreStatus describes the store a server uses.
type StoreStatus struct {
	Kind        string   `json:"kind"` // embedded or external
	Endpoints   []string `json:"endpoints"`
	Revision    int64    `json:"revision"`
	Leader      string   `json:"leader"`
	ClusterID   string   `json:"cluster_id"`
	EtcdVersion string   `json:"etcd_version"`
	DBSize      int64    `json:"db_size"`
	// Available is false while the store does not answer; Error says why
	// (it did not answer, is full, its embedded etcd is restarting). DNS
	// and the balancer serve the last snapshot meanwhile and writes get
	// 503. CheckedAt is when a background probe last asked (status answers
	// from that, never from a store call of its own).
	Available bool      `json:"available"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	// Server is the name of the server that answered (its health checker's
	// ID, the ID in Checkers when it checks).
	Server    string      `json:"server,omitempty"`
	Version   string      `json:"version"`
	StartedAt time.Time   `json:"started_at"`
	Store     StoreStatus `json:"store"`
	// SnapshotRevision is the store revision the server's answers reflect.
	SnapshotRevision int64    `json:"snapshot_revision"`
	Zones            []string `json:"zones"`
	Services         int      `json:"services"`
	Nodes            int      `json:"nodes"`
	HealthyNodes     int      `json:"healthy_nodes"`
	Listeners        int      `json:"listeners"`
	Groups           int      `json:"groups"`
	// Checkers are the live health checkers (one per server that checks).
	Checkers []Checker `json:"checkers"`
	// Config is the outcome of the last config load (servers only).
	Config *ConfigStatus `json:"config,omitempty"`
}

// ConfigStatus is the outcome of the server's last config load (at start
// or on SIGHUP).
type ConfigStatus struct {
	File              string    `json:"file,omitempty"`
	LastReload        time.Time `json:"last_reload"`
	LastReloadSuccess bool      `json:"last_reload_success"`
	LastSuccess       time.Time `json:"last_success"`
	// Error says why the last reload was rejected (nothing changed then).
	Error string `json:"error,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Status  int    `json:"status"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// WriteResult answers every write.
type WriteResult struct {
	// Revision is the store revision of the write; reads with ?index= at or
	// after it see the write.
	Revision int64 `json:"revision"`
	// Lease and TTL are set when a node was registered with a ttl.
	Lease int64    `json:"lease,omitempty"`
	TTL   Duration `json:"ttl,omitempty"`
}

// IndexHeader carries the index of a read: pass it back as ?index= to block
// until something newer exists (Consul-style blocking reads).
const IndexHeader = "X-Seamark-Index"

// NextHeader carries the marker of the next page of a paged list
// (?limit=&after=): pass it back as ?after= for the page that follows. It
// is absent on the last page.
const NextHeader = "X-Seamark-Next"

// MaxPageSize is the largest ?limit= of a paged list.
const MaxPageSize = 10000

// ListenerSummary is one listener of GET /v1/lb?summary=1: its ports'
// counters summed, without per-port or per-backend lists.
type ListenerSummary struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Balance string `json:"balance"`
	// Ports counts the listener's ports; Listening, Draining and Failed
	// count them by state.
	Ports     int `json:"ports"`
	Listening int `json:"listening"`
	Draining  int `json:"draining"`
	Failed    int `json:"failed"`
	// Backends counts the distinct backends over its ports.
	Backends int `json:"backends"`
	ConnStats
}

// PortBounds returns the first and last port l listens on.
func (l Listener) PortBounds() (first, last int) {
	if l.Port != 0 {
		return l.Port, l.Port
	}
	return l.Ports.First, l.Ports.Last
}

// PortsString formats l's port or port range.
func (l Listener) PortsString() string {
	first, last := l.PortBounds()
	return PortRange{First: first, Last: last}.String()
}

// Verdict is one health checker's judgement of one node.
type Verdict struct {
	// Checker is the ID of the seamark server that probed.
	Checker string `json:"checker"`
	// State is healthy or unhealthy.
	State NodeState `json:"state"`
	// Reason of the last transition ("tcp connect: connection refused",
	// "timeout after 1s", "3 of 3 probes passed").
	Reason string `json:"reason"`
	// Since is when the checker reached this state.
	Since time.Time `json:"since"`
	// Latency of the probe that decided the state.
	Latency Duration `json:"latency"`
}

// Checker is a live health checker (one per seamark server).
type Checker struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	Version string    `json:"version,omitempty"`
	// Degraded says why the checker does not trust its own failed probes
	// now (this machine is out of descriptors, local ports or buffers):
	// they are not votes, and it keeps its previous verdicts. Empty when
	// all is well.
	Degraded string `json:"degraded,omitempty"`
}

// Event kinds.
const (
	EventHealth = "health" // a checker saw a node change state
	EventRole   = "role"   // a balancer member's role changed
	EventAudit  = "audit"  // an API write or a DNS UPDATE
)

// Event is one entry of the event log.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Service string    `json:"service,omitempty"`
	Node    string    `json:"node,omitempty"`
	Address string    `json:"address,omitempty"`
	Old     NodeState `json:"old,omitempty"`
	New     NodeState `json:"new,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Checker string    `json:"checker,omitempty"`
	// Group, Member, Role and Fencing describe a balancer member's role
	// change (kind "role").
	Group   string `json:"group,omitempty"`
	Member  string `json:"member,omitempty"`
	Role    string `json:"role,omitempty"`
	Fencing int64  `json:"fencing,omitempty"`
	// Who names who made a change: for an audited write (kind "audit")
	// and an operator's change (kind "admin"), the API token's name
	// ("anonymous" without tokens; the client's address is added for an
	// admin change) or "tsig:<key>".
	// From, Action and Result describe an audited write: the client's address, what it asked ("POST
	// /v1/services", "UPDATE cluster.test. add www A") and how it ended
	// (the HTTP status or the DNS RCODE).
	Who    string `json:"who,omitempty"`
	From   string `json:"from,omitempty"`
	Action string `json:"action,omitempty"`
	Result string `json:"result,omitempty"`
	// Revision is the store revision of the event; set by the server.
	Revision int64 `json:"revision,omitempty"`
}

// Member roles in a balancer group.
const (
	RoleActive  = "active"
	RoleStandby = "standby"
	RoleFault   = "fault"
)

// Candidacy is a balancer member's bid for its group's active role. It lives
// on the member's lease: a member that dies without a word stops counting
// when the lease expires.
type Candidacy struct {
	Group   string     `json:"group"`
	Member  string     `json:"member"`
	Address netip.Addr `json:"address"`
	// Priority is the member's base priority; Effective is Priority shifted
	// by its tracked checks (keepalived semantics), 1-254.
	Priority  int `json:"priority"`
	Effective int `json:"effective"`
	// Fault is set while the member must not be active (a tracked check of
	// weight 0 fails); Reason says which checks fail.
	Fault  bool   `json:"fault,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Role is the member's own view of its role.
	Role string `json:"role"`
	// Server is the seamark server campaigning for the member.
	Server string `json:"server,omitempty"`
	// Endpoint is that server's HTTP address, and Locality names its host
	// and network namespace: a peer in the same locality, or any peer for
	// an endpoint that is not loopback, may take a refused connection there
	// as proof the member died and end its lease at once.
	Endpoint string    `json:"endpoint,omitempty"`
	Locality string    `json:"locality,omitempty"`
	Since    time.Time `json:"since"`
	// Lease is the store lease the candidacy lives on; set by the server.
	Lease int64 `json:"lease,omitempty"`
}

// Role records the active member of an active-standby group. It lives on the
// active member's lease and is replaced only by a compare-and-swap on its
// revision, so there is never more than one.
type Role struct {
	Group   string     `json:"group"`
	Member  string     `json:"member"`
	Address netip.Addr `json:"address"`
	Since   time.Time  `json:"since"`
	// Fencing is the store revision of the claim: later claims have higher
	// ones. Set by the server.
	Fencing int64 `json:"fencing,omitempty"`
	Lease   int64 `json:"lease,omitempty"`
}

// GroupStatus is a group with its live state (GET /v1/groups).
type GroupStatus struct {
	Group
	// Active is the active member (active-standby); nil when none is.
	Active *Role `json:"active,omitempty"`
	// Candidates are the live members' candidacies, by member name.
	Candidates []Candidacy `json:"candidates"`
	// Answer is what <group>.<zone> answers now.
	Answer []netip.Addr `json:"answer"`
	// Observations are the observers' views of the active member (fast
	// failover), by observer.
	Observations []Observation `json:"observations"`
}

// FastFailoverOn reports whether the group uses fast failover (the default).
func (g *Group) FastFailoverOn() bool { return g.FastFailover == nil || *g.FastFailover }

// Observation is one observer's view of a balancer group's active member:
// a seamark server (another member or a live checker) that probes the
// member's endpoint and says whether it found it dead. It lives on the
// observer's lease. When a majority of the observations of the same holder
// say down, an observer ends the holder's lease (docs/groups.md).
type Observation struct {
	Group    string `json:"group"`
	Observer string `json:"observer"`
	// Member, Lease and Fencing name the holder observed: the active member,
	// its candidacy lease and the fencing revision of its claim.
	Member  string `json:"member"`
	Lease   int64  `json:"lease"`
	Fencing int64  `json:"fencing"`
	// Down is set once two probes in a row have failed; Reason says how the
	// last one failed.
	Down   bool      `json:"down,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// AlivePath is where a seamark server answers balancer group observers
// (fast failover): GET, 204, no body, no credentials needed. An observer
// counts any HTTP answer as alive; only a refused connection, a timeout or a
// broken connection as a failure.
const AlivePath = "/v1/alive"

// IdentityPath is where an agent's identity endpoint answers (GET, JSON).
const IdentityPath = "/v1/identity"

// Identity is what an agent's identity endpoint answers: who the node behind
// the address a client dialled really is, and the healthy peers of its
// service. A client that reached the node through a balancer or NAT sees that
// Address differs from the address it dialled and reconnects directly.
type Identity struct {
	// ID is the node's ID, stable across restarts.
	ID string `json:"id"`
	// Service is the service the node is registered in.
	Service string `json:"service"`
	// Address is the node's access address; Port its service port.
	Address netip.Addr `json:"address"`
	Port    int        `json:"port"`
	// Alternates are the node's further addresses, by label.
	Alternates []AltAddress `json:"alternates,omitempty"`
	// Peers are the service's healthy nodes (this one included) as the
	// agent last saw them from the server; empty when it could not ask.
	Peers []Node `json:"peers"`
	// Index is the store revision Peers reflect (0: unknown).
	Index int64 `json:"index,omitempty"`
}
