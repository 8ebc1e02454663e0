// Package registry turns the store into the Snapshot every reader answers from.
//
// What it reads: the store's objects (zones, services, nodes, records,
// listeners, groups, and the operators' admin states, joined onto the nodes
// as Node.Admin and, for a weight override, Node.Weight), first with one Load at a single revision, then as a
// stream of watch batches. What it produces: an immutable *Snapshot, stamped
// with the store revision it reflects and swapped atomically, so DNS, the load
// balancer, the health checker and the API read without locks or store round
// trips. A watch that breaks or falls behind compaction leads to a full re-read
// at a new revision; a snapshot never shows half of a change. It writes nothing.
//
// # Immutability and structural sharing
//
// A Snapshot and everything reachable from it (ServiceView, its Nodes and
// Healthy slices, every *api.Node, listener, group, record set, checker and
// event) is never modified after it is published, and every accessor returns
// the shared value itself, not a copy: a reader must never write to a slice,
// map or struct it got from a Snapshot, nor append to a returned slice
// (always slices.Clone first). This is what lets one change cost only what
// it changes: a new snapshot shares every untouched service view, node,
// record set and list with the previous one, and a changed node is always a
// new *api.Node. A change to one node of a service copies that service's
// two sorted node lists, which are persistent: one piece of at most 512
// pointers and the list of pieces are copied, whatever the service's size;
// the services map is copied once per snapshot (one pointer per service).
// ServiceView.Nodes and Healthy make one flat slice at their first call on
// a view; Node, NodeCount and HealthyCount never do.
//
// Snapshot.Delta says what changed since the previous snapshot (per service:
// the node IDs, or the whole service), so readers with derived state, like
// the DNS name table, can update only those pieces.
package registry

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// Snapshot is one consistent view of the registry at a store revision. It is
// never modified after it is published: readers may keep and share it.
type Snapshot struct {
	// Revision is the store revision the snapshot reflects.
	Revision int64

	zones     []string
	services  map[string]*ServiceView
	records   map[string]*ZoneRecords
	listeners map[string]*api.Listener
	groups    map[string]*api.Group
	members   map[string][]*api.Candidacy
	roles     map[string]*api.Role
	observed  map[string][]*api.Observation
	checkers  []api.Checker
	events    *eventLog
	admin     []AdminState
	// listIndex is the last revision that changed any object of a kind (or
	// deleted one), for blocking reads of whole lists.
	listIndex map[store.Kind]int64
	// delta is what changed since the previous snapshot (nil after a full
	// load); history are the deltas of up to historyMax snapshots before,
	// oldest first, ending with delta.
	delta   *Delta
	history []*Delta
	// placement ranks the live checkers (placement.go).
	placement *Placement
}

// historyMax is how many deltas back DeltaSince can reach: a reader that
// falls behind by more rebuilds.
const historyMax = 64

// Delta is what changed between the snapshot at From and this one.
type Delta struct {
	// From is the revision of the previous snapshot.
	From int64
	// Services are the services that changed (also deleted ones).
	Services map[string]ServiceDelta
	// Other are the kinds other than services, nodes, verdicts, admin
	// states, checkers, events and listeners that changed (zones, records,
	// groups, members, roles): a reader of those rebuilds.
	Other []store.Kind
}

// ServiceDelta is what changed in one service.
type ServiceDelta struct {
	// Whole is true when the service's definition changed (or it was
	// created or deleted): every node may have changed.
	Whole bool
	// Nodes are the IDs of the nodes that changed (added, removed, a new
	// registration, verdict or admin state), sorted, when not Whole.
	Nodes []string
}

// ServiceOf returns what changed in one service, and whether it changed;
// on a nil Delta (unknown) it says changed and Whole.
func (d *Delta) ServiceOf(name string) (ServiceDelta, bool) {
	if d == nil {
		return ServiceDelta{Whole: true}, true
	}
	sd, ok := d.Services[name]
	return sd, ok
}

// Delta returns what changed since the previous snapshot, or nil when the
// snapshot came from a full load (a reader must then rebuild). It must not
// be modified.
func (s *Snapshot) Delta() *Delta { return s.delta }

