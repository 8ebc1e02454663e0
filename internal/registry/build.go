package registry

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// state is the mutable mirror of the store that a builder owns alone; each
// apply turns it into a new Snapshot, rebuilding only what a batch touched.
type state struct {
	zones     map[string]int64 // zone -> mod revision
	services  map[string]store.Item
	records   map[string]map[string]store.Item // zone -> owner/type -> item
	listeners map[string]*api.Listener
	groups    map[string]*api.Group
	// members are the balancer members' candidacies: group -> member -> candidacy.
	members map[string]map[string]*api.Candidacy
	roles   map[string]*api.Role
	// observed are the fast-failover observations: group -> observer -> view.
	observed map[string]map[string]*api.Observation

	// registered are the nodes as stored: service -> id -> node. A node
	// that judge finds as registered (no verdicts, no admin state) is
	// served as is, so a node costs one api.Node, not two.
	registered map[string]map[string]*api.Node
	// loading: a full load is being applied; lists are made by bulk.
	loading bool
	// fresh are the registered nodes no snapshot holds yet (judge may set
	// their Healthy in place); emptied by every build.
	fresh map[*api.Node]bool
	// verdicts are the live checkers' judgements: service -> node -> checker -> verdict.
	verdicts map[string]map[string]map[string]api.Verdict
	checkers map[string]*api.Checker
	// placement ranks the live checkers: which of them own each node and
	// have their verdicts counted (placement.go).
	placement *Placement
	// prior is the snapshot served before a full re-read (nil otherwise):
	// a node no verdict decides now keeps the state it had there.
	prior *Snapshot
	// events: key -> its events (one, or an audit batch). A snapshot
	// holds the map as it was (eventsShared) and the next change copies it.
	events       map[string][]api.Event
	eventsShared bool
	// admin are the operator's admin states: service -> node -> state.
	admin map[string]map[string]*api.NodeAdmin

	// Derived, what snapshots copy: nodes sorted by ID with Service, Lease,
	// Checks and Healthy filled in (registered nodes, and candidates while
	// healthy), and the healthy ones.
	nodes   map[string]nodeList
	healthy map[string]nodeList
}

func newState() *state {
	return &state{
		zones:      map[string]int64{},
		services:   map[string]store.Item{},
		registered: map[string]map[string]*api.Node{},
		fresh:      map[*api.Node]bool{},
		verdicts:   map[string]map[string]map[string]api.Verdict{},
		checkers:   map[string]*api.Checker{},
		events:     map[string][]api.Event{},
		nodes:      map[string]nodeList{},
		healthy:    map[string]nodeList{},
		records:    map[string]map[string]store.Item{},
		listeners:  map[string]*api.Listener{},
		groups:     map[string]*api.Group{},
		members:    map[string]map[string]*api.Candidacy{},
		roles:      map[string]*api.Role{},
		admin:      map[string]map[string]*api.NodeAdmin{},
		observed:   map[string]map[string]*api.Observation{},
	}
}

// dirty says what a batch touched.
type dirty struct {
	services map[string]bool
	specs    map[string]bool // services whose definition or registrations changed
	zones    bool
	records  map[string]bool
	kinds    map[store.Kind]bool
	// nodes are the node IDs a batch touched, by service (a service whose
	// definition changed is in specs and services; all its nodes count).
	nodes map[string]map[string]bool
	// wholeServices are the services whose definition changed.
	wholeServices map[string]bool
	// checkers: a checker came, went or changed its record.
	checkers bool
	// verdicts are the nodes whose verdicts changed, by service: decided
	// again in build.
	verdicts map[string]map[string]bool
}

// verdict records that a verdict on node id of service changed.
func (d *dirty) verdict(service, id string) {
	if d.verdicts == nil {
		d.verdicts = map[string]map[string]bool{}
	}
	m := d.verdicts[service]
	if m == nil {
		m = map[string]bool{}
		d.verdicts[service] = m
	}
	m[id] = true
}

