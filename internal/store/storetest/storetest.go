// Package storetest starts a real embedded etcd for tests: on loopback, on free
// ports, in the test's temporary directory, stopped when the test ends.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/store"
)

// New opens a Store on a fresh embedded etcd owned by t.
func New(t testing.TB) *store.Store {
	t.Helper()
	return NewAt(t, t.TempDir())
}

// NewAt opens a Store on an embedded etcd whose data lives in dir (so a test
// can stop it and open it again on the same data).
func NewAt(t testing.TB, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A test's etcd runs in the test process (under -race, several times
	// slower): calls without a deadline get 10 s, not the server's 1.5 s.
	s, err := store.Open(ctx, store.Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
