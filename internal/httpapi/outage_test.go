package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// While the store is away a write is a 503 with Retry-After within 2 s, and
// /v1/status answers from the snapshot and the last probe, saying why.
func TestStoreAwayWritesFailFast(t *testing.T) {
	ctx := context.Background()
	etcd := storetest.New(t)
	svc := api.Service{Name: "db", Port: 3000, Check: api.Check{Type: api.CheckNone}, Source: api.SourceAPI}
	svc.SetDefaults()
	if _, err := etcd.PutService(ctx, svc, true); err != nil {
		t.Fatal(err)
	}
	eps := etcdEndpoints(t, etcd)
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	user, pw := etcd.Credentials()
	st, err := store.Open(octx, store.Options{Endpoints: eps, Username: user, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := registry.NewWatcher(st, nil)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go w.Run(wctx)
	<-w.Ready()
	h := httpapi.New(httpapi.Options{Store: st, Snapshots: w, StoreProbeEvery: 200 * time.Millisecond})
	go h.Run(wctx)
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{url: srv.URL}

	etcd.Close() // the external store goes away

	t0 := time.Now()
	code, body, hdr := f.request(t, "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1"}`, "")
	took := time.Since(t0)
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "the store is unavailable") {
		t.Fatalf("write while the store is away: got %d, Retry-After %q, %s; want 503 with Retry-After naming the store", code, hdr.Get("Retry-After"), body)
	}
	if took > 2*time.Second {
		t.Fatalf("write while the store is away took %v, want at most 2s", took)
	}
	// Status answers at once from the snapshot and the cached probe.
	deadline := time.Now().Add(10 * time.Second)
	for {
		t0 := time.Now()
		code, body, _ := f.request(t, "GET", "/v1/status", "", "")
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("status took %v while the store is away, want it to answer from the cache", d)
		}
		var s api.Status
		if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
			t.Fatalf("status: got %d %s", code, body)
		}
		if s.Services != 1 {
			t.Fatalf("status services: got %d, want 1 (from the snapshot)", s.Services)
		}
		if !s.Store.Available && s.Store.Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status still says the store is available: %+v", s.Store)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func etcdEndpoints(t *testing.T, st *store.Store) []string {
	t.Helper()
	s, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Endpoints
}
