package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// Concurrent writes share transactions (fewer revisions than writes), and
// each still gets its own answer: writes of one key all land, a node of a
// missing service is refused, and a write on a lease that does not exist
// fails alone.
func TestConcurrentWritesCommitTogether(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.PutService(ctx, svc("db"), true); err != nil {
		t.Fatal(err)
	}
	const distinct, same, missing, noLease = 300, 20, 10, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	revs := map[int64]int{}
	errs := map[string][]error{}
	record := func(kind string, rev int64, err error) {
		mu.Lock()
		defer mu.Unlock()
		errs[kind] = append(errs[kind], err)
		if err == nil {
			revs[rev]++
		}
	}
	for i := range distinct {
		wg.Go(func() {
			rev, _, err := s.PutNode(ctx, node("db", fmt.Sprintf("n%d", i), "127.0.63.1"), 0)
			record("distinct", rev, err)
		})
	}
	for range same {
		wg.Go(func() {
			rev, _, err := s.PutNode(ctx, node("db", "same", "127.0.63.2"), 0)
			record("same", rev, err)
		})
	}
	for i := range missing {
		wg.Go(func() {
			_, _, err := s.PutNode(ctx, node("nosuch", fmt.Sprintf("m%d", i), "127.0.63.3"), 0)
			record("missing", 0, err)
		})
	}
	for i := range noLease {
		wg.Go(func() {
			_, err := store.PutNodeOnLease(ctx, s, node("db", fmt.Sprintf("l%d", i), "127.0.63.4"), 0x7eadbeef+int64(i))
			record("nolease", 0, err)
		})
	}
	wg.Wait()
	for _, kind := range []string{"distinct", "same"} {
		for _, err := range errs[kind] {
			if err != nil {
				t.Errorf("%s write: %v", kind, err)
			}
		}
	}
	for _, err := range errs["missing"] {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("node of a missing service: got %v, want ErrNotFound", err)
		}
	}
	for _, err := range errs["nolease"] {
		if err == nil {
			t.Error("write on a lease that does not exist succeeded")
		}
	}
	m := load(t, s)
	for i := range distinct {
		if _, ok := m[store.NodeKey("db", fmt.Sprintf("n%d", i))]; !ok {
			t.Errorf("node n%d missing", i)
		}
	}
	if _, ok := m[store.NodeKey("db", "same")]; !ok {
		t.Error("node same missing")
	}
	for i := range noLease {
		if _, ok := m[store.NodeKey("db", fmt.Sprintf("l%d", i))]; ok {
			t.Errorf("node l%d written on a lease that does not exist", i)
		}
	}
	if len(revs) >= distinct+same {
		t.Errorf("%d writes took %d revisions: not committed together", distinct+same, len(revs))
	}
	t.Logf("%d writes in %d transactions", distinct+same, len(revs))
}
