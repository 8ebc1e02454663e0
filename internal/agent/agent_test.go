package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

// The tests below run the agent against a real seamark server (embedded etcd,
// HTTP API) in this process; only the agent's timings are shortened.

const serverConfig = `
zones: [cluster.test]
services:
  - name: app
    port: 3000
    check: {type: none}
    answers: {when_none_healthy: empty}
`

type testServer struct {
	*server.Server
	url    string
	client *api.Client
	tr     *http.Transport
}

// startServer starts a seamark server on dataDir; httpAddr "" picks a port.
func startServer(t *testing.T, dataDir, httpAddr string) *testServer {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte(serverConfig))
	if err != nil {
		t.Fatal(err)
	}
	if httpAddr == "" {
		httpAddr = "127.0.0.1:0"
	}
	f.Server.DataDir, f.Server.HTTPAddr = dataDir, httpAddr
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Options{Config: f, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, url: "http://" + s.HTTPAddr().String(), tr: &http.Transport{}}
	if ts.client, err = api.NewClient([]string{ts.url}, api.WithHTTPClient(&http.Client{Transport: ts.tr})); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { s.Close() }) })
	return ts
}

// port is the server's HTTP port.
func (s *testServer) port() int { return s.HTTPAddr().(*net.TCPAddr).Port }

// testConfig is a valid config with short timings against servers.
func testConfig(servers ...string) Config {
	c := Config{
		Servers:        servers,
		Service:        "app",
		Port:           0, // set by the test
		ID:             "app-1",
		StateFile:      NoStateFile,
		Address:        "127.0.0.1",
		TTL:            api.Duration(2 * time.Second),
		UnhealthyAfter: api.Duration(400 * time.Millisecond),
		CheckInterval:  api.Duration(50 * time.Millisecond),
		BackoffMin:     api.Duration(50 * time.Millisecond),
		BackoffMax:     api.Duration(300 * time.Millisecond),
	}
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log lines to t.Log, so they show only for failed tests.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runAgent runs a until the test ends; stop cancels it and returns Run's error.
func runAgent(t *testing.T, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// listen opens a loopback listener that accepts and closes connections.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return portOf(l)
}

// waitNode waits with blocking reads until cond holds for the node (nil when
// absent) and returns it and how long that took.
func waitNode(t *testing.T, c *api.Client, id string, within time.Duration, cond func(*api.Node) bool) (*api.Node, time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var index int64
	for {
		nodes, next, err := c.Nodes(ctx, "app", &api.QueryOptions{Index: index, Wait: within})
		if err != nil {
			t.Fatalf("waiting for node %s: %v", id, err)
		}
		var n *api.Node
		for i := range nodes {
			if nodes[i].ID == id {
				n = &nodes[i]
			}
		}
		if cond(n) {
			return n, time.Since(start)
		}
		index = next
	}
}

func present(n *api.Node) bool { return n != nil }
func absent(n *api.Node) bool  { return n == nil }

// The agent waits for its port, registers on a lease (TTL less the store's
// sweep), renews it past the lease, deregisters when stopped, and leaves no
// goroutine behind.
func TestRegistersAfterPortAndDeregistersOnStop(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	srv.tr.CloseIdleConnections()
	port := freePort(t)
	checkLeaks := leakCheck(t, srv.port(), port)
	cfg := testConfig(srv.url)
	cfg.Port = port
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if a.Lease() != time.Second {
		t.Fatalf("lease for ttl 2s: got %v, want 1s", a.Lease())
	}
	stop := runAgent(t, a)

	time.Sleep(300 * time.Millisecond) // six probes of a closed port
	if n, _, err := srv.client.Nodes(context.Background(), "app", nil); err != nil || len(n) != 0 {
		t.Fatalf("before the port is up: got nodes %+v (%v), want none", n, err)
	}
	bound := time.Now()
	l := listen(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
	n, took := waitNode(t, srv.client, "app-1", 5*time.Second, present)
	t.Logf("registered %v after the port bound", took.Round(time.Millisecond))
	if n.Registered.Before(bound.Add(-time.Millisecond)) {
		t.Errorf("registered at %v, before the port bound at %v", n.Registered, bound)
	}
	if n.Source != api.SourceAgent || n.State != api.StateHealthy || !n.Healthy || n.Port != port || n.TTL != api.Duration(time.Second) || n.Lease == 0 {
		t.Errorf("got node %+v, want a healthy agent node on port %d with a 1s lease", n, port)
	}
	lease := n.Lease
	time.Sleep(2500 * time.Millisecond) // well past the 1s lease: only renewals keep it
	n, _ = waitNode(t, srv.client, "app-1", time.Second, func(*api.Node) bool { return true })
	if n == nil || n.Lease != lease {
		t.Fatalf("after 2.5s: got node %+v, want it still registered on lease %x", n, lease)
	}
	stopped := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitNode(t, srv.client, "app-1", 2*time.Second, absent)
	t.Logf("deregistered %v after stop", time.Since(stopped).Round(time.Millisecond))
	l.Close()
	srv.tr.CloseIdleConnections()
	checkLeaks()
}

// goroutines returns the running goroutines' stacks by ID.
func goroutines() map[string]string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		out[head] = g
	}
	return out
}

