package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// agentServerConfig serves app under cluster.test and trusts registrations
// (check none), so that what DNS answers is what the agent says; with no
// healthy node DNS answers nothing rather than every node.
const agentServerConfig = `zones: [cluster.test]
services:
  - name: app
    port: 3000
    check: {type: none}
    answers: {when_none_healthy: empty}
`

// agentServer is a server with the agent tests' config and its DNS address.
type agentServer struct {
	*server
	dns string
}

func startAgentServer(t *testing.T, name string, args ...string) *agentServer {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(agentServerConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, name, append([]string{"--config", cfg}, args...)...)
	return &agentServer{server: s, dns: s.waitOutput(dnsAddrRE, 5*time.Second)}
}

// lookup asks the server's DNS for name's A records.
func lookup(t *testing.T, dnsAddr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, dnsAddr)
	if err != nil {
		t.Fatalf("query %s at %s: %v", name, dnsAddr, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// waitDNS polls DNS every 2ms until name's answer contains addr (want true)
// or not, and returns how long that took.
func waitDNS(t *testing.T, dnsAddr, name, addr string, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := lookup(t, dnsAddr, name)
		has := false
		for _, a := range got {
			has = has || a == addr
		}
		if has == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: answered %v for %v; want %s there=%v", name, got, within, addr, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serve listens on addr and accepts and closes connections until closed.
func serve(t *testing.T, addr string) net.Listener {
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

// startAgent runs `seamark agent` with the common test flags plus args.
func startAgent(t *testing.T, name string, s *agentServer, port int, args ...string) *proc {
	t.Helper()
	base := []string{"agent", "--server", s.url, "--service", "app", "--port", fmt.Sprint(port), "--state-file", "none"}
	return startProc(t, name, seamarkBin, append(base, args...)...)
}

var registeredRE = regexp.MustCompile(`msg=registered .*lease_id=(\w+)`)

func node(t *testing.T, s *agentServer, id string) *api.Node {
	t.Helper()
	nodes, _, err := s.client.Nodes(ctxTimeout(t, 5*time.Second), "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if nodes[i].ID == id {
			return &nodes[i]
		}
	}
	return nil
}

// An agent started before its service's port registers only once the port
// binds; SIGTERM takes the node out of DNS within 200ms and exits 0.
func TestAgentRegistersAfterPortAndLeavesOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	s := startAgentServer(t, "server", "--data-dir", t.TempDir())
	port := freePort(t)
	a := startAgent(t, "agent", s, port, "--id", "app-1", "--address", "127.0.0.1", "--check-interval", "50ms")
	a.waitOutput(regexp.MustCompile(`waiting for the service port`), 10*time.Second)
	time.Sleep(500 * time.Millisecond) // ten probes of a closed port
	if n := node(t, s, "app-1"); n != nil {
		t.Fatalf("registered before the port bound: %+v", n)
	}
	if got := lookup(t, s.dns, "app.cluster.test"); len(got) != 0 {
		t.Fatalf("DNS answered %v before the port bound", got)
	}
	bound := time.Now()
	serve(t, fmt.Sprintf("127.0.0.1:%d", port))
	took := waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", true, 10*time.Second)
	t.Logf("in DNS %v after the port bound (check interval 50ms)", took.Round(time.Millisecond))
	n := node(t, s, "app-1")
	if n == nil || n.Registered.Before(bound.Add(-5*time.Millisecond)) || n.Source != api.SourceAgent || n.Port != port {
		t.Fatalf("got node %+v, want an agent node on port %d registered after %v", n, port, bound)
	}

	a.cmd.Process.Signal(syscall.SIGTERM)
	took = waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", false, 5*time.Second)
	t.Logf("out of DNS %v after SIGTERM", took.Round(time.Millisecond))
	if took > 200*time.Millisecond {
		t.Errorf("out of DNS %v after SIGTERM, want within 200ms", took)
	}
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not exit within 10s of SIGTERM")
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("agent exited %d after SIGTERM, want 0", code)
	}
	if n := node(t, s, "app-1"); n != nil {
		t.Fatalf("after SIGTERM: node %+v still registered", n)
	}
}

// An agent killed with -9 loses its node within its TTL.
func TestAgentKill9LeavesWithinTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	s := startAgentServer(t, "server", "--data-dir", t.TempDir())
	l := serve(t, "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	const ttl = 2 * time.Second
	a := startAgent(t, "agent", s, port, "--id", "app-1", "--address", "127.0.0.1", "--ttl", ttl.String())
	waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", true, 10*time.Second)
	if n := node(t, s, "app-1"); n == nil || n.TTL != api.Duration(time.Second) {
		t.Fatalf("got node %+v, want a 1s lease for ttl 2s", n)
	}
	a.kill()
	took := waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", false, 10*time.Second)
	t.Logf("out of DNS %v after kill -9 (ttl %v: lease 1s plus the store's 0.5s sweep)", took.Round(time.Millisecond), ttl)
	if took > ttl {
		t.Errorf("out of DNS %v after kill -9, want within the ttl %v", took, ttl)
	}
}

// A port that stops answering makes the node unhealthy (out of DNS) within
// --unhealthy-after; when it answers again the node is back.
func TestAgentUnhealthyWhenPortCloses(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	s := startAgentServer(t, "server", "--data-dir", t.TempDir())
	l := serve(t, "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	const after = time.Second
	startAgent(t, "agent", s, port, "--id", "app-1", "--address", "127.0.0.1", "--unhealthy-after", after.String(), "--check-interval", "100ms")
	waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", true, 10*time.Second)
	l.Close()
	took := waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", false, 10*time.Second)
	t.Logf("out of DNS %v after the port closed (--unhealthy-after %v, --check-interval 100ms)", took.Round(time.Millisecond), after)
	if limit := after + 500*time.Millisecond; took > limit {
		t.Errorf("out of DNS %v after the port closed, want within --unhealthy-after and a write (%v)", took, limit)
	}
	if n := node(t, s, "app-1"); n == nil || n.State != api.StateUnhealthy {
		t.Fatalf("got node %+v, want it registered as unhealthy", n)
	}
	serve(t, fmt.Sprintf("127.0.0.1:%d", port))
	took = waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", true, 10*time.Second)
	t.Logf("back in DNS %v after the port reopened", took.Round(time.Millisecond))
}

// The server killed and restarted (same data, same address) under a running
// agent: the agent backs off, never exits, and registers again within one
// backoff step of the server answering.
func TestAgentSurvivesServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startAgentServer(t, "server", "--data-dir", dir, "--http-addr", httpAddr)
	l := serve(t, "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	const backoffMax = time.Second
	a := startAgent(t, "agent", s, port, "--id", "app-1", "--address", "127.0.0.1", "--ttl", "2s",
		"--backoff-min", "100ms", "--backoff-max", backoffMax.String())
	firstLease := a.waitOutput(registeredRE, 10*time.Second)

	s.kill()
	time.Sleep(2500 * time.Millisecond) // longer than the ttl: the agent must register anew
	s2 := startAgentServer(t, "server-again", "--data-dir", dir, "--http-addr", httpAddr)
	up := time.Now()
	var n *api.Node
	for deadline := up.Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n = node(t, s2, "app-1"); n != nil && fmt.Sprintf("%x", n.Lease) != firstLease && n.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: got node %+v, want it registered again on a new lease", n)
		}
	}
	took := time.Since(up)
	t.Logf("registered again %v after the server answered (backoff max %v)", took.Round(time.Millisecond), backoffMax)
	if limit := backoffMax + 500*time.Millisecond; took > limit {
		t.Errorf("registered again %v after the server answered, want within one backoff step (%v) and a write", took, backoffMax)
	}
	waitDNS(t, s2.dns, "app.cluster.test", "127.0.0.1", true, 5*time.Second)
	select {
	case <-a.done:
		t.Fatalf("the agent exited during the outage:\n%s", a.output())
	default:
	}
}

