package registry

import (
	"slices"
	"strings"

	"github.com/seamark/seamark/api"
)

// chunkMax is the most nodes of one piece of a nodeList: a change copies one
// piece and the list of pieces (n/chunkMax pointers), never the n nodes.
const chunkMax = 512

// nodeList is a list of nodes sorted by ID, in pieces shared between
// snapshots. It is a value that is never modified: put and drop return a new
// list that shares every piece but one with the old.
type nodeList struct {
	chunks [][]*api.Node // each sorted and non-empty; each piece's IDs above the last's
	n      int
}

// find returns the piece id belongs in.
func (l nodeList) find(id string) int {
	i, _ := slices.BinarySearchFunc(l.chunks, id, func(c []*api.Node, id string) int {
		return strings.Compare(c[len(c)-1].ID, id)
	})
	return min(i, len(l.chunks)-1)
}

// get returns node id.
func (l nodeList) get(id string) (*api.Node, bool) {
	if l.n == 0 {
		return nil, false
	}
	c := l.chunks[l.find(id)]
	if j, ok := slices.BinarySearchFunc(c, id, byID); ok {
		return c[j], true
	}
	return nil, false
}

// put returns l with n in it (replacing the node of the same ID).
func (l nodeList) put(n *api.Node) nodeList {
	if l.n == 0 {
		return nodeList{chunks: [][]*api.Node{{n}}, n: 1}
	}
	i := l.find(n.ID)
	c := l.chunks[i]
	j, found := slices.BinarySearchFunc(c, n.ID, byID)
	out := nodeList{chunks: slices.Clone(l.chunks), n: l.n}
	if found {
		c = slices.Clone(c)
		c[j] = n
		out.chunks[i] = c
		return out
	}
	c = slices.Insert(slices.Clone(c), j, n)
	out.n++
	if len(c) > chunkMax {
		half := len(c) / 2
		out.chunks = slices.Insert(out.chunks, i+1, slices.Clip(c[half:]))
		c = slices.Clip(c[:half])
	}
	out.chunks[i] = c
	return out
}

// drop returns l without node id.
func (l nodeList) drop(id string) nodeList {
	if l.n == 0 {
		return l
	}
	i := l.find(id)
	c := l.chunks[i]
	j, found := slices.BinarySearchFunc(c, id, byID)
	if !found {
		return l
	}
	out := nodeList{chunks: slices.Clone(l.chunks), n: l.n - 1}
	if len(c) == 1 {
		out.chunks = slices.Delete(out.chunks, i, i+1)
	} else {
		out.chunks[i] = slices.Delete(slices.Clone(c), j, j+1)
	}
	return out
}

// flat returns the nodes in one new slice.
func (l nodeList) flat() []*api.Node {
	out := make([]*api.Node, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

// after returns up to limit nodes with IDs above after, in order, and
// whether more follow.
func (l nodeList) after(after string, limit int) ([]*api.Node, bool) {
	var out []*api.Node
	if l.n == 0 {
		return out, false
	}
	i := 0
	if after != "" {
		i = l.find(after)
	}
	for ; i < len(l.chunks); i++ {
		c := l.chunks[i]
		j := 0
		if after != "" {
			j, _ = slices.BinarySearchFunc(c, after, byID)
			for j < len(c) && c[j].ID <= after {
				j++
			}
		}
		for ; j < len(c); j++ {
			if len(out) == limit {
				return out, true
			}
			out = append(out, c[j])
		}
	}
	return out, false
}

// chunked makes a list of nodes (any order, unique IDs) in pieces of half
// chunkMax, leaving room to grow before a piece splits.
func chunked(nodes []*api.Node) nodeList {
	slices.SortFunc(nodes, func(a, b *api.Node) int { return strings.Compare(a.ID, b.ID) })
	return chunkedSorted(nodes)
}

// chunkedSorted is chunked for nodes already sorted by ID.
func chunkedSorted(nodes []*api.Node) nodeList {
	l := nodeList{n: len(nodes)}
	for len(nodes) > 0 {
		k := min(len(nodes), chunkMax/2)
		l.chunks = append(l.chunks, slices.Clip(nodes[:k]))
		nodes = nodes[k:]
	}
	return l
}
