package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// TestMain doubles as the backend process: with SEAMARK_LB_BACKEND=name it
// serves the greeting echo protocol on 127.0.0.1:0, prints its address, and
// runs until killed or its stdin closes.
func TestMain(m *testing.M) {
	if name := os.Getenv("SEAMARK_LB_BACKEND"); name != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("ADDR", ln.Addr().String())
		go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
		serveEcho(ln, name)
		return
	}
	os.Exit(m.Run())
}

// serveEcho answers every connection with "<name>\n" and then echoes what it
// reads; a clean end of the client's stream ends the echo with a half close.
func serveEcho(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.WriteString(c, name+"\n")
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
		}()
	}
}

// echoBackend runs the echo protocol in this process; closed with the test.
func echoBackend(t testing.TB, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveEcho(ln, name)
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// backendProc is an echo backend in its own process.
type backendProc struct {
	name string
	addr netip.AddrPort
	cmd  *exec.Cmd
}

// startBackendProc starts a backend process owned by t.
func startBackendProc(t testing.TB, name string) *backendProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SEAMARK_LB_BACKEND="+name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, perr := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")))
	if err != nil || perr != nil {
		t.Fatalf("backend %s: %q %v %v", name, line, err, perr)
	}
	return &backendProc{name: name, addr: addr, cmd: cmd}
}

// failures records what the balancer reports to the checker.
type failures struct {
	mu    sync.Mutex
	nodes []string
}

func (f *failures) ConnectFailed(service, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = append(f.nodes, service+"/"+node)
}

func (f *failures) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.nodes...)
}

// env is a balancer on a real embedded store and registry.
type env struct {
	t     testing.TB
	ctx   context.Context
	stop  func() // stops the balancer (and is safe to call twice)
	st    *store.Store
	w     *registry.Watcher
	lb    *Server
	fails *failures
	// logger, when set before startLB, is the balancer's.
	logger *slog.Logger
	tweak  func(*Options)
}

func newEnv(t testing.TB) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the balancer's options changed by tweak.
func newEnvWith(t testing.TB, tweak func(*Options)) *env {
	t.Helper()
	st := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, st: st, w: registry.NewWatcher(st, slog.New(slog.DiscardHandler)), fails: &failures{}, tweak: tweak}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.w.Run(ctx) }()
	<-e.w.Ready()
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.startLB()
	return e
}

// startLB starts a balancer on e's registry; e.stop stops it.
func (e *env) startLB() {
	ctx, cancel := context.WithCancel(e.ctx)
	lg := e.logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := Options{Snapshots: e.w, Failures: e.fails, Logger: lg}
	if e.tweak != nil {
		e.tweak(&o)
	}
	e.lb = New(o)
	done := make(chan struct{})
	go func() { defer close(done); e.lb.Run(ctx) }()
	e.stop = func() { cancel(); <-done }
	e.t.Cleanup(e.stop)
}

// sync waits until the balancer applied revision rev.
func (e *env) sync(rev int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := e.lb.WaitRevision(ctx, rev); err != nil {
		e.t.Fatalf("balancer did not reach revision %d: %v", rev, err)
	}
}

func (e *env) service(name string) int64 {
	e.t.Helper()
	svc := api.Service{Name: name, Port: 1, Check: api.Check{Type: api.CheckNone}}
	svc.SetDefaults()
	rev, err := e.st.PutService(e.ctx, svc, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) node(service, id string, addr netip.AddrPort, weight int) int64 {
	e.t.Helper()
	n := api.Node{ID: id, Service: service, Address: addr.Addr(), Port: int(addr.Port()), Weight: weight, State: api.StateHealthy, Source: api.SourceAPI}
	rev, _, err := e.st.PutNode(e.ctx, n, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) nodeState(service, id string, addr netip.AddrPort, state api.NodeState) int64 {
	e.t.Helper()
	n := api.Node{ID: id, Service: service, Address: addr.Addr(), Port: int(addr.Port()), Weight: 1, State: state, Source: api.SourceAPI}
	rev, _, err := e.st.PutNode(e.ctx, n, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) dropNode(service, id string) int64 {
	e.t.Helper()
	rev, err := e.st.DeleteNode(e.ctx, service, id, api.SourceAPI)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) listener(l api.Listener) int64 {
	e.t.Helper()
	if !l.Bind.IsValid() {
		l.Bind = netip.MustParseAddr("127.0.0.1")
	}
	l.Source = api.SourceAPI
	l.SetDefaults()
	if errs := l.Validate(); len(errs) > 0 {
		e.t.Fatalf("listener %s: %v", l.Name, errs)
	}
	rev, err := e.st.PutListener(e.ctx, l, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) dropListener(name string) int64 {
	e.t.Helper()
	rev, err := e.st.DeleteListener(e.ctx, name, api.SourceAPI)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

var loopback = netip.MustParseAddr("127.0.0.1")

// freePorts returns n ports that were free on 127.0.0.1 a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	return freePortsOn(t, loopback, n)
}

// scaleAddr is where the many-listener tests listen: an address of its own,
// so that no other test's sockets on 127.0.0.1 (outgoing connections of
// parallel packages take ports there) can take one of theirs between
// freePortsOn and the balancer binding it.
var scaleAddr = netip.MustParseAddr("127.0.3.1")

// freePortsOn returns n ports that were free on addr a moment ago.
func freePortsOn(t testing.TB, addr netip.Addr, n int) []int {
	t.Helper()
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// roundTrip connects to addr, reads the backend's greeting, sends msg, half
// closes, and checks the echo. It returns the backend's name.
func roundTrip(addr string, msg string, timeout time.Duration) (string, error) {
	return roundTripFrom(netip.Addr{}, addr, msg, timeout)
}

// roundTripFrom is roundTrip from the local address from (any when invalid).
func roundTripFrom(from netip.Addr, addr string, msg string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout}
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	name, rest, ok := strings.Cut(string(all), "\n")
	if !ok || rest != msg {
		return name, fmt.Errorf("got %q, want a greeting and %q", all, msg)
	}
	return name, nil
}