// notAgent marks goroutines of the in-process server and of the test itself,
// which may start at any time.
var notAgent = []string{"agent.listen", "agent.leakCheck", "seamark/internal/dns", "seamark/internal/health",
	"seamark/internal/registry", "seamark/internal/server", "seamark/internal/store", "seamark/internal/httpapi", "seamark/internal/lb", "seamark/internal/audit", "seamark/internal/ha",
	"go.etcd.io/", "google.golang.org/grpc"}

// agentFiles lists this process's open descriptors that may be the
// agent's: every file and pipe but the test's embedded etcd's own (its WAL
// pipeline opens the next segment, wal/0.tmp, whenever it likes), and the
// sockets with a local or remote port among ports (the server's HTTP port,
// the service's port). The in-process server's other sockets (its store
// client's connections, its listeners) and epoll instances (its checker
// keeps one until it has been idle a while) are not the agent's doing.
func agentFiles(t *testing.T, ports []int) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	socks := socketPorts(t)
	var out []string
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/self/fd/" + fd.Name())
		switch {
		case target == "", strings.HasPrefix(target, "anon_inode:"),
			strings.Contains(target, "/member/wal"), strings.Contains(target, "/member/snap"):
			continue
		case strings.HasPrefix(target, "socket:["):
			ends, ok := socks[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]
			if !ok || !slices.ContainsFunc(ports, func(p int) bool { return ends[0] == p || ends[1] == p }) {
				continue
			}
		}
		out = append(out, fd.Name()+" -> "+target)
	}
	return out
}

// socketPorts maps the inode of each of this process's TCP sockets to its
// local and remote ports (/proc/self/net/tcp and tcp6).
func socketPorts(t *testing.T) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 {
				continue
			}
			port := func(addr string) int {
				_, hex, _ := strings.Cut(addr, ":")
				v, _ := strconv.ParseInt(hex, 16, 32)
				return int(v)
			}
			out[fields[9]] = [2]int{port(fields[1]), port(fields[2])}
		}
	}
	return out
}