// DeltaSince returns what changed from the snapshot at rev to this one,
// the deltas of every snapshot in between merged, or nil when rev is not
// one of the last historyMax snapshots (a reader must then rebuild). It
// is a new value each call.
func (s *Snapshot) DeltaSince(rev int64) *Delta {
	i := slices.IndexFunc(s.history, func(d *Delta) bool { return d.From == rev })
	if i < 0 {
		return nil
	}
	if i == len(s.history)-1 {
		return s.delta
	}
	out := &Delta{From: rev, Services: map[string]ServiceDelta{}}
	for _, d := range s.history[i:] {
		for name, sd := range d.Services {
			cur := out.Services[name]
			cur.Whole = cur.Whole || sd.Whole
			if cur.Whole {
				cur.Nodes = nil
			} else {
				cur.Nodes = append(cur.Nodes, sd.Nodes...)
			}
			out.Services[name] = cur
		}
		out.Other = append(out.Other, d.Other...)
	}
	for name, sd := range out.Services {
		slices.Sort(sd.Nodes)
		sd.Nodes = slices.Compact(sd.Nodes)
		out.Services[name] = sd
	}
	slices.Sort(out.Other)
	out.Other = slices.Compact(out.Other)
	return out
}

// Node returns one node of the service view by ID.
func (v *ServiceView) Node(id string) (*api.Node, bool) { return v.nodes.get(id) }

// ServiceView is a service with its nodes, health already decided. It and
// its nodes are shared between snapshots and must never be modified.
type ServiceView struct {
	Service api.Service
	// Index is the last revision that changed the service or one of its nodes
	// (a registration or a verdict).
	Index int64
	// SpecIndex is the last revision that changed the service itself or a
	// registration (not a verdict): what the health checker probes.
	SpecIndex int64

	nodes, healthy nodeList
	flatNodes      flat
	flatHealthy    flat
}

// flat is a nodeList made into one slice at its first use.
type flat struct {
	once sync.Once
	list []*api.Node
}

func (f *flat) of(l nodeList) []*api.Node {
	f.once.Do(func() { f.list = l.flat() })
	return f.list
}

// Nodes returns the nodes sorted by ID, with Healthy set. The slice is made
// at the first call on this view (O(n)) and shared by every later caller:
// it must not be modified. Node, NodeCount and EachNode cost nothing of the
// kind.
func (v *ServiceView) Nodes() []*api.Node { return v.flatNodes.of(v.nodes) }

// Healthy returns the nodes that may be advertised, sorted by ID: healthy
// (Node.Healthy) and not taken out by an operator's admin state (drain,
// maint). Shared like Nodes.
func (v *ServiceView) Healthy() []*api.Node { return v.flatHealthy.of(v.healthy) }

// NodesAfter returns up to limit nodes (healthy ones only, when healthy)
// whose IDs sort after after, in ID order, and whether more follow: one page
// of a list, in O(log n + limit), without flattening the view.
func (v *ServiceView) NodesAfter(after string, limit int, healthy bool) ([]*api.Node, bool) {
	if healthy {
		return v.healthy.after(after, limit)
	}
	return v.nodes.after(after, limit)
}

// NodeCount and HealthyCount are len(Nodes()) and len(Healthy()), at no cost.
func (v *ServiceView) NodeCount() int    { return v.nodes.n }
func (v *ServiceView) HealthyCount() int { return v.healthy.n }

// NewServiceView makes a view of svc with nodes (sorted by ID), for tests and
// tools; healthy are the advertised ones (sorted by ID).
func NewServiceView(svc api.Service, nodes, healthy []*api.Node) *ServiceView {
	v := &ServiceView{Service: svc}
	for _, n := range nodes {
		v.nodes = v.nodes.put(n)
	}
	for _, n := range healthy {
		v.healthy = v.healthy.put(n)
	}
	return v
}

// ZoneRecords are a zone's static record sets.
type ZoneRecords struct {
	// Sets sorted by owner name, then type.
	Sets  []api.Record
	Index int64
}

// Zones returns the served zones, fully qualified, sorted.
func (s *Snapshot) Zones() []string { return s.zones }

// HasZone reports whether zone (fully qualified) is served.
func (s *Snapshot) HasZone(zone string) bool {
	_, ok := slices.BinarySearch(s.zones, zone)
	return ok
}

// Service returns one service.
func (s *Snapshot) Service(name string) (*ServiceView, bool) {
	v, ok := s.services[name]
	return v, ok
}

// Services returns every service, sorted by name.
func (s *Snapshot) Services() []*ServiceView {
	out := make([]*ServiceView, 0, len(s.services))
	for _, v := range s.services {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *ServiceView) int { return cmp.Compare(a.Service.Name, b.Service.Name) })
	return out
}

// Records returns a zone's static records (nil when none).
func (s *Snapshot) Records(zone string) *ZoneRecords { return s.records[zone] }

// Listeners returns every listener, sorted by name.
func (s *Snapshot) Listeners() []*api.Listener { return sortedValues(s.listeners) }

