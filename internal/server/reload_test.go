package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: got %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// An empty file on SIGHUP is refused unless it says allow_empty, and the
// refusal shows in /v1/status and the metrics. Two servers in one process
// keep their own metrics.
func TestReloadRefusesAnEmptyFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "seamark.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(first)
	s := startServer(t, cfgPath, filepath.Join(dir, "data"))
	defer s.Close()
	other := startServer(t, cfgPath, filepath.Join(dir, "data2"))
	defer other.Close()
	c := client(t, s)
	ctx := context.Background()

	write("")
	err := s.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "allow_empty: true") || !strings.Contains(err.Error(), "all 2 services") {
		t.Fatalf("reload of an empty file: got %v, want a refusal naming all 2 services and allow_empty", err)
	}
	if _, err := c.Service(ctx, "db"); err != nil {
		t.Fatalf("after a refused reload: %v, want db still there", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config == nil || st.Config.LastReloadSuccess || !strings.Contains(st.Config.Error, "allow_empty") || st.Config.LastSuccess.IsZero() {
		t.Fatalf("status after a refused reload: got %+v, want last_reload_success false with the error", st.Config)
	}
	if m := metricsText(t, s.HTTPAddr().String()); !strings.Contains(m, "\nseamark_config_last_reload_success 0\n") {
		t.Fatalf("metrics after a refused reload lack seamark_config_last_reload_success 0")
	}
	m := metricsText(t, other.HTTPAddr().String())
	for _, want := range []string{"\nseamark_config_last_reload_success 1\n", "seamark_config_last_reload_success_timestamp_seconds ", "go_goroutines ", "process_open_fds ", `seamark_conn_limit{surface="api"}`, "seamark_fd_limit "} {
		if !strings.Contains(m, want) {
			t.Errorf("the other server's metrics lack %q", want)
		}
	}

	write("allow_empty: true\n")
	if err := s.Reload(ctx); err != nil {
		t.Fatalf("reload of an empty file that says allow_empty: %v", err)
	}
	if st, err := c.Status(ctx); err != nil || !st.Config.LastReloadSuccess {
		t.Fatalf("status after a good reload: %+v %v", st.Config, err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.Service(ctx, "db"); api.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("allow_empty: true did not delete the config's services")
		}
	}
}

// The API's connection cap, header and body deadlines leave blocking reads
// alone: a ?wait= longer than nothing still waits and answers.
func TestBlockingReadThroughTheLimits(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfgPath, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfgPath, filepath.Join(dir, "data"))
	defer s.Close()
	t0 := time.Now()
	resp, err := http.Get("http://" + s.HTTPAddr().String() + "/v1/services?index=1000000&wait=2s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(t0); resp.StatusCode != 200 || d < 1900*time.Millisecond {
		t.Fatalf("blocking read with wait=2s: got %d after %v, want 200 after about 2s", resp.StatusCode, d)
	}
	// A write with a body goes through the body deadline and size limit.
	req, _ := http.NewRequest("PUT", "http://"+s.HTTPAddr().String()+"/v1/services/db/nodes/n1", strings.NewReader(`{"id":"n1","address":"127.0.43.20"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("write: got %d, want 200", resp.StatusCode)
	}
}
