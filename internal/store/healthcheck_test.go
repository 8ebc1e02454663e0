package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// Health check definitions are opaque JSON: created once, listed, read,
// deleted, and a Load (what the registry reads) carries them without error.
func TestHealthChecks(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.PutHealthCheck(ctx, "hc-1", []byte(`{"id":"hc-1"}`), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHealthCheck(ctx, "hc-1", []byte(`{"id":"hc-1"}`), true); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create twice: got %v, want ErrExists", err)
	}
	if _, err := s.PutHealthCheck(ctx, "hc-2", make([]byte, store.MaxHealthCheckSize+1), false); err == nil {
		t.Fatal("an oversized definition was accepted")
	}
	all, err := s.HealthChecks(ctx)
	if err != nil || len(all) != 1 || string(all["hc-1"]) != `{"id":"hc-1"}` {
		t.Fatalf("HealthChecks: got %q, %v", all, err)
	}
	if it, ok := load(t, s)[store.HealthCheckKey("hc-1")]; !ok || it.Value == nil {
		t.Fatalf("Load: got %+v, want the definition", it)
	}
	if _, err := s.DeleteHealthCheck(ctx, "hc-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HealthCheck(ctx, "hc-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read after delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteHealthCheck(ctx, "hc-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: got %v, want ErrNotFound", err)
	}
}