// touch records that node id of service may have changed.
func (d *dirty) touch(service, id string) {
	m := d.nodes[service]
	if m == nil {
		m = map[string]bool{}
		d.nodes[service] = m
	}
	m[id] = true
}

// mirror keeps m[key] in step with a store item: set to value(), or deleted.
// eventLog is a snapshot's event log: the store's events by key (a map no
// one changes any more), made into one list at the first call of list.
type eventLog struct {
	byKey map[string][]api.Event
	once  sync.Once
	list  []api.Event
}

// events returns the events oldest first: keys sort by time within health
// and audit events, and audit events have keys of their own, so the list is
// sorted by time; of the audit events only the newest MaxAuditEvents.
func (l *eventLog) events() []api.Event {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		n, audit := 0, 0
		for _, es := range l.byKey {
			n += len(es)
		}
		out := make([]api.Event, 0, n)
		for _, k := range slices.Sorted(maps.Keys(l.byKey)) {
			out = append(out, l.byKey[k]...)
		}
		slices.SortStableFunc(out, func(a, b api.Event) int { return a.Time.Compare(b.Time) })
		for _, e := range out {
			if e.Kind == api.EventAudit {
				audit++
			}
		}
		// A trim keeps whole batches: drop the oldest audit events beyond
		// the bound here.
		if extra := audit - store.MaxAuditEvents; extra > 0 {
			out = slices.DeleteFunc(out, func(e api.Event) bool {
				if extra > 0 && e.Kind == api.EventAudit {
					extra--
					return true
				}
				return false
			})
		}
		l.list = out
	})
	return l.list
}

func mirror[V any](m map[string]V, key string, it store.Item, value func() V) {
	if it.Deleted {
		delete(m, key)
		return
	}
	m[key] = value()
}

// mirror2 is mirror for a two-level map; emptied inner maps are dropped.
func mirror2[V any](m map[string]map[string]V, k1, k2 string, it store.Item, value func() V) {
	inner := m[k1]
	if inner == nil {
		if it.Deleted {
			return
		}
		inner = map[string]V{}
		m[k1] = inner
	}
	mirror(inner, k2, it, value)
	if len(inner) == 0 {
		delete(m, k1)
	}
}

func pointerOf[T any](it store.Item) func() *T { return func() *T { return it.Value.(*T) } }

