package ha

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Snapshots is where a member reads the registry (a *registry.Watcher).
type Snapshots interface {
	Current() *registry.Snapshot
	Next(*registry.Snapshot) <-chan struct{}
}

// Store is what a member writes through (a *store.Store).
type Store interface {
	GrantLease(ctx context.Context, ttl time.Duration) (*store.Lease, error)
	PutCandidacy(ctx context.Context, c api.Candidacy, lease *store.Lease) (int64, error)
	DeleteCandidacy(ctx context.Context, group, member string) error
	ClaimRole(ctx context.Context, r api.Role, lease *store.Lease, expect int64) (int64, bool, error)
	ReleaseRole(ctx context.Context, group string, fencing int64) (bool, error)
	AppendEvent(ctx context.Context, e api.Event, origin string) (int64, error)
	RevokeLease(ctx context.Context, id int64) error
}

// Probe runs one tracked check and returns nil when it passes. It must
// return by ctx's deadline.
type Probe func(ctx context.Context, c api.Check) error

// Hooks runs a hook command or URL with an event (a *health.Hooks), only
// for a group the config file owns. It must not block.
type Hooks interface {
	FireFor(owner api.Source, hook string, e api.Event)
}

var _ Store = (*store.Store)(nil)

// Options configure a Member.
type Options struct {
	// Name is the member name this server campaigns as, in every group
	// that lists it.
	Name string
	// Registerer gets the member's metrics (the server's own registry).
	Registerer prometheus.Registerer
	// Server is this seamark server's name (shown with the candidacy).
	Server string
	// Endpoint is this server's HTTP address; with an unspecified host the
	// member's own address stands in. Peers probe it to tell a dead member
	// at once. Locality is Locality() (tests may override it).
	Endpoint  netip.AddrPort
	Locality  string
	Store     Store
	Snapshots Snapshots
	Probe     Probe
	Hooks     Hooks
	Logger    *slog.Logger
	// Tick is how often a campaign re-checks its lease, timers and the
	// snapshot when nothing wakes it. Default 50ms.
	Tick time.Duration
	// Now is the clock preempt_delay, reassertion and retry backoff are
	// measured on; default time.Now (tests inject one). Whether the store
	// still confirms the lease is always measured on the wall clock, as the
	// store measures the lease.
	Now func() time.Time
}

// Member campaigns for the active role of every group that lists its name.
type Member struct {
	o      Options
	log    *slog.Logger
	fenced *prometheus.CounterVec
	// lastChances counts step-downs a last renewal avoided (fence.go).
	lastChances prometheus.Counter

	mu        sync.Mutex
	campaigns map[string]*campaign
	// frozen: a successor process (upgrade in place) campaigns as this
	// member now; see Freeze.
	frozen atomic.Bool
}

// Freeze hands the member over to a successor process that campaigns as the
// same member (upgrade in place): from now on the campaigns write nothing
// and fire no hook, and when Run ends they do not step down. The successor
// takes the role record over by compare-and-swap (decide: a role record of
// our own member name is claimed), so the group's name never moves; each
// campaign keeps its lease alive until the snapshot shows the successor's
// candidacy and role (at most twice the lease TTL), then revokes it.
func (m *Member) Freeze() {
	m.frozen.Store(true)
	m.log.Info("handing the member over to the new process")
}

// New returns a Member; Run starts it.
func New(o Options) *Member {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Member{o: o, log: o.Logger.With("component", "ha", "member", o.Name), campaigns: map[string]*campaign{}, fenced: newFencedMetric(),
		lastChances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_group_last_chance_renewals_total",
			Help: "Times this server's member was about to step down because the store had been silent, asked once more, and was confirmed (a late process, not a lost lease).",
		})}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.fenced, m.lastChances} {
			if err := o.Registerer.Register(c); err != nil {
				m.log.Warn("member metrics not registered", "err", err)
			}
		}
	}
	return m
}

// Run follows the snapshot, starting a campaign for every group that lists
// the member and stopping those that no longer do, until ctx ends. On the
// way out every campaign steps down gracefully: the role is released first,
// so a standby takes over at once.
func (m *Member) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	stops := map[string]context.CancelFunc{}
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	snap := m.o.Snapshots.Current()
	for {
		want := map[string]*api.Group{}
		for _, g := range snap.Groups() {
			if declares(g, m.o.Name) {
				want[g.Name] = g
			}
		}
		for name, stop := range stops {
			if _, ok := want[name]; !ok {
				m.log.Info("no longer a member of the group: stepping down", "group", name)
				stop()
				delete(stops, name)
			}
		}
		for name, g := range want {
			if _, ok := stops[name]; ok {
				continue
			}
			c := newCampaign(m, g)
			cctx, cancel := context.WithCancel(ctx)
			stops[name] = cancel
			m.mu.Lock()
			m.campaigns[name] = c
			m.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.run(cctx)
				m.mu.Lock()
				if m.campaigns[name] == c {
					delete(m.campaigns, name)
				}
				m.mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.o.Snapshots.Next(snap):
			snap = m.o.Snapshots.Current()
		}
	}
}

// Roles returns this member's role in each of its groups.
func (m *Member) Roles() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, c := range m.campaigns {
		out[name] = c.roleNow()
	}
	return out
}

// Groups returns the names of the groups the member campaigns in, sorted.
func (m *Member) Groups() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.campaigns))
	for name := range m.campaigns {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
