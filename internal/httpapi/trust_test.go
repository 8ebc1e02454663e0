package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// recorder is an Auditor that keeps what it is given.
type recorder struct {
	mu sync.Mutex
	es []api.Event
}

func (r *recorder) Record(e api.Event) { r.mu.Lock(); r.es = append(r.es, e); r.mu.Unlock() }

func (r *recorder) events() []api.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.Event(nil), r.es...)
}

// trustFixture serves an API with read, register (for db) and write tokens
// over a real store holding services db and other.
func trustFixture(t *testing.T) (*httptest.Server, *httpapi.Handler, *recorder) {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	d := store.Desired{store.ZoneKey("cluster.test."): &api.Zone{Name: "cluster.test.", Source: api.SourceConfig}}
	for _, n := range []string{"db", "other"} {
		svc := api.Service{Name: n, Port: 3000, Source: api.SourceConfig, Check: api.Check{Type: api.CheckNone}}
		svc.SetDefaults()
		d[store.ServiceKey(n)] = &svc
	}
	if _, err := st.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	w := registry.NewWatcher(st, nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	rec := &recorder{}
	h := httpapi.New(httpapi.Options{Store: st, Snapshots: w, AnonymousRead: true, Audit: rec, Tokens: []httpapi.Token{
		{Name: "ro", Secret: "ro-secret", Access: httpapi.AccessRead},
		{Name: "agent-db", Secret: "agent-secret", Access: httpapi.AccessRegister, Services: []string{"db"}},
		{Name: "ops", Secret: "ops-secret", Access: httpapi.AccessWrite},
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h, rec
}

func do(t *testing.T, srv *httptest.Server, method, path, body, token string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var e api.Error
	if json.Unmarshal([]byte(sb.String()), &e) == nil && e.Message != "" {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, sb.String()
}

func TestScopedTokens(t *testing.T) {
	srv, _, _ := trustFixture(t)
	node := `{"id":"n1","address":"127.0.41.1"}`
	tests := []struct {
		name, method, path, body, token string
		code                            int
		msg                             string
	}{
		{"register into its service", "PUT", "/v1/services/db/nodes/n1", node, "agent-secret", 200, ""},
		{"renew in its service", "PUT", "/v1/services/db/nodes/n1/renew", "", "agent-secret", 409, ""}, // no lease: the store says so, auth passed
		{"register into another service", "PUT", "/v1/services/other/nodes/n1", node, "agent-secret", 403, `token "agent-db" has access register for services db: it may not touch nodes of service "other"`},
		{"post into another service", "POST", "/v1/services/other/nodes", node, "agent-secret", 403, "access register"},
		{"deregister in another service", "DELETE", "/v1/services/other/nodes/n1", "", "agent-secret", 403, "access register"},
		{"create a service", "POST", "/v1/services", `{"name":"x","port":80}`, "agent-secret", 403, "this request needs access write"},
		{"create a listener", "POST", "/v1/listeners", `{"name":"l","port":9001,"service":"db"}`, "agent-secret", 403, "this request needs access write"},
		{"change records", "POST", "/v1/zones/cluster.test/changes", `{"changes":[]}`, "agent-secret", 403, "access register"},
		{"read with register token", "GET", "/v1/services", "", "agent-secret", 200, ""},
		{"read token writes a node", "PUT", "/v1/services/db/nodes/n2", node, "ro-secret", 403, "may only read"},
		{"write token registers anywhere", "PUT", "/v1/services/other/nodes/n1", node, "ops-secret", 200, ""},
		{"deregister in its service", "DELETE", "/v1/services/db/nodes/n1", "", "agent-secret", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, srv, tc.method, tc.path, tc.body, tc.token, nil)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Fatalf("got %d %s, want %d %q", code, body, tc.code, tc.msg)
			}
		})
	}
}

func TestHooksOnlyFromConfig(t *testing.T) {
	srv, _, _ := trustFixture(t)
	for _, hook := range []string{"id > /tmp/pwned", "http://127.0.0.1:1/hook"} {
		body := `{"name":"x","port":8099,"check":{"type":"tcp","interval":"200ms","rise":1,"fall":1},"on_change":"` + hook + `"}`
		for _, m := range []struct{ method, path string }{{"POST", "/v1/services"}, {"PUT", "/v1/services/x"}} {
			code, msg := do(t, srv, m.method, m.path, body, "ops-secret", nil)
			if code != 403 || !strings.Contains(msg, "services.on_change: hooks are set only in the config file") {
				t.Fatalf("%s %s with on_change %q: got %d %s, want 403 naming services.on_change", m.method, m.path, hook, code, msg)
			}
		}
	}
	if code, msg := do(t, srv, "GET", "/v1/services/x", "", "", nil); code != 404 {
		t.Fatalf("the refused service exists: %d %s", code, msg)
	}
}

func TestWritesNeedJSONAndSameOrigin(t *testing.T) {
	srv, _, _ := trustFixture(t)
	svc := `{"name":"x","port":80}`
	tests := []struct {
		name string
		hdr  map[string]string
		code int
		msg  string
	}{
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415, `send "Content-Type: application/json"`},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"cross-site browser text/plain", map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "cross-origin write refused"},
		{"cross-site browser json", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"cross-origin without fetch metadata", map[string]string{"Origin": "https://evil.example"}, 403, "cross-origin"},
		{"json with charset", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, srv, "POST", "/v1/services", svc, "ops-secret", tc.hdr)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Fatalf("got %d %s, want %d %q", code, body, tc.code, tc.msg)
			}
		})
	}
	// Same-origin browser writes (the dashboard's own page) and reads from
	// anywhere still work.
	if code, body := do(t, srv, "DELETE", "/v1/services/x", "", "ops-secret", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Fatalf("same-origin delete: got %d %s", code, body)
	}
	if code, body := do(t, srv, "GET", "/v1/services", "", "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); code != 200 {
		t.Fatalf("cross-site read: got %d %s", code, body)
	}
}