func (st *state) apply(it store.Item, d *dirty) {
	k := it.Key
	d.kinds[k.Kind] = true
	switch k.Kind {
	case store.KindZone:
		mirror(st.zones, k.A, it, func() int64 { return it.ModRevision })
		d.zones = true
	case store.KindService:
		mirror(st.services, k.A, it, func() store.Item { return it })
		st.rejudge(k.A)
		d.services[k.A], d.specs[k.A] = true, true
		d.whole(k.A)
	case store.KindNode:
		mirror2(st.registered, k.A, k.B, it, func() *api.Node {
			n := it.Value.(*api.Node)
			n.ID, n.Service, n.Lease = k.B, k.A, it.Lease
			n.Healthy, n.Checks, n.Admin, n.RegisteredWeight, n.Held = false, nil, nil, 0, false // decided by judge
			st.fresh[n] = true
			return n
		})
		st.refresh(k.A, k.B)
		d.services[k.A], d.specs[k.A] = true, true
		d.touch(k.A, k.B)
	case store.KindHealth:
		node, checker, _ := strings.Cut(k.B, "/")
		byNode := st.verdicts[k.A]
		if byNode == nil {
			byNode = map[string]map[string]api.Verdict{}
			st.verdicts[k.A] = byNode
		}
		mirror2(byNode, node, checker, it, func() api.Verdict {
			v := *it.Value.(*api.Verdict)
			v.Checker = checker
			return v
		})
		// Decided in build, once per node however many of its verdicts
		// the batch holds, and by one sorted pass when the batch holds a
		// large part of the service (a checker's lease expired).
		d.verdict(k.A, node)
		d.services[k.A] = true
		d.touch(k.A, node)
	case store.KindAdmin:
		// An admin change is a change of what the checker probes (maint)
		// and of what DNS and the balancer serve: a spec change.
		mirror2(st.admin, k.A, k.B, it, pointerOf[api.NodeAdmin](it))
		st.refresh(k.A, k.B)
		d.services[k.A], d.specs[k.A] = true, true
		d.touch(k.A, k.B)
	case store.KindChecker:
		mirror(st.checkers, k.A, it, pointerOf[api.Checker](it))
		d.checkers = true
	case store.KindEvent:
		if st.eventsShared {
			st.events, st.eventsShared = maps.Clone(st.events), false
		}
		mirror(st.events, k.A, it, func() []api.Event {
			var es []api.Event
			switch v := it.Value.(type) {
			case *api.Event:
				es = []api.Event{*v}
			case *[]api.Event:
				es = *v
			}
			for i := range es {
				es[i].Revision = it.ModRevision
			}
			return es
		})
	case store.KindRecord:
		mirror2(st.records, k.A, k.B, it, func() store.Item { return it })
		d.records[k.A] = true
	case store.KindListener:
		mirror(st.listeners, k.A, it, pointerOf[api.Listener](it))
	case store.KindGroup:
		mirror(st.groups, k.A, it, pointerOf[api.Group](it))
	case store.KindMember:
		mirror2(st.members, k.A, k.B, it, func() *api.Candidacy {
			c := it.Value.(*api.Candidacy)
			c.Group, c.Member, c.Lease = k.A, k.B, it.Lease
			return c
		})
	case store.KindObserved:
		mirror2(st.observed, k.A, k.B, it, func() *api.Observation {
			o := it.Value.(*api.Observation)
			o.Group, o.Observer = k.A, k.B
			return o
		})
	case store.KindRole:
		mirror(st.roles, k.A, it, func() *api.Role {
			r := it.Value.(*api.Role)
			r.Group, r.Fencing, r.Lease = k.A, it.ModRevision, it.Lease
			return r
		})
	}
}

