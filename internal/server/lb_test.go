package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/cli"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBalancerThroughTheAPI: a listener from the config file and one created
// through the API both proxy to a node registered through the API; the new
// port listens within moments of the write; GET /v1/lb, /metrics and
// `seamark listeners` show the live counts.
func TestBalancerThroughTheAPI(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	cfgPort, apiPort := freePort(t), freePort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
zones: [cluster.test]
services:
  - {name: app, port: 3000, check: {type: none}}
listeners:
  - {name: from_file, port: %d, bind: 127.0.0.1, service: app}
`, cfgPort)), 0o644)
	s := startServer(t, cfg, filepath.Join(dir, "data"))
	defer s.Close()
	c := client(t, s)
	ctx := context.Background()
	bp := backend.Addr().(*net.TCPAddr).AddrPort()
	if _, err := c.Register(ctx, api.Node{ID: "echo", Service: "app", Address: bp.Addr(), Port: int(bp.Port())}); err != nil {
		t.Fatal(err)
	}
	echoVia(t, cfgPort, "through the file's listener")

	start := time.Now()
	if _, err := c.PutListener(ctx, api.Listener{Name: "from_api", Port: apiPort, Bind: netip.MustParseAddr("127.0.0.1"), Service: "app"}); err != nil {
		t.Fatal(err)
	}
	for {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
		if err == nil {
			conn.Close()
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("listener created through the API did not listen: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("API write to listening: %v", time.Since(start))
	echoVia(t, apiPort, "through the API's listener")

	stats, err := c.BalancerStats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].Name != "from_api" || stats[1].Total != 1 || len(stats[1].Backends) != 1 || stats[1].Backends[0].Node != "echo" {
		t.Fatalf("GET /v1/lb: got %+v", stats)
	}

	resp, err := http.Get("http://" + s.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `seamark_lb_listener_connections_total{listener="from_file"} 1`) ||
		!strings.Contains(string(body), `seamark_lb_backend_connections_total{node="echo",service="app"}`) {
		t.Errorf("metrics lack the balancer's counters:\n%s", grep(string(body), "seamark_lb_"))
	}

	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"listeners", "--server", "http://" + s.HTTPAddr().String()}, &out, &errOut); code != 0 {
		t.Fatalf("seamark listeners: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"from_file", "from_api", "listening", "BACKENDS OF app", "echo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("seamark listeners output lacks %q:\n%s", want, out.String())
		}
	}
}

func echoVia(t *testing.T, port int, msg string) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, msg)
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != msg {
		t.Fatalf("echo through port %d: got %q, %v", port, got, err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBalancerOff: a server with server.balancer false shares the store but
// opens no listener.
func TestBalancerOff(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
server: {balancer: false}
services: [{name: app, port: 3000}]
listeners: [{name: l, port: %d, bind: 127.0.0.1, service: app}]
`, port)), 0o644)
	s := startServer(t, cfg, filepath.Join(dir, "data"))
	defer s.Close()
	stats, err := client(t, s).BalancerStats(context.Background(), "")
	if err != nil || len(stats) != 0 {
		t.Fatalf("got %v, %v; want no ports", stats, err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatal("a server with balancer: false opened a listener")
	}
}