var (
	childOnce sync.Once
	childBin  string
)

// buildChild builds the agent tests' stand-in service once.
func buildChild(t *testing.T) string {
	t.Helper()
	childOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(seamarkBin), "child")
		out, err := exec.Command("go", "build", "-o", bin, "../../internal/agent/testdata/child").CombinedOutput()
		if err != nil {
			t.Logf("build child: %v\n%s", err, out)
			return
		}
		childBin = bin
	})
	if childBin == "" {
		t.Fatal("could not build the test child")
	}
	return childBin
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

var childPidRE = regexp.MustCompile(`child started, pid (\d+)`)

// Wrap mode with a real child: the node registers once the child listens;
// signals reach the child; SIGTERM deregisters before the child sees it; the
// agent exits with the child's code; a child that exits by itself is
// deregistered; a killed agent takes its child with it.
func TestAgentWrap(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	child := buildChild(t)
	s := startAgentServer(t, "server", "--data-dir", t.TempDir())

	t.Run("signals and exit code", func(t *testing.T) {
		port := freePort(t)
		a := startAgent(t, "agent-wrap", s, port, "--id", "app-1", "--address", "127.0.0.1", "--",
			child, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-delay", "300ms", "-term-code", "42", "-nodes-url", s.url+"/v1/services/app/nodes")
		a.waitOutput(regexp.MustCompile(`child listening`), 10*time.Second)
		waitDNS(t, s.dns, "app.cluster.test", "127.0.0.1", true, 10*time.Second)
		a.cmd.Process.Signal(syscall.SIGUSR1)
		a.waitOutput(regexp.MustCompile(`child got user defined signal 1`), 5*time.Second)
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			t.Fatal("wrapped agent did not exit within 10s of SIGTERM")
		}
		if code := a.cmd.ProcessState.ExitCode(); code != 42 {
			t.Fatalf("agent exited %d, want the child's 42:\n%s", code, a.output())
		}
		if out := a.output(); !strings.Contains(out, "child saw 0 nodes") || strings.Count(out, "child got terminated") != 1 {
			t.Fatalf("want the node gone before the child saw SIGTERM, once:\n%s", out)
		}
	})

	t.Run("child exits", func(t *testing.T) {
		port := freePort(t)
		a := startAgent(t, "agent-wrap-exit", s, port, "--id", "app-2", "--address", "127.0.0.2", "--check-interval", "50ms", "--",
			child, "-listen", fmt.Sprintf("127.0.0.2:%d", port), "-exit-after", "2s", "-code", "7")
		waitDNS(t, s.dns, "app.cluster.test", "127.0.0.2", true, 10*time.Second)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			t.Fatal("wrapped agent did not exit within 10s of its child")
		}
		if code := a.cmd.ProcessState.ExitCode(); code != 7 {
			t.Fatalf("agent exited %d, want the child's 7:\n%s", code, a.output())
		}
		if got := lookup(t, s.dns, "app.cluster.test"); len(got) != 0 {
			t.Fatalf("DNS still answers %v after the child exited", got)
		}
	})

	t.Run("agent killed", func(t *testing.T) {
		port := freePort(t)
		a := startAgent(t, "agent-wrap-kill", s, port, "--id", "app-3", "--address", "127.0.0.3", "--",
			child, "-listen", fmt.Sprintf("127.0.0.3:%d", port))
		var pid int
		fmt.Sscan(a.waitOutput(childPidRE, 10*time.Second), &pid)
		waitDNS(t, s.dns, "app.cluster.test", "127.0.0.3", true, 10*time.Second)
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
		for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d outlived its agent by 5s", pid)
			}
		}
	})
}

