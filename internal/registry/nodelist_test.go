package registry

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/seamark/seamark/api"
)

// The persistent list against a plain sorted slice, through enough puts and
// drops to split pieces many times; every old version stays as it was.
func TestNodeListMatchesSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var l nodeList
	var ref []string
	type version struct {
		l   nodeList
		ids []string
	}
	var old []version
	for step := range 20000 {
		id := fmt.Sprintf("n%05d", rng.IntN(3000))
		if rng.IntN(3) == 0 {
			l = l.drop(id)
			if i, ok := slices.BinarySearch(ref, id); ok {
				ref = slices.Delete(slices.Clone(ref), i, i+1)
			}
		} else {
			l = l.put(&api.Node{ID: id})
			if i, ok := slices.BinarySearch(ref, id); !ok {
				ref = slices.Insert(slices.Clone(ref), i, id)
			}
		}
		if step%1000 == 0 {
			old = append(old, version{l, ref})
		}
	}
	old = append(old, version{l, ref})
	for i, v := range old {
		var got []string
		for _, n := range v.l.flat() {
			got = append(got, n.ID)
		}
		if !slices.Equal(got, v.ids) || v.l.n != len(v.ids) {
			t.Fatalf("version %d: %d nodes (n=%d), want %d", i, len(got), v.l.n, len(v.ids))
		}
		for _, c := range v.l.chunks {
			if len(c) == 0 || len(c) > chunkMax {
				t.Fatalf("version %d: a piece of %d", i, len(c))
			}
		}
	}
	// get and after agree with the slice.
	for _, id := range []string{"", "n00000", "n01500", "n02999", "n9"} {
		if id != "" {
			_, ok := l.get(id)
			_, want := slices.BinarySearch(ref, id)
			if ok != want {
				t.Fatalf("get(%s) = %v, want %v", id, ok, want)
			}
		}
		page, more := l.after(id, 100)
		i, found := slices.BinarySearch(ref, id)
		if found {
			i++
		}
		want := ref[i:min(len(ref), i+100)]
		var got []string
		for _, n := range page {
			got = append(got, n.ID)
		}
		if !slices.Equal(got, want) || more != (i+100 < len(ref)) {
			t.Fatalf("after(%q): %d nodes more=%v, want %d", id, len(got), more, len(want))
		}
	}
}