// Listener returns one listener.
func (s *Snapshot) Listener(name string) (*api.Listener, bool) {
	l, ok := s.listeners[name]
	return l, ok
}

// Groups returns every balancer group, sorted by name.
func (s *Snapshot) Groups() []*api.Group { return sortedValues(s.groups) }

// Group returns one balancer group.
func (s *Snapshot) Group(name string) (*api.Group, bool) {
	g, ok := s.groups[name]
	return g, ok
}

// Candidates returns the live candidacies of a group's members, sorted by
// member name. They must not be modified.
func (s *Snapshot) Candidates(group string) []*api.Candidacy { return s.members[group] }

// Observations returns the fast-failover observers' views of a group's
// active member, sorted by observer. They must not be modified.
func (s *Snapshot) Observations(group string) []*api.Observation { return s.observed[group] }

// Role returns a group's active role (nil when no member is active), with
// its fencing revision.
func (s *Snapshot) Role(group string) *api.Role { return s.roles[group] }

// GroupAnswer is what <group>.<zone> answers: in active-standby mode the
// active member's address (nothing while none is active); in active-active
// mode the address of every member whose candidacy is live and not in fault.
// Only members the group declares count, at the address it declares.
func (s *Snapshot) GroupAnswer(g *api.Group) []netip.Addr {
	declared := func(name string) (netip.Addr, bool) {
		for _, m := range g.Members {
			if m.Name == name {
				return m.Address, true
			}
		}
		return netip.Addr{}, false
	}
	if g.Mode == api.ModeActiveActive {
		var out []netip.Addr
		for _, c := range s.members[g.Name] {
			if a, ok := declared(c.Member); ok && !c.Fault {
				out = append(out, a)
			}
		}
		return out
	}
	if r := s.roles[g.Name]; r != nil {
		if a, ok := declared(r.Member); ok {
			return []netip.Addr{a}
		}
	}
	return nil
}

// Index returns the last revision that changed any object of kind.
func (s *Snapshot) Index(kind store.Kind) int64 { return s.listIndex[kind] }

type named interface{ *api.Listener | *api.Group }

func sortedValues[T named](m map[string]T) []T {
	out := make([]T, 0, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// Counts sums nodes and healthy nodes over every service.
func (s *Snapshot) Counts() (nodes, healthy int) {
	for _, v := range s.services {
		nodes += v.nodes.n
		healthy += v.healthy.n
	}
	return nodes, healthy
}

// decide says whether a node may be advertised. A node is healthy when its
// registrant says so and its checks agree: a service with check type none
// trusts the registration; otherwise up and down are the verdicts counted
// (Placement.Count: its owners', and while an owner has not written yet,
// those of the checkers that still hold one) and the node is healthy when
// at least half of them say so (a tie favours availability: a node every
// counted checker finds dead is out, a node only some cannot reach stays
// in). When no verdict counts, what verdicts decided before holds (prev, the
// node as last decided, when its address is the same): a checker that dies
// takes its verdicts with its lease, and the node keeps its state (held
// reports true) until its new owner writes one. A node never decided by
// verdicts takes the service's check.initial (unhealthy by default: never
// advertise an unchecked node).
func decide(svc *api.Service, n *api.Node, up, down int, prev *api.Node) (healthy, held bool) {
	if n.State != api.StateHealthy {
		return false, false
	}
	if svc.Check.Type == api.CheckNone {
		return true, false
	}
	if up+down == 0 {
		if prev != nil && (len(prev.Checks) > 0 || prev.Held) && prev.Address == n.Address && prev.Port == n.Port && prev.Source == n.Source {
			return prev.Healthy, true
		}
		return n.Source != api.SourceCandidate && svc.Check.Initial == api.StateHealthy, false
	}
	return up >= down, false
}

// AdminState is an operator's admin state of one node, registered now or
// not.
type AdminState struct {
	Service, Node string
	Admin         *api.NodeAdmin
}

// AdminStates returns every admin state in the store, sorted by service and
// node, also those of nodes that are not registered now. They must not be
// modified.
func (s *Snapshot) AdminStates() []AdminState { return s.admin }

// Placement returns the ranking of the live checkers that says which of
// them own each node.
func (s *Snapshot) Placement() *Placement { return s.placement }

// Checkers returns the live health checkers, sorted by ID.
func (s *Snapshot) Checkers() []api.Checker { return s.checkers }

// Events returns the event log, oldest first.
func (s *Snapshot) Events() []api.Event { return s.events.events() }