func TestSetAuthSwapsTokens(t *testing.T) {
	srv, h, _ := trustFixture(t)
	svc := `{"name":"x","port":80}`
	h.SetAuth(httpapi.Auth{Tokens: []httpapi.Token{{Name: "new", Secret: "new-secret", Access: httpapi.AccessWrite}}})
	if code, body := do(t, srv, "POST", "/v1/services", svc, "ops-secret", nil); code != 401 {
		t.Fatalf("old token after the swap: got %d %s, want 401", code, body)
	}
	if code, body := do(t, srv, "POST", "/v1/services", svc, "new-secret", nil); code != 201 {
		t.Fatalf("new token after the swap: got %d %s, want 201", code, body)
	}
	if code, _ := do(t, srv, "GET", "/v1/services", "", "", nil); code != 401 {
		t.Fatalf("anonymous read after anonymous_read turned off: got %d, want 401", code)
	}
}

func TestAuditNamesToken(t *testing.T) {
	srv, _, rec := trustFixture(t)
	do(t, srv, "PUT", "/v1/services/db/nodes/n1", `{"id":"n1","address":"127.0.41.1"}`, "agent-secret", nil)
	do(t, srv, "POST", "/v1/services", `{"name":"x","port":80}`, "agent-secret", nil)
	do(t, srv, "GET", "/v1/services", "", "agent-secret", nil)
	do(t, srv, "DELETE", "/v1/services/db", "", "guessed", nil)
	do(t, srv, "DELETE", "/v1/services/db", "", "", nil)
	es := rec.events()
	if len(es) != 4 {
		t.Fatalf("got %d audit records %+v, want 4 (reads are not audited)", len(es), es)
	}
	if es[2].Who != "unknown-token" || es[2].Result != "401" || es[3].Who != "anonymous" || es[3].Result != "401" {
		t.Fatalf("refused writes: got %+v and %+v, want unknown-token 401 and anonymous 401", es[2], es[3])
	}
	want := []struct{ action, result string }{{"PUT /v1/services/db/nodes/n1", "200"}, {"POST /v1/services", "403"}}
	for i, w := range want {
		e := es[i]
		if e.Who != "agent-db" || e.Action != w.action || e.Result != w.result || !strings.HasPrefix(e.From, "127.0.0.1:") {
			t.Fatalf("audit %d: got %+v, want who agent-db, %s, %s, from 127.0.0.1", i, e, w.action, w.result)
		}
	}
}
