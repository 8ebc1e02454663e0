package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server whose store does not answer yet (an external etcd stopped with
// SIGSTOP while the server starts) already serves HTTP: /healthz is 200,
// /readyz is 503 naming what the start waits for, the API is 503 with
// Retry-After; it is ready once the store answers and the first snapshot is
// in.
func TestReadyzUntilFirstSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcd, url := startEtcdProc(t)
	pid := etcd.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, "server", seamarkBin, "server", "--http-addr", httpAddr, "--dns-addr", "127.0.0.1:0",
		"--etcd-endpoints", url)
	base := "http://" + httpAddr
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, http.Header) {
		resp, err := c.Get(base + path)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b), resp.Header
	}

	// /healthz answers while the store is away.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, _ := get("/healthz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200 while the store was stopped:\n%s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkStarting := func(when string) {
		t.Helper()
		code, body, h := get("/readyz")
		var r struct {
			Ready  bool              `json:"ready"`
			Checks map[string]string `json:"checks"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || code != 503 || r.Ready || !strings.Contains(r.Checks["start"], "store") ||
			h.Get("Retry-After") == "" {
			t.Fatalf("%s: /readyz %d %q (Retry-After %q), want 503 naming the store", when, code, body, h.Get("Retry-After"))
		}
		code, body, h = get("/v1/services")
		if code != 503 || !strings.Contains(body, "starting") || h.Get("Retry-After") == "" {
			t.Fatalf("%s: /v1/services %d %q, want 503 saying it is starting, with Retry-After", when, code, body)
		}
	}
	checkStarting("store stopped")

	// The store resumes within its dial timeout (5 s: a store that stays
	// away longer ends the start with an error naming it).
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(regexpMust(`seamark server running`), 30*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, body, _ := get("/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %q 20 s after the store came back, want 200", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body, _ := get("/v1/services"); code != 200 {
		t.Fatalf("/v1/services %d %q once ready, want 200", code, body)
	}
}
