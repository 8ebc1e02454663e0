package server_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

func startServer(t *testing.T, cfgPath, dataDir string) *server.Server {
	t.Helper()
	f, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	f.Server.DataDir, f.Server.HTTPAddr = dataDir, "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Options{Config: f, ConfigPath: cfgPath, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func client(t *testing.T, s *server.Server) *api.Client {
	t.Helper()
	c, err := api.NewClient([]string{"http://" + s.HTTPAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(t *testing.T, c *api.Client, service string) []string {
	t.Helper()
	nodes, _, err := c.Nodes(context.Background(), service, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

const first = `
zones: [cluster.test]
services:
  - name: db
    port: 3000
    check: {type: none}
    nodes: [{id: static-a, address: 127.0.0.11}, {id: static-b, address: 127.0.0.12}]
  - name: old
    port: 4000
`

const second = `
zones: [cluster.test]
services:
  - name: db
    port: 3001
    check: {type: none}
    nodes: [{id: static-a, address: 127.0.0.11}]
`

const broken = `
zones: [cluster.test]
services:
  - name: db
    port: 99999
`

func TestReloadOwnsOnlyConfigObjects(t *testing.T) {
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
	c := client(t, s)
	ctx := context.Background()
	if _, err := c.Register(ctx, api.Node{ID: "agent-1", Service: "db", Address: netip.MustParseAddr("127.0.0.21"), Source: api.SourceAgent}); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, c, "db"); !slices.Equal(got, []string{"agent-1", "static-a", "static-b"}) {
		t.Fatalf("got %v", got)
	}

	// A broken file is rejected whole: nothing changes.
	write(broken)
	err := s.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "services[0].port: 99999 is not a port") {
		t.Fatalf("reload of a broken file: got %v, want the error naming services[0].port", err)
	}
	if got := ids(t, c, "db"); !slices.Equal(got, []string{"agent-1", "static-a", "static-b"}) {
		t.Fatalf("after a rejected reload: got %v, want nothing changed", got)
	}

	// A good file changes what the file owns and nothing else.
	write(second)
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshots().WaitRevision(ctx, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ids(t, c, "db")
		svc, err := c.Service(ctx, "db")
		_, oldErr := c.Service(ctx, "old")
		if slices.Equal(got, []string{"agent-1", "static-a"}) && err == nil && svc.Port == 3001 && api.IsNotFound(oldErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reload: nodes %v, db port %d, old service error %v; want [agent-1 static-a], 3001, not found", got, svc.Port, oldErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartCloseLeaksNothing(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfgPath, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	cycle := func() {
		s := startServer(t, cfgPath, filepath.Join(dir, "data"))
		c := client(t, s)
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A blocking read in flight when the server stops must not hold it up.
		go c.Nodes(context.Background(), "db", &api.QueryOptions{Index: 1 << 40, Wait: time.Minute})
		time.Sleep(50 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cycle() // first use starts package-level goroutines (grpc, http transports)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd: cannot count descriptors")
		}
		return len(ents)
	}
	g0, f0 := runtime.NumGoroutine(), fds()
	for range 3 {
		cycle()
	}
	var g, f int
	for range 50 {
		g, f = runtime.NumGoroutine(), fds()
		if g <= g0+2 && f <= f0+2 {
			t.Logf("goroutines %d -> %d, fds %d -> %d", g0, g, f0, f)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	t.Fatalf("after 3 start/close cycles: goroutines %d -> %d, fds %d -> %d\n%s", g0, g, f0, f, buf[:n])
}
