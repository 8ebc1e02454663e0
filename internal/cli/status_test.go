package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

// startTestServer runs a real in-process server (embedded store, every
// listener on 127.0.0.1:0) with the given config text.
func startTestServer(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Server.DataDir, f.Server.HTTPAddr, f.Server.DNSAddr = filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Options{Config: f, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if testing.Verbose() {
		out, _, _ := run(t, "status", "--server", "http://"+s.HTTPAddr().String())
		t.Logf("seamark status:\n%s", out)
	}
	return "http://" + s.HTTPAddr().String()
}

// withFreePort puts a loopback port that was free a moment ago in place of
// the listener's "port: 0".
func withFreePort(t *testing.T, yaml string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strings.Replace(yaml, "port: 0", fmt.Sprintf("port: %d", port), 1)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

const statusConfig = `
zones: [cluster.test]
services:
  - {name: db, port: 5432, check: {type: none}, nodes: [{id: db-a, address: 127.0.0.11}]}
  - {name: app, port: 8080}
listeners:
  - {name: client-one, port: 0, bind: 127.0.0.1, service: app}
groups:
  - name: lb
    members: [{name: lb1, address: 127.0.0.21, priority: 150}]
`

func TestStatus(t *testing.T) {
	url := startTestServer(t, withFreePort(t, statusConfig))
	c, err := api.NewClient([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), api.Node{ID: "app-1", Service: "app", Address: netip.MustParseAddr("127.0.0.31")}); err != nil {
		t.Fatal(err)
	}
	// The health checker announces itself in the store just after start.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := c.Status(context.Background()); err == nil && len(st.Checkers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's health checker never showed in /v1/status")
		}
	}
	out, errOut, code := run(t, "status", "--server", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"store      embedded",
		"nodes      2 (1 healthy; down: app/app-1)",
		"checkers   1 (",
		"listeners  1 (",
		"0 open connections)",
		"groups     1 (lb: NONE ACTIVE)",
		"dashboard  " + url + "/ui/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, errOut, code = run(t, "status", "--server", url, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct {
		Services   int               `json:"services"`
		Nodes      int               `json:"nodes"`
		DownNodes  []string          `json:"down_nodes"`
		Balancer   *balancerSummary  `json:"balancer"`
		GroupRoles []json.RawMessage `json:"group_roles"`
		Dashboard  string            `json:"dashboard"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if v.Services != 2 || v.Nodes != 2 || len(v.DownNodes) != 1 || v.Balancer == nil || len(v.GroupRoles) != 1 || v.Dashboard != url+"/ui/" {
		t.Fatalf("-o json: got %+v", v)
	}
}

func TestCompletion(t *testing.T) {
	url := startTestServer(t, withFreePort(t, statusConfig))
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"bash script", []string{"completion", "bash"}, []string{"bash completion V2 for seamark"}},
		{"zsh script", []string{"completion", "zsh"}, []string{"#compdef seamark"}},
		{"fish script", []string{"completion", "fish"}, []string{"complete -c seamark"}},
		{"verbs", []string{"__complete", ""}, []string{"status", "nodes", "server", "completion"}},
		{"service names from the server", []string{"__complete", "--server", url, "nodes", ""}, []string{"app\n", "db\n", ":4"}},
		{"listener names", []string{"__complete", "--server", url, "listeners", ""}, []string{"client-one\n"}},
		{"group names", []string{"__complete", "--server", url, "groups", ""}, []string{"lb\n"}},
		{"output formats", []string{"__complete", "status", "-o", ""}, []string{"table\n", "json\n"}},
		{"no server: nothing, quickly", []string{"__complete", "--server", "http://127.0.0.1:1", "nodes", ""}, []string{":"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