// build makes the Snapshot at rev from st, reusing prev's untouched parts.
// With prev nil everything is built.
func (st *state) build(prev *Snapshot, rev int64, d *dirty) *Snapshot {
	if d.checkers {
		st.replace(d)
	}
	for service, ids := range d.verdicts {
		st.decideMany(service, ids)
	}
	clear(st.fresh)
	s := &Snapshot{Revision: rev, delta: d.delta(prev), placement: st.placement}
	if prev != nil {
		h := prev.history
		if len(h) >= historyMax {
			h = h[len(h)-historyMax+1:]
		}
		s.history = append(slices.Clip(h), s.delta)
	}
	if prev == nil {
		s.services = make(map[string]*ServiceView, len(st.services))
		s.records = map[string]*ZoneRecords{}
		s.listIndex = map[store.Kind]int64{}
	} else {
		s.zones = prev.zones
		s.services = maps.Clone(prev.services)
		s.records = maps.Clone(prev.records)
		s.listIndex = maps.Clone(prev.listIndex)
		s.listeners, s.groups = prev.listeners, prev.groups
		s.members, s.roles, s.observed = prev.members, prev.roles, prev.observed
		s.checkers, s.events = prev.checkers, prev.events
		s.admin = prev.admin
	}
	for k := range d.kinds {
		s.listIndex[k] = rev
	}
	if prev == nil || d.zones {
		s.zones = slices.Sorted(maps.Keys(st.zones))
	}
	if prev == nil || d.kinds[store.KindListener] {
		s.listeners = maps.Clone(st.listeners)
	}
	if prev == nil || d.kinds[store.KindGroup] {
		s.groups = maps.Clone(st.groups)
	}
	if prev == nil || d.kinds[store.KindMember] {
		s.members = make(map[string][]*api.Candidacy, len(st.members))
		for g, byMember := range st.members {
			for _, m := range slices.Sorted(maps.Keys(byMember)) {
				s.members[g] = append(s.members[g], byMember[m])
			}
		}
	}
	if prev == nil || d.kinds[store.KindObserved] {
		s.observed = make(map[string][]*api.Observation, len(st.observed))
		for g, by := range st.observed {
			for _, o := range slices.Sorted(maps.Keys(by)) {
				s.observed[g] = append(s.observed[g], by[o])
			}
		}
	}
	if prev == nil || d.kinds[store.KindRole] {
		s.roles = maps.Clone(st.roles)
	}
	if prev == nil || d.kinds[store.KindChecker] {
		s.checkers = make([]api.Checker, 0, len(st.checkers))
		for _, id := range slices.Sorted(maps.Keys(st.checkers)) {
			s.checkers = append(s.checkers, *st.checkers[id])
		}
	}
	if prev == nil || d.kinds[store.KindAdmin] {
		s.admin = []AdminState{}
		for _, svc := range slices.Sorted(maps.Keys(st.admin)) {
			for _, node := range slices.Sorted(maps.Keys(st.admin[svc])) {
				s.admin = append(s.admin, AdminState{Service: svc, Node: node, Admin: st.admin[svc][node]})
			}
		}
	}
	if prev == nil || d.kinds[store.KindEvent] {
		// The list is made when first asked for (Events): most snapshots
		// of a burst of API writes, each with its audit batch, are never
		// asked.
		s.events = &eventLog{byKey: st.events}
		st.eventsShared = true
	}
	for name := range d.services {
		if v := st.serviceView(name, rev); v != nil {
			v.SpecIndex = rev
			if old, ok := s.services[name]; ok && !d.specs[name] {
				v.SpecIndex = old.SpecIndex
			}
			s.services[name] = v
		} else {
			delete(s.services, name)
		}
	}
	for zone := range d.records {
		if zr := st.zoneRecords(zone, rev); zr != nil {
			s.records[zone] = zr
		} else {
			delete(s.records, zone)
		}
	}
	return s
}

// placementOf ranks the live checkers of st.
func (st *state) placementOf() *Placement {
	cs := make([]api.Checker, 0, len(st.checkers))
	for _, id := range slices.Sorted(maps.Keys(st.checkers)) {
		cs = append(cs, *st.checkers[id])
	}
	return NewPlacement(cs)
}

// replace ranks the checkers again after one came, went or changed, and
// decides again the nodes whose owners the new ranking changed (about 1/N
// of them when one of N checkers comes or goes, and those the departed
// checker's verdicts touch anyway). Finding them is one pass of hashing over
// each checked service's IDs; the others keep their decisions, since the
// votes counted for a node depend on the placement only through its owners.
func (st *state) replace(d *dirty) {
	p := st.placementOf()
	if p.Equal(st.placement) {
		return
	}
	old := st.placement
	st.placement = p
	for name, it := range st.services {
		check := it.Value.(*api.Service).Check
		if check.Type == api.CheckNone {
			continue
		}
		moved := map[string]bool{}
		for id := range d.verdicts[name] {
			moved[id] = true // decided again in any case
		}
		delete(d.verdicts, name)
		var a, b [api.MaxReplicas]string
		see := func(id string) {
			key := NodeKey(name, id)
			if !slices.Equal(old.Owners(key, old.K(check), a[:0]), p.Owners(key, p.K(check), b[:0])) {
				moved[id] = true
			}
		}
		for _, c := range st.nodes[name].chunks {
			for _, n := range c {
				see(n.ID)
			}
		}
		if len(it.Value.(*api.Service).Candidates) > 0 {
			// A candidate with votes that is not served (only candidates
			// have votes and no place in the list).
			for id := range st.verdicts[name] {
				if !moved[id] {
					if _, listed := st.nodes[name].get(id); !listed {
						see(id)
					}
				}
			}
		}
		if len(moved) == 0 {
			continue
		}
		st.decideMany(name, moved)
		d.services[name] = true
		for id := range moved {
			d.touch(name, id)
		}
	}
}

