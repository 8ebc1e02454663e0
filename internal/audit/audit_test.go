package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/audit"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store/storetest"
)

// Records reach the store's event log as kind audit, in order.
func TestRecordKeepsEvents(t *testing.T) {
	st := storetest.New(t)
	l := audit.New(st, "srv-1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	for i, who := range []string{"ops", "agents", "tsig:update-key"} {
		l.Record(api.Event{Time: time.Unix(1000+int64(i), 0), Who: who, From: "127.0.0.1:1", Action: "POST /v1/services", Result: "201"})
	}
	cancel()
	<-done // Run writes what is queued before it returns
	w := registry.NewWatcher(st, nil)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	go w.Run(wctx)
	<-w.Ready()
	es := w.Current().Events()
	if len(es) != 3 {
		t.Fatalf("got %d events %+v, want 3", len(es), es)
	}
	for i, who := range []string{"ops", "agents", "tsig:update-key"} {
		if es[i].Kind != api.EventAudit || es[i].Who != who || es[i].Result != "201" {
			t.Fatalf("event %d: got %+v, want kind audit by %s", i, es[i], who)
		}
	}
}

// blocked is a store that never answers until released.
type blocked struct {
	once    sync.Once
	release chan struct{}
}

func (b *blocked) AppendEvents(ctx context.Context, es []api.Event, origin string) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return errors.New("store too slow")
	}
}

// A store that lags never blocks Record: past the queue, events are counted
// as dropped.
func TestRecordNeverBlocks(t *testing.T) {
	b := &blocked{release: make(chan struct{})}
	l := audit.New(b, "srv-1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t0 := time.Now()
	for range audit.QueueSize + 1000 {
		l.Record(api.Event{Who: "ops"})
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Record blocked for %v", d)
	}
	if l.Dropped() < 1 {
		t.Fatalf("dropped %d, want some with a stuck store", l.Dropped())
	}
	close(b.release)
	cancel()
	<-done
}