// leakCheck returns a check that fails when goroutines started after the
// call still run, or more of the agent's files are open (agentFiles, with
// ports the server's HTTP port and the service's), allowing a moment for
// exiting ones to finish, leaving out the server's goroutines and the
// test's own.
func leakCheck(t *testing.T, ports ...int) func() {
	before, fdsBefore := goroutines(), agentFiles(t, ports)
	return func() {
		t.Helper()
		// Up to 8 s for the server's side of the agent's connections to
		// see them closed, on a loaded machine.
		for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			open := agentFiles(t, ports)
			if len(open) <= len(fdsBefore) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("open files: %d before, %d after stop:\nbefore:\n%s\nafter:\n%s", len(fdsBefore), len(open), strings.Join(fdsBefore, "\n"), strings.Join(open, "\n"))
			}
		}
		// Up to 8 s: a context's propagation goroutine lives until its
		// context ends, and request contexts (the agent's, the in-process
		// server's store calls) end by their deadlines of at most 5 s. A
		// goroutine still there after that has no owner.
		var leaked []string
		for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			leaked = leaked[:0]
			for id, g := range goroutines() {
				if _, ok := before[id]; !ok && !slices.ContainsFunc(notAgent, func(s string) bool { return strings.Contains(g, s) }) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
		}
		t.Fatalf("%d goroutines left after stop:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// When the port stops answering, the node is marked unhealthy within
// UnhealthyAfter, and healthy again when the port answers.
func TestUnhealthyWhenPortStops(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	l := listen(t, "127.0.0.1:0")
	cfg := testConfig(srv.url)
	cfg.Port = portOf(l)
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitNode(t, srv.client, "app-1", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	l.Close()
	_, took := waitNode(t, srv.client, "app-1", 5*time.Second, func(n *api.Node) bool { return n != nil && n.State == api.StateUnhealthy && !n.Healthy })
	t.Logf("unhealthy %v after the port closed (unhealthy_after %v, check_interval %v)", took.Round(time.Millisecond), cfg.UnhealthyAfter, cfg.CheckInterval)
	// The exact moment is asserted on a fake clock by
	// TestMonitorUnhealthyAfterOnClock; here only that it happens end to
	// end, with a margin a loaded machine cannot overrun.
	if limit := cfg.UnhealthyAfter.D() + 5*time.Second; took > limit {
		t.Errorf("unhealthy after %v, want within unhealthy_after plus a write (%v)", took, limit)
	}
	listen(t, l.Addr().String())
	_, took = waitNode(t, srv.client, "app-1", 5*time.Second, func(n *api.Node) bool { return n != nil && n.State == api.StateHealthy && n.Healthy })
	t.Logf("healthy again %v after the port reopened", took.Round(time.Millisecond))
}

// With the first server URL dead, the agent registers through the second; when
// the only server goes away and comes back on the same address and data, the
// agent registers again (a new lease) within one backoff step.
func TestSurvivesServerOutage(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	addr := srv.HTTPAddr().String()
	l := listen(t, "127.0.0.1:0")
	dead := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := testConfig(dead, srv.url)
	cfg.Port = portOf(l)
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	n, _ := waitNode(t, srv.client, "app-1", 5*time.Second, present)
	oldLease := n.Lease

	srv.Close()
	time.Sleep(2 * a.Lease()) // the agent notices the lease is gone and backs off
	srv2 := startServer(t, dir, addr)
	up := time.Now()
	n, took := waitNode(t, srv2.client, "app-1", 10*time.Second, func(n *api.Node) bool { return n != nil && n.Lease != oldLease && n.Healthy })
	t.Logf("registered again %v after the server came back (backoff max %v); lease %x -> %x", took.Round(time.Millisecond), cfg.BackoffMax, oldLease, n.Lease)
	if limit := cfg.BackoffMax.D() + time.Second; time.Since(up) > limit {
		t.Errorf("back after %v, want within one backoff step (%v) and a write", time.Since(up), cfg.BackoffMax)
	}
}

// A service that does not exist yet is retried until it is created.
func TestWaitsForService(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	l := listen(t, "127.0.0.1:0")
	cfg := testConfig(srv.url)
	cfg.Service = "later"
	cfg.Port = portOf(l)
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	time.Sleep(200 * time.Millisecond)
	if _, err := srv.client.CreateService(context.Background(), api.Service{Name: "later", Port: cfg.Port, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		nodes, _, err := srv.client.Nodes(context.Background(), "later", nil)
		if err == nil && len(nodes) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node of a service created late: got %+v (%v)", nodes, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitTimeout bounds the wait for the port with an error that says what to check.
func TestWaitTimeout(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	cfg := testConfig(srv.url)
	cfg.Port = freePort(t)
	cfg.WaitTimeout = api.Duration(300 * time.Millisecond)
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.Run(context.Background())
	if !errors.Is(err, ErrPortTimeout) || !strings.Contains(err.Error(), "is the service running") {
		t.Fatalf("got %v, want ErrPortTimeout saying what to check", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("returned after %v, want about 300ms", took)
	}
	if n, _, _ := srv.client.Nodes(context.Background(), "app", nil); len(n) != 0 {
		t.Errorf("registered %+v without the port", n)
	}
}

// The identity endpoint answers who the node is and its healthy peers, as
// the seed library expects.
func TestIdentityEndpoint(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	ctx := context.Background()
	if _, err := srv.client.Register(ctx, api.Node{ID: "app-2", Service: "app", Address: netip.MustParseAddr("127.0.0.22")}); err != nil {
		t.Fatal(err)
	}
	l := listen(t, "127.0.0.1:0")
	cfg := testConfig(srv.url)
	cfg.Port = portOf(l)
	cfg.IdentityAddr = "127.0.0.1:0"
	cfg.Alternates = []Alternate{{Label: "public", From: "192.0.2.7"}, {Label: "cmd", From: "cmd:echo 127.0.0.7"}}
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	url := "http://" + a.IdentityAddr().String() + api.IdentityPath
	runAgent(t, a)
	waitNode(t, srv.client, "app-1", 5*time.Second, present)

	var id api.Identity
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %s %s", url, resp.Status, body)
		}
		id = api.Identity{}
		if err := json.Unmarshal(body, &id); err != nil {
			t.Fatal(err)
		}
		if len(id.Peers) == 2 || time.Now().After(deadline) {
			break
		}
	}
	want := api.Identity{ID: "app-1", Service: "app", Address: netip.MustParseAddr("127.0.0.1"), Port: cfg.Port,
		Alternates: []api.AltAddress{{Label: "public", Address: netip.MustParseAddr("192.0.2.7")}, {Label: "cmd", Address: netip.MustParseAddr("127.0.0.7")}}}
	if id.ID != want.ID || id.Service != want.Service || id.Address != want.Address || id.Port != want.Port || len(id.Alternates) != 2 || id.Alternates[0] != want.Alternates[0] || id.Alternates[1] != want.Alternates[1] {
		t.Errorf("got identity %+v, want %+v", id, want)
	}
	if len(id.Peers) != 2 || id.Peers[0].ID != "app-1" || id.Peers[1].ID != "app-2" || id.Index == 0 {
		t.Errorf("got peers %+v index %d, want app-1 and app-2 with an index", id.Peers, id.Index)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"POST", api.IdentityPath, 405},
		{"GET", "/v1/nope", 404},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+a.IdentityAddr().String()+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || e.Status != tc.status || e.Message == "" {
			t.Errorf("%s %s: got %d %+v, want %d with a message", tc.method, tc.path, resp.StatusCode, e, tc.status)
		}
	}
}