// decideMany decides the nodes ids of service again: node by node (refresh)
// when they are few, else by one merge pass (redecide).
func (st *state) decideMany(service string, ids map[string]bool) {
	if len(ids) > max(redecideMin, st.nodes[service].n/64) {
		st.redecide(service, ids)
		return
	}
	for id := range ids {
		st.refresh(service, id)
	}
}

// redecideMin is the fewest changed nodes of a service that build decides by
// one merge pass over the service (redecide) rather than node by node.
const redecideMin = 256

// redecide decides the nodes ids of service again and makes its lists in
// one merge pass over the current list: the nodes not in ids keep their
// values, the lists come out sorted with no sort, and no map over the
// service is built. It is what refresh does node by node, for when many
// nodes changed at once (each refresh copies a piece and the list of
// pieces): a pass of pointer copies plus the judging of ids.
func (st *state) redecide(service string, ids map[string]bool) {
	if st.loading {
		return
	}
	old := st.nodes[service]
	var extra []string // ids not in the list yet, sorted
	listed := 0
	for _, c := range old.chunks {
		for _, n := range c {
			if ids[n.ID] {
				listed++
			}
		}
	}
	if listed < len(ids) {
		for id := range ids {
			if _, ok := old.get(id); !ok {
				extra = append(extra, id)
			}
		}
		slices.Sort(extra)
	}
	nodes := make([]*api.Node, 0, old.n+len(extra))
	healthy := make([]*api.Node, 0, st.healthy[service].n+len(extra))
	emit := func(n *api.Node) {
		if n == nil {
			return
		}
		nodes = append(nodes, n)
		if n.Healthy && !n.Admin.Out() {
			healthy = append(healthy, n)
		}
	}
	i := 0
	for _, c := range old.chunks {
		for _, n := range c {
			for ; i < len(extra) && extra[i] < n.ID; i++ {
				emit(st.judge(service, extra[i]))
			}
			if ids[n.ID] {
				emit(st.judge(service, n.ID))
			} else {
				emit(n)
			}
		}
	}
	for ; i < len(extra); i++ {
		emit(st.judge(service, extra[i]))
	}
	st.setList(st.nodes, service, chunkedSorted(nodes))
	st.setList(st.healthy, service, chunkedSorted(healthy))
}

// whole marks every node of service as changed: its definition changed.
func (d *dirty) whole(service string) {
	if d.wholeServices == nil {
		d.wholeServices = map[string]bool{}
	}
	d.wholeServices[service] = true
}

// delta says what changed from prev's revision to this snapshot's, for
// readers that keep derived state (the DNS name table) and update only the
// changed pieces.
func (d *dirty) delta(prev *Snapshot) *Delta {
	if prev == nil {
		return nil
	}
	out := &Delta{From: prev.Revision, Services: make(map[string]ServiceDelta, len(d.services))}
	for name := range d.services {
		sd := ServiceDelta{Whole: d.wholeServices[name]}
		if !sd.Whole {
			sd.Nodes = slices.Sorted(maps.Keys(d.nodes[name]))
		}
		out.Services[name] = sd
	}
	for k := range d.kinds {
		switch k {
		case store.KindService, store.KindNode, store.KindHealth, store.KindAdmin,
			store.KindChecker, store.KindEvent, store.KindListener:
		default:
			out.Other = append(out.Other, k)
		}
	}
	slices.Sort(out.Other)
	return out
}

func byID(n *api.Node, id string) int { return strings.Compare(n.ID, id) }

