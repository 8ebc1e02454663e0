package registry_test

import (
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Audit events have keys of their own, in batches; the log is still
// oldest first.
func TestEventsInTimeOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ev := func(key string, at time.Duration, kind string) store.Item {
		return store.Item{Key: store.Key{Kind: store.KindEvent, A: key}, Value: &api.Event{Time: t0.Add(at), Kind: kind}}
	}
	snap := registry.Build([]store.Item{
		ev("01-a", 1*time.Second, api.EventHealth),
		ev("03-a", 3*time.Second, api.EventHealth),
		ev("audit-02-a", 2*time.Second, api.EventAudit),
		{Key: store.Key{Kind: store.KindEvent, A: "audit-04-a-0-n2"}, Value: &[]api.Event{ // a batch
			{Time: t0.Add(4 * time.Second), Kind: api.EventAudit},
			{Time: t0.Add(5 * time.Second), Kind: api.EventAudit},
		}},
	}, 5)
	var got []time.Duration
	for _, e := range snap.Events() {
		got = append(got, e.Time.Sub(t0))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v (oldest first across kinds)", got, want)
		}
	}
}
