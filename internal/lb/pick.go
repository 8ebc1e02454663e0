package lb

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/seamark/seamark/api"
)

// backend is one node of a service as the balancer sees it. The same
// *backend lives on across snapshots while the node keeps its address, so
// its counters (and least_conn's view of its load) carry over.
type backend struct {
	service string
	node    string
	addr    netip.AddrPort
	weight  atomic.Int64 // as of the latest snapshot (for stats)
	stats   counters
	// downSince is when the node left the healthy set (unix nanoseconds),
	// 0 while it is healthy.
	downSince atomic.Int64
	seed      uint64 // per-node hash seed for rendezvous hashing
}

// pool is a service's healthy backends at one snapshot; it is immutable
// except for the round robin state.
type pool struct {
	backends []*backend
	weights  []int
	total    int // sum of weights

	mu      sync.Mutex
	current []int // smooth weighted round robin
}

func newPool(bs []*backend, weights []int) *pool {
	p := &pool{backends: bs, weights: weights, current: make([]int, len(bs))}
	for _, w := range weights {
		p.total += w
	}
	return p
}

// tried is the backends a connection already failed on.
type tried []*backend

func (t tried) has(b *backend) bool {
	for _, x := range t {
		if x == b {
			return true
		}
	}
	return false
}

// pick chooses a backend for a connection from src, skipping those in skip.
// It returns nil when none is left.
func (p *pool) pick(balance string, src netip.Addr, skip tried) *backend {
	if len(p.backends) == 0 {
		return nil
	}
	switch balance {
	case api.BalanceLeastConn:
		return p.leastConn(skip)
	case api.BalanceHash:
		return p.hash(src, skip)
	case api.BalanceRandom2:
		return p.random2(skip)
	}
	return p.roundRobin(skip)
}

// roundRobin is nginx's smooth weighted round robin: every backend gains its
// weight, the richest is picked and pays the total. Weights 5,1,1 give
// a a b a c a a, never five a in a row.
func (p *pool) roundRobin(skip tried) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	best, total := -1, 0
	for i, b := range p.backends {
		if skip.has(b) {
			continue
		}
		p.current[i] += p.weights[i]
		total += p.weights[i]
		if best < 0 || p.current[i] > p.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	p.current[best] -= total
	return p.backends[best]
}

// leastConn picks the backend with the fewest active connections per unit
// of weight; ties go to a random one of them so equal backends share.
func (p *pool) leastConn(skip tried) *backend {
	var best *backend
	var bestLoad float64
	ties := 0
	for i, b := range p.backends {
		if skip.has(b) {
			continue
		}
		load := float64(b.stats.active.Load()) / float64(p.weights[i])
		switch {
		case best == nil || load < bestLoad:
			best, bestLoad, ties = b, load, 1
		case load == bestLoad:
			ties++
			if rand.N(ties) == 0 {
				best = b
			}
		}
	}
	return best
}

// clientHash is a fixed function of the client address: no per-process
// seed, so a client keeps its backend across restarts and every member of a
// balancer group sends it to the same one. Changing it moves clients: the
// golden test in pick_test.go pins it.
func clientHash(src netip.Addr) uint64 {
	a := src.Unmap().As16()
	h := uint64(14695981039346656037)
	for _, c := range a {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return mix64(h)
}

// hash is weighted rendezvous hashing on the client address: each backend
// scores weight / -ln(u) with u uniform from hash(client, node), and the
// highest wins. A backend leaving moves only the clients it had; one joining
// takes only its own share. Both hashes are fixed functions of the address
// and the node ID, so the choice is the same on every server.
func (p *pool) hash(src netip.Addr, skip tried) *backend {
	h := clientHash(src)
	var best *backend
	bestScore := math.Inf(-1)
	for i, b := range p.backends {
		if skip.has(b) {
			continue
		}
		x := mix64(h ^ b.seed)
		u := (float64(x>>11) + 0.5) / (1 << 53)
		score := float64(p.weights[i]) / -math.Log(u)
		if score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// mix64 is splitmix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// random2 draws two backends by weight and takes the less loaded (power of
// two choices).
func (p *pool) random2(skip tried) *backend {
	a, b := p.weighted(skip), p.weighted(skip)
	if a < 0 || b < 0 || a == b {
		if a < 0 {
			return nil
		}
		return p.backends[a]
	}
	la := float64(p.backends[a].stats.active.Load()) / float64(p.weights[a])
	lb := float64(p.backends[b].stats.active.Load()) / float64(p.weights[b])
	if lb < la {
		return p.backends[b]
	}
	return p.backends[a]
}

// weighted draws the index of a backend not in skip, in proportion to its
// weight; -1 when none is left.
func (p *pool) weighted(skip tried) int {
	total := p.total
	if len(skip) > 0 {
		for i, b := range p.backends {
			if skip.has(b) {
				total -= p.weights[i]
			}
		}
	}
	if total <= 0 {
		return -1
	}
	r := rand.N(total)
	for i, b := range p.backends {
		if skip.has(b) {
			continue
		}
		if r < p.weights[i] {
			return i
		}
		r -= p.weights[i]
	}
	return -1
}