// refresh decides one node of a service again after its registration, its
// verdicts or its service changed, and puts it in (or drops it from) the
// sorted lists. The lists are persistent (nodeList): snapshots share them,
// and a change copies one piece of at most chunkMax pointers and the list of
// pieces, never a sort or a pass over every node. A node is always a new
// value, never modified, because older snapshots may be reading the previous
// one.
func (st *state) refresh(service, id string) {
	if st.loading {
		return // decided by bulk at the end of the load
	}
	n := st.judge(service, id)
	if n == nil {
		st.setList(st.nodes, service, st.nodes[service].drop(id))
		st.setList(st.healthy, service, st.healthy[service].drop(id))
		return
	}
	st.nodes[service] = st.nodes[service].put(n)
	if n.Healthy && !n.Admin.Out() {
		st.healthy[service] = st.healthy[service].put(n)
	} else {
		st.setList(st.healthy, service, st.healthy[service].drop(id))
	}
}

func (st *state) setList(m map[string]nodeList, service string, l nodeList) {
	if l.n == 0 {
		delete(m, service)
		return
	}
	m[service] = l
}

// judge builds the served node id of service, or nil when there is none: a
// registered node with its verdicts and health, or a candidate address that a
// majority of live checkers find healthy.
func (st *state) judge(service, id string) *api.Node {
	svcItem, ok := st.services[service]
	if !ok {
		return nil
	}
	svc := svcItem.Value.(*api.Service)
	votes := st.verdicts[service][id]
	var n api.Node
	if reg := st.registered[service][id]; reg != nil {
		n = *reg
	} else {
		a, ok := api.ParseCandidateID(id)
		if !ok || !api.InCandidates(svc.Candidates, a) {
			return nil
		}
		if len(votes) == 0 {
			// A candidate is a node while verdicts say it passes, or while
			// what they said holds (decide).
			if prev := st.previous(service, id); prev == nil || (len(prev.Checks) == 0 && !prev.Held) {
				return nil
			}
		}
		n = api.Node{ID: id, Service: service, Address: a, Weight: 1, State: api.StateHealthy, Source: api.SourceCandidate}
	}
	n.Admin, n.RegisteredWeight = nil, 0
	if adm := st.admin[service][id]; adm != nil {
		n.Admin = adm
		if adm.Weight > 0 {
			n.RegisteredWeight, n.Weight = n.Weight, adm.Weight
		}
	}
	n.Checks = nil
	if len(votes) > 0 {
		n.Checks = make([]api.Verdict, 0, len(votes))
		for _, v := range votes {
			n.Checks = append(n.Checks, v)
		}
		slices.SortFunc(n.Checks, func(a, b api.Verdict) int { return cmp.Compare(a.Checker, b.Checker) })
	}
	up, down := st.placement.Count(NodeKey(service, id), svc.Check, votes)
	var prev *api.Node
	if up+down == 0 {
		prev = st.previous(service, id)
	}
	n.Healthy, n.Held = decide(svc, &n, up, down, prev)
	if n.Source == api.SourceCandidate && !n.Healthy {
		return nil // a candidate is a node only while it passes
	}
	if reg := st.registered[service][id]; reg != nil && n.Admin == nil && n.Checks == nil && !n.Held && reg.Checks == nil && reg.Admin == nil && reg.RegisteredWeight == 0 {
		if n.Healthy == reg.Healthy {
			return reg // as registered: share it, no copy per node
		}
		if st.fresh[reg] {
			// Not yet in any snapshot: decide it in place.
			reg.Healthy = n.Healthy
			return reg
		}
	}
	return &n
}

// previous is node id of service as last decided: in the lists, or during
// a full re-read in the snapshot served before it.
func (st *state) previous(service, id string) *api.Node {
	if n, ok := st.nodes[service].get(id); ok {
		return n
	}
	if st.prior != nil {
		if v, ok := st.prior.Service(service); ok {
			n, _ := v.Node(id)
			return n
		}
	}
	return nil
}