// The config-file form, with flags on top: the ID comes from a state file,
// the address from a command, an alternate from a literal, and the identity
// endpoint answers who the node is and its healthy peers.
func TestAgentConfigFileAndIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	s := startAgentServer(t, "server", "--data-dir", t.TempDir())
	l := serve(t, "127.0.0.7:0")
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`servers: [%s]
service: app
port: %d
state_file: %s
address_from: ["iface:nosuch0", "cmd:echo 127.0.0.7"]
alternates:
  - {label: public, from: 192.0.2.7}
identity_addr: 127.0.0.1:0
ttl: 30s
`, s.url, port, filepath.Join(dir, "state", "node-id"))), 0o600)
	a := startProc(t, "agent", seamarkBin, "agent", "--config", cfg, "--ttl", "5s")
	waitDNS(t, s.dns, "app.cluster.test", "127.0.0.7", true, 10*time.Second)
	idAddr := a.waitOutput(regexp.MustCompile(`identity endpoint listening.*addr=(127\.0\.0\.1:\d+)`), 5*time.Second)
	data, err := os.ReadFile(filepath.Join(dir, "state", "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(data))
	n := node(t, s, id)
	if n == nil || n.TTL != api.Duration(4*time.Second) || len(n.Alternates) != 1 || n.Alternates[0].Label != "public" {
		t.Fatalf("got node %+v (id %s from the state file), want a 4s lease (--ttl 5s wins over the file) and the public alternate", n, id)
	}
	if got := lookup(t, s.dns, id+".node.cluster.test"); len(got) != 1 || got[0] != "127.0.0.7" {
		t.Fatalf("%s.node.cluster.test: got %v, want 127.0.0.7", id, got)
	}
	var ident api.Identity
	for deadline := time.Now().Add(5 * time.Second); len(ident.Peers) == 0; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+idAddr+api.IdentityPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		ident = api.Identity{}
		err = json.NewDecoder(resp.Body).Decode(&ident)
		resp.Body.Close()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if ident.ID != id || ident.Service != "app" || ident.Address.String() != "127.0.0.7" || ident.Port != port ||
		len(ident.Alternates) != 1 || len(ident.Peers) != 1 || ident.Peers[0].ID != id || ident.Index == 0 {
		t.Fatalf("identity: got %+v", ident)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}
