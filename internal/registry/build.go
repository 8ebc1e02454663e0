package registry

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// state is the mutable mirror of the store that a builder owns alone; each
// apply turns it into a new Snapshot, rebuilding only what a batch touched.
type state struct {
	zones     map[string]int64 // zone -> mod revision
	services  map[string]store.Item
	nodes     map[string][]*api.Node           // service -> nodes sorted by ID, Service, Lease and Healthy filled in
	healthy   map[string][]*api.Node           // service -> its healthy nodes, sorted by ID
	records   map[string]map[string]store.Item // zone -> owner/type -> item
	listeners map[string]*api.Listener
	groups    map[string]*api.Group
}

func newState() *state {
	return &state{
		zones:     map[string]int64{},
		services:  map[string]store.Item{},
		nodes:     map[string][]*api.Node{},
		healthy:   map[string][]*api.Node{},
		records:   map[string]map[string]store.Item{},
		listeners: map[string]*api.Listener{},
		groups:    map[string]*api.Group{},
	}
}

// dirty says what a batch touched.
type dirty struct {
	services map[string]bool
	zones    bool
	records  map[string]bool
	kinds    map[store.Kind]bool
}

func (st *state) apply(it store.Item, d *dirty) {
	k := it.Key
	d.kinds[k.Kind] = true
	switch k.Kind {
	case store.KindZone:
		if it.Deleted {
			delete(st.zones, k.A)
		} else {
			st.zones[k.A] = it.ModRevision
		}
		d.zones = true
	case store.KindService:
		if it.Deleted {
			delete(st.services, k.A)
		} else {
			st.services[k.A] = it
		}
		st.rejudge(k.A)
		d.services[k.A] = true
	case store.KindNode:
		st.applyNode(k.A, k.B, it)
		d.services[k.A] = true
	case store.KindRecord:
		m := st.records[k.A]
		if it.Deleted {
			delete(m, k.B)
		} else {
			if m == nil {
				m = map[string]store.Item{}
				st.records[k.A] = m
			}
			m[k.B] = it
		}
		d.records[k.A] = true
	case store.KindListener:
		if it.Deleted {
			delete(st.listeners, k.A)
		} else {
			st.listeners[k.A] = it.Value.(*api.Listener)
		}
	case store.KindGroup:
		if it.Deleted {
			delete(st.groups, k.A)
		} else {
			st.groups[k.A] = it.Value.(*api.Group)
		}
	}
}

// build makes the Snapshot at rev from st, reusing prev's untouched parts.
// With prev nil everything is built.
func (st *state) build(prev *Snapshot, rev int64, d *dirty) *Snapshot {
	s := &Snapshot{Revision: rev}
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
	for name := range d.services {
		if v := st.serviceView(name, rev); v != nil {
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

func byID(n *api.Node, id string) int { return strings.Compare(n.ID, id) }

// put inserts or replaces n in a list sorted by ID; drop removes id.
func put(list []*api.Node, n *api.Node) []*api.Node {
	i, found := slices.BinarySearchFunc(list, n.ID, byID)
	if found {
		list[i] = n
		return list
	}
	return slices.Insert(list, i, n)
}

func drop(list []*api.Node, id string) []*api.Node {
	if i, found := slices.BinarySearchFunc(list, id, byID); found {
		return slices.Delete(list, i, i+1)
	}
	return list
}

// applyNode inserts, replaces or removes one node in its service's sorted
// lists, deciding its health once, here. The lists are private to the
// builder; snapshots get copies, so a change costs a binary search and a copy
// of pointers, never a sort or a pass over every node's health.
func (st *state) applyNode(service, id string, it store.Item) {
	if it.Deleted {
		st.nodes[service] = drop(st.nodes[service], id)
		st.healthy[service] = drop(st.healthy[service], id)
		return
	}
	n := it.Value.(*api.Node)
	n.ID, n.Service, n.Lease = id, service, it.Lease
	if svc, ok := st.services[service]; ok {
		n.Healthy = Healthy(svc.Value.(*api.Service), n)
	}
	st.nodes[service] = put(st.nodes[service], n)
	if n.Healthy {
		st.healthy[service] = put(st.healthy[service], n)
	} else {
		st.healthy[service] = drop(st.healthy[service], id)
	}
}

// rejudge decides the health of every node of a service again, after the
// service itself changed. Nodes whose verdict changes are copied, never
// modified, because older snapshots may be reading them.
func (st *state) rejudge(service string) {
	list := st.nodes[service]
	var healthy []*api.Node
	svc, ok := st.services[service]
	for i, n := range list {
		h := ok && Healthy(svc.Value.(*api.Service), n)
		if h != n.Healthy {
			c := *n
			c.Healthy = h
			list[i] = &c
		}
		if h {
			healthy = append(healthy, list[i])
		}
	}
	st.healthy[service] = healthy
}

func (st *state) serviceView(name string, rev int64) *ServiceView {
	it, ok := st.services[name]
	if !ok {
		return nil // nodes of a service that is gone are not served
	}
	return &ServiceView{
		Service: *it.Value.(*api.Service),
		Nodes:   slices.Clone(st.nodes[name]),
		Healthy: slices.Clone(st.healthy[name]),
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
	for _, it := range items {
		st.apply(it, d)
	}
	return st.build(nil, rev, d), st
}

func newDirty() *dirty {
	return &dirty{services: map[string]bool{}, records: map[string]bool{}, kinds: map[store.Kind]bool{}}
}
