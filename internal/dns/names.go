package dns

import (
	"hash/maphash"
	"sync"

	"github.com/miekg/dns"
)

// nameShards is how many pieces a zone's name map is cut into. A table made
// for a new snapshot shares every piece with the previous table and copies
// only the pieces whose names changed: a change to one node copies the
// array of piece pointers and one piece of about names/nameShards entries,
// whatever the size of the zone.
const nameShards = 1024

var nameSeed = maphash.MakeSeed()

// nameMap is a zone's owner names, in shards shared copy-on-write between
// tables. A published table's nameMap is never written again.
type nameMap struct {
	shards [nameShards]map[string]*owner
	n      int
	// owned marks the shards this map may write (made or copied by it);
	// nil on a map that is only read.
	owned *[nameShards]bool
}

func newNameMap() *nameMap { return &nameMap{owned: new([nameShards]bool)} }

func shardOf(name string) int { return int(maphash.String(nameSeed, name) % nameShards) }

// get returns the owner of name (lower case, fully qualified), or nil.
func (m *nameMap) get(name string) *owner { return m.shards[shardOf(name)][name] }

// len is the number of names.
func (m *nameMap) len() int { return m.n }

// each calls f for every name, in no order.
func (m *nameMap) each(f func(name string, o *owner)) {
	for _, sh := range m.shards {
		for n, o := range sh {
			f(n, o)
		}
	}
}

// writable returns the shard of name, copied first when another map shares it.
func (m *nameMap) writable(name string) map[string]*owner {
	i := shardOf(name)
	if !m.owned[i] {
		sh := make(map[string]*owner, len(m.shards[i])+1)
		for k, v := range m.shards[i] {
			sh[k] = v
		}
		m.shards[i] = sh
		m.owned[i] = true
	}
	return m.shards[i]
}

func (m *nameMap) set(name string, o *owner) {
	sh := m.writable(name)
	if _, ok := sh[name]; !ok {
		m.n++
	}
	sh[name] = o
}

func (m *nameMap) del(name string) {
	if m.get(name) == nil {
		return
	}
	delete(m.writable(name), name)
	m.n--
}

// fork returns a writable map sharing every shard with m.
func (m *nameMap) fork() *nameMap {
	c := &nameMap{shards: m.shards, n: m.n, owned: new([nameShards]bool)}
	return c
}

// seal ends writing: the map is published.
func (m *nameMap) seal() { m.owned = nil }

// lazySets are record sets computed the first time a query needs them (a
// service's SRV set: one record per healthy node, built only when asked).
type lazySets struct {
	once sync.Once
	fill func() map[uint16][]dns.RR
	sets map[uint16][]dns.RR
}

// setsOf returns the owner's record sets by type; they must not be modified.
// For a node name it is a new map each call: queries use rrs.
func (o *owner) setsOf() map[uint16][]dns.RR {
	if o.addrs != nil {
		m := make(map[uint16][]dns.RR, 2)
		if o.n4 > 0 {
			m[dns.TypeA] = o.addrs[:o.n4:o.n4]
		}
		if o.n4 < len(o.addrs) {
			m[dns.TypeAAAA] = o.addrs[o.n4:]
		}
		return m
	}
	if o.lazy != nil {
		o.lazy.once.Do(func() { o.lazy.sets = o.lazy.fill() })
		return o.lazy.sets
	}
	return o.sets
}

// rrs returns the owner's record set of type t; it must not be modified.
func (o *owner) rrs(t uint16) []dns.RR {
	if o.addrs != nil {
		switch t {
		case dns.TypeA:
			return o.addrs[:o.n4:o.n4]
		case dns.TypeAAAA:
			return o.addrs[o.n4:]
		}
		return nil
	}
	return o.setsOf()[t]
}