// rejudge decides every node of a service again, after the service changed.
func (st *state) rejudge(service string) {
	ids := map[string]bool{}
	for id := range st.registered[service] {
		ids[id] = true
	}
	for id := range st.verdicts[service] {
		ids[id] = true
	}
	for id := range st.admin[service] {
		ids[id] = true
	}
	for _, c := range st.nodes[service].chunks {
		for _, n := range c {
			ids[n.ID] = true
		}
	}
	for id := range ids {
		st.refresh(service, id)
	}
}

func (st *state) serviceView(name string, rev int64) *ServiceView {
	it, ok := st.services[name]
	if !ok {
		return nil // nodes of a service that is gone are not served
	}
	return &ServiceView{
		Service: *it.Value.(*api.Service),
		nodes:   st.nodes[name],
		healthy: st.healthy[name],
		Index:   rev,
	}
}

func (st *state) zoneRecords(zone string, rev int64) *ZoneRecords {
	m := st.records[zone]
	if len(m) == 0 {
		return nil
	}
	zr := &ZoneRecords{Index: rev, Sets: make([]api.Record, 0, len(m))}
	for _, it := range m {
		zr.Sets = append(zr.Sets, *it.Value.(*api.Record))
	}
	slices.SortFunc(zr.Sets, func(a, b api.Record) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Type, b.Type))
	})
	return zr
}

// Build makes a Snapshot from a full Load. Tests and tools use it directly;
// the Watcher uses the same path.
func Build(items []store.Item, rev int64) *Snapshot {
	st := newState()
	s, _ := st.load(items, rev)
	return s
}

func (st *state) load(items []store.Item, rev int64) (*Snapshot, *state) {
	d := newDirty()
	// A full load decides each node once at the end and builds each
	// service's lists in one sorted pass, rather than inserting 100 000
	// nodes one by one.
	st.loading = true
	for _, it := range items {
		st.apply(it, d)
	}
	st.loading = false
	st.placement = st.placementOf()
	d.checkers = false
	for service := range d.services {
		st.bulk(service)
	}
	st.prior = nil
	return st.build(nil, rev, d), st
}

// judgeAll decides the nodes ids of service and makes them its lists.
func (st *state) judgeAll(service string, ids map[string]bool) {
	var nodes, healthy []*api.Node
	for id := range ids {
		n := st.judge(service, id)
		if n == nil {
			continue
		}
		nodes = append(nodes, n)
		if n.Healthy && !n.Admin.Out() {
			healthy = append(healthy, n)
		}
	}
	st.setList(st.nodes, service, chunked(nodes))
	st.setList(st.healthy, service, chunked(healthy))
}

// bulk decides every node of a service and builds its lists at once.
func (st *state) bulk(service string) {
	ids := map[string]bool{}
	for id := range st.registered[service] {
		ids[id] = true
	}
	for id := range st.verdicts[service] {
		ids[id] = true
	}
	st.judgeAll(service, ids)
}

func newDirty() *dirty {
	return &dirty{services: map[string]bool{}, specs: map[string]bool{}, records: map[string]bool{}, kinds: map[store.Kind]bool{}, nodes: map[string]map[string]bool{}}
}

// Builder makes successive snapshots from a full load and then batches of
// changes, as the Watcher does: each snapshot shares what did not change
// with the one before and carries its Delta. Tests and benchmarks use it
// directly. A Builder is not safe for concurrent use; its snapshots are.
type Builder struct {
	st   *state
	snap *Snapshot
}

// NewBuilder starts from a full load at rev.
func NewBuilder(items []store.Item, rev int64) *Builder {
	st := newState()
	s, _ := st.load(items, rev)
	return &Builder{st: st, snap: s}
}

// Snapshot returns the newest snapshot.
func (b *Builder) Snapshot() *Snapshot { return b.snap }

// Apply applies one batch of changes at rev (newer than the current
// snapshot's) and returns the new snapshot.
func (b *Builder) Apply(items []store.Item, rev int64) *Snapshot {
	d := newDirty()
	for _, it := range items {
		b.st.apply(it, d)
	}
	b.snap = b.st.build(b.snap, rev, d)
	return b.snap
}
