package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/testenv"
)

// post sends one raw request to the API and returns the status and body.
func post(t *testing.T, hc *http.Client, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// The repro of issue 14: a service with an exec or URL on_change hook sent
// through the API, then a node nobody listens on. The API answers 403
// naming the field and nothing is ever spawned or fetched; a cross-site
// text/plain POST, as any web page can send, is refused too.
func TestTrustHooksOnlyFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	var hits atomic.Int64
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer hookSrv.Close()
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	// The control: the same hook in the config file does run.
	control := filepath.Join(dir, "control")
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(`zones: [cluster.test]
services:
  - name: cfg
    port: 8099
    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
    on_change: "id > `+control+`"
    nodes: [{id: c1, address: 127.0.41.3}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	json := map[string]string{"Content-Type": "application/json"}
	check := `"check":{"type":"tcp","interval":"200ms","timeout":"100ms","rise":1,"fall":1}`
	for _, hook := range []string{"id > " + marker, hookSrv.URL + "/hook"} {
		body := `{"name":"x","port":8099,` + check + `,"on_change":"` + hook + `"}`
		for _, m := range []struct{ method, path string }{{"POST", "/v1/services"}, {"PUT", "/v1/services/x"}} {
			code, msg := post(t, http.DefaultClient, m.method, s.url+m.path, body, json)
			if code != 403 || !strings.Contains(msg, "services.on_change: hooks are set only in the config file") {
				t.Fatalf("%s %s with on_change %q: got %d %s, want 403 naming services.on_change", m.method, m.path, hook, code, msg)
			}
		}
	}
	// A cross-site browser POST (text/plain needs no CORS preflight).
	code, msg := post(t, http.DefaultClient, "POST", s.url+"/v1/services", `{"name":"y","port":8099}`, map[string]string{
		"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
	if code != 403 || !strings.Contains(msg, "cross-origin") {
		t.Fatalf("cross-site text/plain POST: got %d %s, want 403", code, msg)
	}
	// The same body as text/plain from a non-browser client: 415, saying what to send.
	code, msg = post(t, http.DefaultClient, "POST", s.url+"/v1/services", `{"name":"y","port":8099}`, map[string]string{"Content-Type": "text/plain"})
	if code != 415 || !strings.Contains(msg, "application/json") {
		t.Fatalf("text/plain POST: got %d %s, want 415 naming application/json", code, msg)
	}
	// The same service without a hook is fine; a node nobody listens on
	// changes health, and still nothing runs.
	code, msg = post(t, http.DefaultClient, "POST", s.url+"/v1/services", `{"name":"x","port":8099,`+check+`}`, json)
	if code != 201 {
		t.Fatalf("service without a hook: got %d %s", code, msg)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := s.client.Register(ctx, api.Node{ID: "n1", Service: "x", Address: netip.MustParseAddr("127.0.41.1")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		es, _, err := s.client.Events(ctx, api.EventQuery{Service: "x", Kind: api.EventHealth}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no health event for x's node: the test cannot tell whether a hook would run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(control); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the config file's hook did not run: the test cannot tell whether an API hook would")
		}
	}
	time.Sleep(time.Second) // an API hook would have run by now too
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the exec hook ran: %s exists", marker)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the URL hook was fetched %d times", n)
	}
	svc, err := s.client.Service(ctx, "x")
	if err != nil || svc.OnChange != "" {
		t.Fatalf("service x: %+v %v, want no hook", svc, err)
	}
}

// trustConfig has an ops token (write) and an agents token (register,
// service app only), read from files.
const trustConfig = `zones: [cluster.test]
api:
  anonymous_read: false
  tokens:
    - {name: ops, secret_file: ops.token, access: write}
    - {name: agents, secret_file: agents.token, access: register, services: [app]}
services:
  - {name: app, port: 3000, check: {type: none}}
  - {name: other, port: 3001, check: {type: none}}
`

// An agent with a register token (given by --token-file) registers its
// node; the same token cannot create a service or a listener, nor register
// into another service, and every write is audited under the token's name.
func TestTrustRegisterToken(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	dir := t.TempDir()
	for name, secret := range map[string]string{"ops.token": "ops-secret", "agents.token": "agents-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(trustConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	startProc(t, "agent", seamarkBin, "agent", "--server", s.url, "--service", "app", "--port", fmt.Sprint(port),
		"--state-file", "none", "--id", "app-1", "--address", "127.0.0.1", "--token-file", filepath.Join(dir, "agents.token"))
	ops, _ := api.NewClient([]string{s.url}, api.WithToken("ops-secret"))
	ctx := ctxTimeout(t, 30*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ns, _, err := ops.Nodes(ctx, "app", nil); err == nil && len(ns) == 1 && ns[0].ID == "app-1" && ns[0].Source == api.SourceAgent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent with a register token did not register app-1")
		}
	}
	agent, _ := api.NewClient([]string{s.url}, api.WithToken("agents-secret"))
	var ae *api.Error
	if _, err := agent.CreateService(ctx, api.Service{Name: "evil", Port: 80}); !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(ae.Message, `token "agents" has access register`) {
		t.Fatalf("register token creates a service: got %v, want 403 naming the scope", err)
	}
	if _, err := agent.PutListener(ctx, api.Listener{Name: "evil", Port: freePort(t), Service: "app"}); !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(ae.Message, "access register") {
		t.Fatalf("register token creates a listener: got %v, want 403 naming the scope", err)
	}
	_, err = agent.Register(ctx, api.Node{ID: "intruder", Service: "other", Address: netip.MustParseAddr("127.0.41.2")})
	if !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(ae.Message, `may not touch nodes of service "other"`) {
		t.Fatalf("register token registers into another service: got %v, want 403 naming the service", err)
	}
	// The audit trail names the token, through the CLI's filter.
	tokenFile := filepath.Join(dir, "ops.token")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cmd := exec.Command(seamarkBin, "events", "--server", s.url, "--kind", "audit", "--who", "agents", "--limit", "0")
		cmd.Env = append(os.Environ(), "SEAMARK_TOKEN_FILE="+tokenFile, "SEAMARK_TOKEN=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("seamark events: %v\n%s", err, out)
		}
		text := string(out)
		if strings.Contains(text, "PUT /v1/services/app/nodes/app-1") && strings.Contains(text, "POST /v1/services ") {
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				if f := strings.Fields(line); len(f) < 6 || f[1] != "audit" || f[2] != "agents" || !strings.HasPrefix(f[3], "127.0.0.1:") {
					t.Fatalf("audit line does not name the token and the client: %q", line)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seamark events --kind audit --who agents: got\n%s\nwant the agent's registration and its refused writes", text)
		}
	}
	es, _, err := ops.Events(ctx, api.EventQuery{Kind: api.EventAudit, Who: "agents"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refusedService bool
	for _, e := range es {
		if e.Who != "agents" {
			t.Fatalf("filter who=agents gave %+v", e)
		}
		if e.Action == "POST /v1/services" && e.Result == "403" {
			refusedService = true
		}
	}
	if !refusedService {
		t.Fatalf("no audit event of the refused service creation in %+v", es)
	}
}

// SIGHUP rotates secrets: the old token gets 401 and the new one works,
// over one keep-alive connection that survives the reload; the old TSIG key
// gets NOTAUTH from nsupdate and the new one updates the zone.
func TestTrustReloadRotatesSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	nsupdate := testenv.LookPath(t, "nsupdate", "bind9-dnsutils")
	dir := t.TempDir()
	const oldKey, newKey = "c2VhbWFyay10ZXN0LXRzaWcta2V5LTMyLWJ5dGVzLSE=", "cm90YXRlZC1rZXktZm9yLXNlYW1hcmstdGVzdHMtMzJi"
	write := func(token, key string) {
		for name, v := range map[string]string{"ops.token": token, "update.key": key} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("old-token", oldKey)
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(`zones: [cluster.test]
api:
  anonymous_read: false
  tokens: [{name: ops, secret_file: ops.token, access: write}]
dns:
  tsig_keys: [{name: update-key, algorithm: hmac-sha256, secret_file: update.key}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	dnsAddr := s.waitOutput(dnsAddrRE, 5*time.Second)

	// One client, one connection: every request after the first must reuse it.
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
		TLSClientConfig: &tls.Config{}}}
	defer hc.CloseIdleConnections()
	var conns, reused atomic.Int64
	get := func(token string) int {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			conns.Add(1)
			if i.Reused {
				reused.Add(1)
			}
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.url+"/v1/services", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("old-token"); code != 200 {
		t.Fatalf("old token before reload: got %d", code)
	}
	if code := get("new-token"); code != 401 {
		t.Fatalf("new token before reload: got %d, want 401", code)
	}

	host, port, _ := net.SplitHostPort(dnsAddr)
	keyFile := func(name, secret string) string {
		p := filepath.Join(dir, name+".conf")
		conf := fmt.Sprintf("key \"update-key\" {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", secret)
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldConf, newConf := keyFile("old", oldKey), keyFile("new", newKey)
	update := func(conf, name string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, nsupdate, "-t", "3", "-u", "1", "-r", "1", "-k", conf)
		cmd.Stdin = strings.NewReader(fmt.Sprintf("server %s %s\nzone cluster.test\nupdate add %s.cluster.test 60 A 192.0.2.7\nsend\n", host, port, name))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := update(oldConf, "before"); err != nil {
		t.Fatalf("nsupdate with the key before rotation: %v\n%s", err, out)
	}

	write("new-token", newKey)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitOutput(regexpMust(`msg=reloaded`), 10*time.Second)

	if code := get("old-token"); code != 401 {
		t.Fatalf("old token after reload: got %d, want 401", code)
	}
	if code := get("new-token"); code != 200 {
		t.Fatalf("new token after reload: got %d, want 200", code)
	}
	if n, r := conns.Load(), reused.Load(); r != n-1 {
		t.Fatalf("%d requests reused the connection %d times, want %d: the reload dropped the open connection", n, r, n-1)
	}
	if out, err := update(oldConf, "old"); err == nil || !strings.Contains(out, "NOTAUTH") {
		t.Fatalf("nsupdate with the old key after rotation: got %v\n%s\nwant NOTAUTH", err, out)
	}
	if out, err := update(newConf, "new"); err != nil {
		t.Fatalf("nsupdate with the new key after rotation: %v\n%s", err, out)
	}
	// The DNS UPDATEs are audited under the key's name.
	ops, _ := api.NewClient([]string{s.url}, api.WithToken("new-token"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		es, _, err := ops.Events(ctxTimeout(t, 5*time.Second), api.EventQuery{Who: "tsig:update-key"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) >= 2 && strings.HasPrefix(es[0].Action, "UPDATE cluster.test. add before.cluster.test.") && es[0].Result == "NOERROR" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events of tsig:update-key: got %+v, want the two accepted UPDATEs", es)
		}
	}
}
