package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// notLoaded is a registry that has not loaded its first snapshot.
type notLoaded struct{}

func (notLoaded) Current() *registry.Snapshot             { return nil }
func (notLoaded) Next(*registry.Snapshot) <-chan struct{} { return make(chan struct{}) }
func (notLoaded) WaitRevision(ctx context.Context, _ int64) (*registry.Snapshot, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// balancerWith reports one listener port in the given state.
type balancerWith string

func (b balancerWith) Stats() []api.ListenerStats {
	return []api.ListenerStats{{Name: "cust", Addr: netip.MustParseAddrPort("0.0.0.0:9001"), State: string(b), Error: "bind: address already in use"}}
}

func readyz(t *testing.T, url string) (int, httpapi.Readiness) {
	t.Helper()
	f := &fixture{url: url}
	code, body, _ := f.request(t, "GET", httpapi.ReadyzPath, "", "")
	var r httpapi.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return code, r
}

// /readyz is 503 until the first snapshot is loaded, while the store is away
// and while a listener port is not bound, and says which; /healthz is 200
// whenever the process serves HTTP. Neither needs a token.
func TestReadyz(t *testing.T) {
	ctx := context.Background()
	etcd := storetest.New(t)
	user, pw := etcd.Credentials()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(octx, store.Options{Endpoints: etcdEndpoints(t, etcd), Username: user, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	tokens := []httpapi.Token{{Name: "ops", Secret: writeSecret, Access: "write"}}
	loading := httpapi.New(httpapi.Options{Store: st, Snapshots: notLoaded{}, Tokens: tokens, StoreProbeEvery: 100 * time.Millisecond})
	lsrv := httptest.NewServer(loading)
	defer lsrv.Close()
	if code, r := readyz(t, lsrv.URL); code != 503 || r.Ready || !strings.Contains(r.Checks["snapshot"], "still loading") {
		t.Errorf("before the first snapshot: %d %+v, want 503 naming the snapshot", code, r)
	}

	w := registry.NewWatcher(st, nil)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go w.Run(wctx)
	<-w.Ready()
	h := httpapi.New(httpapi.Options{Store: st, Snapshots: w, Tokens: tokens, StoreProbeEvery: 100 * time.Millisecond})
	go h.Run(wctx)
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{url: srv.URL}
	waitReady := func(want int, what string, ok func(httpapi.Readiness) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, r := readyz(t, srv.URL)
			if code == want && ok(r) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %+v, want %d", what, code, r, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(200, "loaded, store up", func(r httpapi.Readiness) bool { return r.Ready && r.Checks["store"] == "ok" })
	if code, body, _ := f.request(t, "GET", httpapi.HealthzPath, "", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}

	etcd.Close() // the store goes away
	waitReady(503, "store away", func(r httpapi.Readiness) bool { return strings.HasPrefix(r.Checks["store"], "unavailable") })
	if code, _, _ := f.request(t, "GET", httpapi.HealthzPath, "", ""); code != 200 {
		t.Errorf("healthz while the store is away: %d, want 200 (the process is alive)", code)
	}

	// A port that could not be bound.
	b := httpapi.New(httpapi.Options{Store: st, Snapshots: w, Balancer: balancerWith(api.ListenerFailed)})
	bsrv := httptest.NewServer(b)
	defer bsrv.Close()
	if _, r := readyz(t, bsrv.URL); r.Ready || !strings.Contains(r.Checks["listeners"], "cust port 9001: bind: address already in use") {
		t.Errorf("failed listener: %+v, want not ready naming the port", r)
	}
}
