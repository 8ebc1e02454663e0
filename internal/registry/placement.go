package registry

import (
	"slices"

	"github.com/seamark/seamark/api"
)

// Placement says which live checkers own (probe, and vote on) each node:
// rendezvous (highest-random-weight) hashing of the node's key and each
// checker's ID. Every server builds the same Placement from the same
// snapshot, so they agree on the owners without talking to each other; a
// checker that joins or leaves moves only the nodes it wins or held (about
// 1/N of them). Checkers that say they are degraded (their own probes fail
// for local reasons) rank after every healthy one: they own a node only
// when too few healthy checkers are live. A Placement is immutable.
type Placement struct {
	ids      []string
	seeds    []uint64
	degraded []bool
}

// NewPlacement ranks the live checkers cs.
func NewPlacement(cs []api.Checker) *Placement {
	p := &Placement{ids: make([]string, len(cs)), seeds: make([]uint64, len(cs)), degraded: make([]bool, len(cs))}
	for i, c := range cs {
		p.ids[i], p.seeds[i], p.degraded[i] = c.ID, seedOf(c.ID), c.Degraded != ""
	}
	return p
}

// Len is the number of live checkers.
func (p *Placement) Len() int {
	if p == nil {
		return 0
	}
	return len(p.ids)
}

// Has reports whether checker id is among the live checkers.
func (p *Placement) Has(id string) bool { return p != nil && slices.Contains(p.ids, id) }

// With returns p with the checker c added (or its record replaced): what a
// checker whose own record is not in the snapshot yet ranks with.
func (p *Placement) With(c api.Checker) *Placement {
	var cs []api.Checker
	for i, id := range p.idsOrNil() {
		if id != c.ID {
			cs = append(cs, api.Checker{ID: id, Degraded: degradedWord(p.degraded[i])})
		}
	}
	return NewPlacement(append(cs, c))
}

func (p *Placement) idsOrNil() []string {
	if p == nil {
		return nil
	}
	return p.ids
}

func degradedWord(d bool) string {
	if d {
		return "degraded"
	}
	return ""
}

// Equal reports whether p and q rank every node the same way.
func (p *Placement) Equal(q *Placement) bool {
	return slices.Equal(p.idsOrNil(), q.idsOrNil()) && (p == nil || q == nil || slices.Equal(p.degraded, q.degraded))
}

// K is how many checkers own each node of a check: its replicas, or every
// live checker when fewer are live.
func (p *Placement) K(c api.Check) int { return min(c.Owners(), p.Len()) }

// NodeKey is the key a node is placed by.
func NodeKey(service, node string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(service); i++ {
		h = (h ^ uint64(service[i])) * fnvPrime
	}
	h = (h ^ '/') * fnvPrime
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * fnvPrime
	}
	return mix(h)
}

// Owners appends to dst the IDs of the k checkers that own the node with
// key (NodeKey), best first, and returns it.
func (p *Placement) Owners(key uint64, k int, dst []string) []string {
	var best [api.MaxReplicas]int
	var bestW [api.MaxReplicas]uint64
	n := 0
	k = min(k, p.Len(), api.MaxReplicas)
	if k <= 0 {
		return dst
	}
	for i := range p.idsOrNil() {
		w := p.weight(key, i)
		// Insert i into the k best so far (a short insertion sort).
		j := n
		if j == k {
			if !p.better(i, w, best[k-1], bestW[k-1]) {
				continue
			}
			j = k - 1
		} else {
			n++
		}
		for j > 0 && p.better(i, w, best[j-1], bestW[j-1]) {
			best[j], bestW[j] = best[j-1], bestW[j-1]
			j--
		}
		best[j], bestW[j] = i, w
	}
	for _, i := range best[:n] {
		dst = append(dst, p.ids[i])
	}
	return dst
}

// Owns reports whether checker id is one of the k owners of key.
func (p *Placement) Owns(id string, key uint64, k int) bool {
	var buf [api.MaxReplicas]string
	return slices.Contains(p.Owners(key, k, buf[:0]), id)
}

// weight of checker i for key: healthy checkers have their top bit set, so
// every one of them outranks every degraded one.
func (p *Placement) weight(key uint64, i int) uint64 {
	w := mix(key^p.seeds[i]) >> 1
	if !p.degraded[i] {
		w |= 1 << 63
	}
	return w
}

// better orders checkers by weight, then ID (a tie of 63 random bits is
// all but impossible, but the order must be total).
func (p *Placement) better(i int, w uint64, j int, wj uint64) bool {
	if w != wj {
		return w > wj
	}
	return p.ids[i] < p.ids[j]
}

// Count counts the verdicts that decide a node (docs/health.md): those of
// its k owners that have written one, and, while fewer than k owners have,
// those of other checkers that still hold one (owners before a handoff),
// highest rendezvous weight first, until k are counted. It returns the
// healthy and unhealthy votes counted.
func (p *Placement) Count(key uint64, check api.Check, votes map[string]api.Verdict) (up, down int) {
	if len(votes) == 0 {
		return 0, 0
	}
	k := p.K(check)
	if k == 0 {
		k = check.Owners() // no live checker known: count what is there
	}
	var buf [api.MaxReplicas]string
	owners := p.Owners(key, k, buf[:0])
	add := func(v api.Verdict) {
		if v.State == api.StateHealthy {
			up++
		} else {
			down++
		}
	}
	for _, id := range owners {
		if v, ok := votes[id]; ok {
			add(v)
		}
	}
	if up+down == k || len(votes) == up+down {
		return up, down
	}
	// Seats left: fill them with the other holders, best first.
	type holder struct {
		w  uint64
		id string
		v  api.Verdict
	}
	var others []holder
	for id, v := range votes {
		if !slices.Contains(owners, id) {
			others = append(others, holder{mix(key ^ seedOf(id)), id, v})
		}
	}
	slices.SortFunc(others, func(a, b holder) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	for _, h := range others[:min(len(others), k-(up+down))] {
		add(h.v)
	}
	return up, down
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func seedOf(id string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * fnvPrime
	}
	return mix(h ^ 0x9e3779b97f4a7c15)
}

// mix is the finalizer of SplitMix64: every input bit moves every output
// bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
