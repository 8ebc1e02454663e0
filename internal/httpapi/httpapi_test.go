package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
	"github.com/seamark/seamark/internal/ui"
)

const (
	readSecret  = "read-secret"
	writeSecret = "write-secret"
)

// fixture is a real API over a real embedded store, holding zone
// cluster.test, a config-owned service "cfg" and an API-owned service "db".
type fixture struct {
	url    string
	client *api.Client
	st     *store.Store
}

func newFixture(t *testing.T, tokens bool) *fixture {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	cfg := api.Service{Name: "cfg", Port: 3000, Source: api.SourceConfig, Check: api.Check{Type: api.CheckNone}}
	cfg.SetDefaults()
	if _, err := st.Reconcile(ctx, store.Desired{
		store.ZoneKey("cluster.test."): &api.Zone{Name: "cluster.test.", Source: api.SourceConfig},
		store.ServiceKey("cfg"):        &cfg,
	}); err != nil {
		t.Fatal(err)
	}
	w := registry.NewWatcher(st, nil)
	// Each fixture owns its registry: fixtures in one process never collide.
	reg := prometheus.NewRegistry()
	if err := w.Register(reg); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	o := httpapi.Options{Store: st, Snapshots: w, Version: "test", AnonymousRead: true, Registerer: reg, Gatherer: reg}
	if tokens {
		o.Tokens = []httpapi.Token{{Name: "ro", Secret: readSecret, Access: "read"}, {Name: "ops", Secret: writeSecret, Access: "write"}}
	}
	srv := httptest.NewServer(httpapi.New(o))
	t.Cleanup(srv.Close)
	var copts []api.ClientOption
	if tokens {
		copts = append(copts, api.WithToken(writeSecret))
	}
	c, err := api.NewClient([]string{srv.URL}, copts...)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{url: srv.URL, client: c, st: st}
	if _, err := c.CreateService(ctx, api.Service{Name: "db", Port: 3000, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) request(t *testing.T, method, path, body, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

// Every 4xx the API gives, with the words that tell the user what to change.
func TestAPIErrors(t *testing.T) {
	f := newFixture(t, false)
	node := `{"id":"db-a","address":"127.0.0.11"}`
	if code, body, _ := f.request(t, "PUT", "/v1/services/db/nodes/db-a", node, ""); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	// PUT takes the name from the URL when the body has none.
	if code, body, _ := f.request(t, "PUT", "/v1/services/named-by-url", `{"port":80}`, ""); code != 200 {
		t.Fatalf("PUT without a name in the body: got %d %s, want 200", code, body)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"unknown endpoint", "GET", "/v1/nope", "", 404, "no such endpoint: GET /v1/nope"},
		{"wrong method", "PATCH", "/v1/services", "", 405, "PATCH is not allowed on /v1/services; use GET or POST"},
		{"empty body", "POST", "/v1/services", "", 400, "body: empty; send a JSON object"},
		{"bad JSON", "POST", "/v1/services", `{"name":`, 400, "body: JSON ends too early"},
		{"syntax error", "POST", "/v1/services", `{"name" "x"}`, 400, "body: invalid JSON at byte 9"},
		{"unknown field", "POST", "/v1/services", `{"name":"x","prot":1}`, 400, `body: unknown field "prot"`},
		{"wrong type", "POST", "/v1/services", `{"name":"x","port":"80"}`, 400, "port: expected a whole number, got a JSON string"},
		{"two objects", "POST", "/v1/services", `{"name":"x","port":80} {}`, 400, "more than one JSON value"},
		{"bad name", "POST", "/v1/services", `{"name":"Bad_Name","port":80}`, 400, `name: "Bad_Name" is not a valid name`},
		{"bad port", "POST", "/v1/services", `{"name":"x","port":70000}`, 400, "port: 70000 is not a port (1-65535)"},
		{"bad duration", "POST", "/v1/services", `{"name":"x","port":80,"check":{"interval":"1x"}}`, 400, `"1x" is not a duration`},
		{"numeric duration", "POST", "/v1/services", `{"name":"x","port":80,"check":{"interval":5}}`, 400, `write it quoted with a unit`},
		{"several problems at once", "POST", "/v1/services", `{"name":"","port":0,"check":{"type":"ping"}}`, 400, `name: is empty; give it a name; port: 0 is not a port (1-65535); check.type: "ping" is not one of tcp, http, https, tls, none`},
		{"source is not settable", "POST", "/v1/services", `{"name":"x","port":80,"source":"config"}`, 400, `source: "config" cannot be set through the API`},
		{"create existing service", "POST", "/v1/services", `{"name":"db","port":80}`, 409, `service "db": already exists`},
		{"change config-owned service", "PUT", "/v1/services/cfg", `{"name":"cfg","port":81}`, 409, "service cfg is owned by the config file; change it there and reload (SIGHUP)"},
		{"delete config-owned service", "DELETE", "/v1/services/cfg", "", 409, "owned by the config file"},
		{"name differs from URL", "PUT", "/v1/services/db", `{"name":"other","port":80}`, 400, `name: "other" differs from "db" in the URL`},
		{"missing service", "GET", "/v1/services/nope", "", 404, `service "nope" does not exist`},
		{"delete missing service", "DELETE", "/v1/services/nope", "", 404, `service "nope": not found`},
		{"node of missing service", "PUT", "/v1/services/nope/nodes/db-a", node, 404, `service "nope" does not exist; create it first`},
		{"node without address", "PUT", "/v1/services/db/nodes/a", `{"id":"a"}`, 400, `address: is missing; give the address clients must use`},
		{"node with bad address", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"10.0.0.300"}`, 400, `address: ParseAddr("10.0.0.300"): IPv4 field has value >255`},
		{"node with unspecified address", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"0.0.0.0"}`, 400, `0.0.0.0 cannot be dialled`},
		{"node id differs from URL", "PUT", "/v1/services/db/nodes/a", `{"id":"b","address":"127.0.0.1"}`, 400, `id: "b" differs from "a" in the URL`},
		{"node ttl too short", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","ttl":"100ms"}`, 400, `ttl: 100ms is out of range (1s to 24h`},
		{"node bad state", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","state":"up"}`, 400, `state: "up" is not one of healthy, unhealthy, draining, maintenance`},
		{"node bad source", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","source":"config"}`, 400, `use api or agent`},
		{"missing node", "GET", "/v1/services/db/nodes/zz", "", 404, `node "zz" of service "db" does not exist`},
		{"deregister missing node", "DELETE", "/v1/services/db/nodes/zz", "", 404, "not found"},
		{"renew missing node", "PUT", "/v1/services/db/nodes/zz/renew", "", 404, "not found"},
		{"renew node without ttl", "PUT", "/v1/services/db/nodes/db-a/renew", "", 409, "registered without a ttl"},
		{"bad healthy filter", "GET", "/v1/services/db/nodes?healthy=yes", "", 400, `healthy: "yes" is not true or false`},
		{"bad index", "GET", "/v1/services?index=abc", "", 400, `index: "abc" is not a revision`},
		{"bad wait", "GET", "/v1/services?index=1&wait=soon", "", 400, `wait: "soon" is not a duration`},
		{"records of unserved zone", "GET", "/v1/zones/other.test/records", "", 404, "zone other.test. is not served here; zones are: cluster.test."},
		{"bad zone name", "GET", "/v1/zones/bad!zone/records", "", 400, "is not a zone name"},
		{"empty change batch", "POST", "/v1/zones/cluster.test/changes", `{"changes":[]}`, 400, "changes: is empty; nothing to apply"},
		{"bad action", "POST", "/v1/zones/cluster.test/changes", `{"changes":[{"action":"ADD","record":{"name":"a","type":"A","values":["192.0.2.1"]}}]}`, 400, `changes[0].action: "ADD" is not one of CREATE, DELETE, UPSERT`},
		{"bad A value", "POST", "/v1/zones/cluster.test/changes", `{"changes":[{"action":"CREATE","record":{"name":"a","type":"A","values":["nope"]}}]}`, 400, `changes[0].record.values[0]: "nope" is not an IPv4 address`},
		{"delete missing record", "POST", "/v1/zones/cluster.test/changes", `{"changes":[{"action":"CREATE","record":{"name":"x","type":"A","values":["192.0.2.1"]}},{"action":"DELETE","record":{"name":"gone","type":"A"}}]}`, 409, "changes[1] (DELETE gone A): gone.cluster.test. A does not exist"},
		{"record outside zone", "POST", "/v1/zones/cluster.test/changes", `{"changes":[{"action":"UPSERT","record":{"name":"a.other.test.","type":"A","values":["192.0.2.1"]}}]}`, 409, `"a.other.test." is not inside zone cluster.test.`},
		{"listener for missing service", "POST", "/v1/listeners", `{"name":"l","port":9001,"service":"nope"}`, 400, `service: "nope" does not exist`},
		{"listener port and ports", "POST", "/v1/listeners", `{"name":"l","port":9001,"ports":"9100-9101","service":"db"}`, 400, "set either port or ports, not both"},
		{"listener bad range", "POST", "/v1/listeners", `{"name":"l","ports":"9200-9100","service":"db"}`, 400, `"9200-9100" is not a port range`},
		{"missing listener", "DELETE", "/v1/listeners/nope", "", 404, `listener "nope": not found`},
		// Limits (docs/api.md, Limits).
		{"body over the limit", "POST", "/v1/services", `{"name":"x","port":80,"pad":"` + strings.Repeat("x", api.MaxBodySize) + `"}`, 413, "body: 1048607 bytes is larger than 1048576"},
		{"tag value over the limit", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","tags":{"k":"` + strings.Repeat("v", api.MaxTagValueLen+1) + `"}}`, 400, "tags.k: is 4097 bytes; at most 4096"},
		{"too many tags", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","tags":{` + manyTags(api.MaxTags+1, 1) + `}}`, 400, "tags: 65 tags; at most 64"},
		{"node over the object limit", "PUT", "/v1/services/db/nodes/a", `{"id":"a","address":"127.0.0.1","tags":{` + manyTags(api.MaxTags, 1100) + `}}`, 400, "at most 65536 (MaxObjectSize"},
		{"record value over the limit", "POST", "/v1/zones/cluster.test/changes", `{"changes":[{"action":"CREATE","record":{"name":"t","type":"TXT","values":["` + strings.Repeat("t", api.MaxRecordValueLen+1) + `"]}}]}`, 400, "changes[0].record.values[0]: is 4001 bytes; at most 4000"},
		{"batch over the limit", "POST", "/v1/zones/cluster.test/changes", `{"changes":[` + strings.TrimSuffix(strings.Repeat(`{"action":"DELETE","record":{"name":"a","type":"A"}},`, api.MaxBatchChanges+1), ",") + `]}`, 400, "changes: 1001 changes; at most 1000 in one batch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := f.request(t, tc.method, tc.path, tc.body, "")
			var e api.Error
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("answer is not a JSON error: %q", body)
			}
			if code != tc.code || e.Status != tc.code {
				t.Fatalf("got %d (%s), want %d", code, e.Message, tc.code)
			}
			if !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got message %q, want it to contain %q", e.Message, tc.msg)
			}
		})
	}
	// Nothing of the failed batch was applied.
	recs, _, err := f.client.Records(context.Background(), "cluster.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("got %d records after failed batches, want 0", len(recs))
	}
}

func TestAPIAuth(t *testing.T) {
	f := newFixture(t, true)
	svc := `{"name":"x","port":80}`
	tests := []struct {
		name, method, path, body, token string
		code                            int
	}{
		{"read without token", "GET", "/v1/services", "", "", 200},
		{"write without token", "POST", "/v1/services", svc, "", 401},
		{"write with unknown token", "POST", "/v1/services", svc, "guess", 401},
		{"write with read token", "POST", "/v1/services", svc, readSecret, 403},
		{"write with write token", "POST", "/v1/services", svc, writeSecret, 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := f.request(t, tc.method, tc.path, tc.body, tc.token)
			if code != tc.code {
				t.Fatalf("got %d %s, want %d", code, body, tc.code)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestRegisterWithTTL(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	for _, id := range []string{"renewed", "forgotten"} {
		n := api.Node{ID: id, Service: "db", Address: netip.MustParseAddr("127.0.0.1"), TTL: api.Duration(2 * time.Second)}
		res, err := f.client.Register(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if res.Lease == 0 || res.TTL.D() != 2*time.Second {
			t.Fatalf("got %+v, want a lease with ttl 2s", res)
		}
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.client.KeepAlive(kctx, "db", "renewed", 2*time.Second)
	start := time.Now()
	var nodes []api.Node
	for time.Since(start) < 3*time.Second {
		var err error
		nodes, _, err = f.client.Nodes(ctx, "db", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(nodes) != 1 || nodes[0].ID != "renewed" {
		t.Fatalf("3s after registering with ttl 2s: got %v, want only the renewed node", nodes)
	}
	t.Logf("unrenewed node gone after %v", time.Since(start).Round(10*time.Millisecond))
	// The renewed one stays well past its ttl.
	time.Sleep(2500 * time.Millisecond)
	nodes, _, _ = f.client.Nodes(ctx, "db", nil)
	if len(nodes) != 1 {
		t.Fatalf("renewed node gone after 5.5s: %v", nodes)
	}
}

func TestBlockingRead(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	nodes, idx, err := f.client.Nodes(ctx, "db", nil)
	if err != nil || len(nodes) != 0 || idx == 0 {
		t.Fatalf("got %v %d %v, want no nodes and an index", nodes, idx, err)
	}
	// Nothing changes: the read waits for ?wait= and answers the same index.
	t0 := time.Now()
	_, idx2, err := f.client.Nodes(ctx, "db", &api.QueryOptions{Index: idx, Wait: 300 * time.Millisecond})
	if err != nil || idx2 != idx || time.Since(t0) < 250*time.Millisecond {
		t.Fatalf("idle blocking read: got index %d after %v (%v), want %d after ~300ms", idx2, time.Since(t0), err, idx)
	}
	// A change of another service does not wake it; a change of db does.
	got := make(chan []api.Node, 1)
	go func() {
		n, _, _ := f.client.Nodes(ctx, "db", &api.QueryOptions{Index: idx, Wait: 10 * time.Second})
		got <- n
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := f.client.CreateService(ctx, api.Service{Name: "other", Port: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		t.Fatalf("woke on another service's change: %v", n)
	case <-time.After(200 * time.Millisecond):
	}
	t1 := time.Now()
	if _, err := f.client.Register(ctx, api.Node{ID: "a", Service: "db", Address: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if len(n) != 1 {
			t.Fatalf("got %v, want the new node", n)
		}
		t.Logf("blocking read woke %v after the write", time.Since(t1))
	case <-time.After(5 * time.Second):
		t.Fatal("blocking read did not wake on a change")
	}
}

func TestReadYourWrites(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	for i := range 20 {
		id := "n" + string(rune('a'+i))
		if _, err := f.client.Register(ctx, api.Node{ID: id, Service: "db", Address: netip.MustParseAddr("127.0.0.1")}); err != nil {
			t.Fatal(err)
		}
		nodes, _, err := f.client.Nodes(ctx, "db", &api.QueryOptions{HealthyOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != i+1 {
			t.Fatalf("right after registering %d nodes, a read shows %d", i+1, len(nodes))
		}
	}
}

// manyTags returns n JSON members "tN":"vvv..." with values of size bytes.
func manyTags(n, size int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%q:%q", fmt.Sprintf("t%d", i), strings.Repeat("v", size))
	}
	return strings.Join(parts, ",")
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, false)
	code, body, _ := f.request(t, "GET", "/metrics", "", "")
	if code != 200 {
		t.Fatalf("got %d, want 200", code)
	}
	for _, want := range []string{"seamark_snapshot_revision ", "seamark_http_requests_total{", "seamark_write_visible_seconds_bucket{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	t0 := time.Now()
	for i, svc := range []string{"db", "app", "db"} {
		e := api.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: api.EventHealth, Service: svc, Node: fmt.Sprint("n", i), New: api.StateHealthy}
		if _, err := f.st.AppendEvent(ctx, e, "test"); err != nil {
			t.Fatal(err)
		}
	}
	var events []api.Event
	var idx int64
	for deadline := time.Now().Add(5 * time.Second); len(events) < 2 && time.Now().Before(deadline); {
		var err error
		events, idx, err = f.client.Events(ctx, api.EventQuery{Service: "db"}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(events) != 2 || events[0].Node != "n0" || events[1].Node != "n2" {
		t.Fatalf("got %+v, want db's two events oldest first", events)
	}
	if last, _, _ := f.client.Events(ctx, api.EventQuery{Limit: 1}, nil); len(last) != 1 || last[0].Node != "n2" {
		t.Fatalf("limit 1: got %+v, want the newest", last)
	}
	// Streaming: a blocking read wakes on the next event.
	got := make(chan []api.Event, 1)
	go func() {
		e, _, _ := f.client.Events(ctx, api.EventQuery{}, &api.QueryOptions{Index: idx, Wait: 10 * time.Second})
		got <- e
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := f.st.AppendEvent(ctx, api.Event{Time: time.Now(), Kind: api.EventHealth, Node: "n3"}, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if len(e) != 4 {
			t.Fatalf("got %d events after the wake-up, want 4", len(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking read of events did not wake on a new event")
	}
	if code, body, _ := f.request(t, "GET", "/v1/events?limit=0", "", ""); code != 400 || !strings.Contains(body, "limit") {
		t.Fatalf("limit=0: got %d %s, want 400 naming limit", code, body)
	}
}

// A health verdict changes a node's healthy flag: a blocking read of every
// node (what the dashboard and watchers of all nodes use) wakes on it.
func TestAllNodesWakesOnVerdict(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	if _, err := f.client.CreateService(ctx, api.Service{Name: "app", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Register(ctx, api.Node{ID: "app-1", Service: "app", Address: netip.MustParseAddr("127.0.0.31")}); err != nil {
		t.Fatal(err)
	}
	nodes, idx, err := f.client.AllNodes(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "app-1" && n.Healthy {
			t.Fatal("app-1 is healthy before any verdict; want unhealthy (check.initial)")
		}
	}
	got := make(chan []api.Node, 1)
	go func() {
		ns, _, _ := f.client.AllNodes(ctx, &api.QueryOptions{Index: idx, Wait: 10 * time.Second})
		got <- ns
	}()
	time.Sleep(50 * time.Millisecond)
	lease, err := f.st.GrantLease(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	v := api.Verdict{State: api.StateHealthy, Reason: "2 of 2 probes passed", Since: time.Now(), Latency: api.Duration(time.Millisecond)}
	if err := f.st.PutVerdicts(ctx, "c1", []store.VerdictWrite{{Service: "app", Node: "app-1", Verdict: v}}, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case ns := <-got:
		healthy := false
		for _, n := range ns {
			healthy = healthy || (n.ID == "app-1" && n.Healthy && len(n.Checks) == 1)
		}
		if !healthy {
			t.Fatalf("got %+v after the verdict, want app-1 healthy with its verdict", ns)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking read of /v1/nodes did not wake on a verdict")
	}
}

// The dashboard's files are served without a token even when reads need
// one (they hold no data); its API calls still need the token.
func TestDashboardMount(t *testing.T) {
	st := storetest.New(t)
	w := registry.NewWatcher(st, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{
		Store: st, Snapshots: w, UI: ui.Handler(),
		Tokens: []httpapi.Token{{Name: "ro", Secret: readSecret, Access: "read"}},
	}))
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name, path string
		code       int
		location   string
	}{
		{"page without a token", "/ui/", 200, ""},
		{"script without a token", "/ui/app.js", 200, ""},
		{"root redirects to the page", "/", http.StatusFound, "/ui/"},
		{"page path without its slash", "/ui", http.StatusTemporaryRedirect, "/ui/"},
		{"the API still needs the token", "/v1/nodes", 401, ""},
		{"unknown paths are still the API's", "/nope", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("GET %s: got %d, want %d", tc.path, resp.StatusCode, tc.code)
			}
			if loc := resp.Header.Get("Location"); loc != tc.location {
				t.Fatalf("GET %s: Location %q, want %q", tc.path, loc, tc.location)
			}
		})
	}
}
