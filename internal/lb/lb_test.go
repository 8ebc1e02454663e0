package lb

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

func TestProxiesAndBalances(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	e.node("app", "b", echoBackend(t, "b"), 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "one", Port: port, Service: "app"}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	seen := map[string]int{}
	for i := range 10 {
		name, err := roundTrip(addr, fmt.Sprintf("hello %d", i), 5*time.Second)
		if err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		seen[name]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("round robin: got %v, want 5 each", seen)
	}
	// A client sees the end of its stream before the balancer has finished
	// its bookkeeping: wait for the last connection to be counted out.
	st := e.lb.Stats()
	for deadline := time.Now().Add(5 * time.Second); len(st) == 1 && st[0].Active > 0 && time.Now().Before(deadline); st = e.lb.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	if len(st) != 1 || st[0].Total != 10 || st[0].State != api.ListenerListening || len(st[0].Backends) != 2 {
		t.Fatalf("stats: got %+v", st)
	}
	// Bytes are sampled from the kernel when a connection ends.
	if st[0].BytesIn != uint64(len("hello 0"))*10 || st[0].BytesOut < st[0].BytesIn {
		t.Errorf("bytes: got in %d out %d, want in %d and out >= in", st[0].BytesIn, st[0].BytesOut, len("hello 0")*10)
	}
}

func TestHalfCloseCarriesTheRestOfTheStream(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	// A backend that reads everything until the client's FIN, then answers
	// with the byte count: only a correct half close lets it answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "%d", n)
			}()
		}
	}()
	e.node("app", "counter", ln.Addr().(*net.TCPAddr).AddrPort(), 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "count", Port: port, Service: "app"}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	payload := strings.Repeat("x", 1<<20)
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != fmt.Sprint(len(payload)) {
		t.Fatalf("got %q, %v; want %d", got, err, len(payload))
	}
}

func TestRetriesTheNextBackendAndReportsTheFailure(t *testing.T) {
	for _, balance := range []string{api.BalanceRoundRobin, api.BalanceLeastConn, api.BalanceHash, api.BalanceRandom2} {
		t.Run(balance, func(t *testing.T) {
			e := newEnv(t)
			e.service("app")
			dead := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePorts(t, 1)[0])) // nothing listens: refused
			e.node("app", "dead", dead, 5)
			e.node("app", "live", echoBackend(t, "live"), 1)
			port := freePorts(t, 1)[0]
			e.sync(e.listener(api.Listener{Name: "r", Port: port, Service: "app", Balance: balance}))
			for i := range 20 {
				// From many source addresses, so that hash balancing
				// meets the dead backend too.
				from := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
				name, err := roundTripFrom(from, fmt.Sprintf("127.0.0.1:%d", port), "ping", 5*time.Second)
				if err != nil || name != "live" {
					t.Fatalf("connection %d: got %q, %v; want live without error", i, name, err)
				}
			}
			if f := e.fails.list(); len(f) == 0 || f[0] != "app/dead" {
				t.Errorf("reported failures: got %v, want app/dead", f)
			}
			st := e.lb.Stats()[0]
			if st.Retries == 0 || st.ConnectErrors != st.Retries || st.Refused != 0 {
				t.Errorf("stats: got retries %d connect errors %d refused %d", st.Retries, st.ConnectErrors, st.Refused)
			}
		})
	}
}

func TestNoRetriesClosesTheClient(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	dead := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePorts(t, 1)[0]))
	e.node("app", "dead", dead, 1)
	port := freePorts(t, 1)[0]
	zero := 0
	e.sync(e.listener(api.Listener{Name: "r", Port: port, Service: "app", Retries: &zero}))
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", port), "ping", 5*time.Second); err == nil {
		t.Fatal("got a round trip through a dead backend")
	}
	if st := e.lb.Stats()[0]; st.Refused != 1 || st.ConnectErrors != 1 || st.Retries != 0 {
		t.Errorf("got %+v, want 1 refused, 1 connect error, no retry", st.ConnStats)
	}
}

func TestUnhealthyAndDrainingBackendsGetNoNewConnectionsAndKeepTheirs(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	e.node("app", "a", a, 1)
	e.node("app", "b", b, 1)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.sync(e.listener(api.Listener{Name: "d", Port: port, Service: "app"}))
	// Open connections until one lands on a.
	var onA net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		line := readLine(t, c)
		if line == "a" {
			onA = c
			break
		}
	}
	if onA == nil {
		t.Fatal("no connection landed on a")
	}
	e.sync(e.nodeState("app", "a", a, api.StateDraining))
	for i := range 6 {
		if name, err := roundTrip(addr, "x", 5*time.Second); err != nil || name != "b" {
			t.Fatalf("connection %d after a drains: got %q, %v; want b", i, name, err)
		}
	}
	// The connection on a still works.
	onA.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(onA, "still here"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(onA, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("open connection to a draining node: got %q, %v", buf, err)
	}
	if bs := e.lb.Stats()[0].Backends; len(bs) != 2 || bs[0].Node != "a" || bs[0].Healthy || bs[0].Active != 1 {
		t.Errorf("backend stats: got %+v, want a unhealthy with its 1 connection", bs)
	}
}

func TestCutOnBackendDown(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	a := echoBackend(t, "a")
	e.node("app", "a", a, 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "cut", Port: port, Service: "app", OnBackendDown: api.BackendDownCut, DrainTimeout: api.Duration(300 * time.Millisecond)}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readLine(t, c)
	start := time.Now()
	e.sync(e.dropNode("app", "a"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection to a removed backend stayed open with on_backend_down: cut")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("cut after %v, want about the 300ms drain timeout", d)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "idle", Port: port, Service: "app", IdleTimeout: api.Duration(time.Second)}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readLine(t, c)
	// Activity keeps it open past the timeout.
	for range 6 {
		time.Sleep(300 * time.Millisecond)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "k")
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("active connection closed: %v", err)
		}
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection stayed open")
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("idle connection closed after %v, want about 1s", d)
	}
}

func TestMaxConnsQueuesInTheBacklog(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.sync(e.listener(api.Listener{Name: "max", Port: port, Service: "app", MaxConns: 1}))
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	readLine(t, first)
	second, err := net.Dial("tcp", addr) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection was served while max_conns 1 was in use")
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line := readLine(t, second); line != "a" {
		t.Fatalf("got %q after the first closed, want a", line)
	}
}

func TestListenersComeAndGoWithoutTouchingOthers(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	ports := freePorts(t, 3)
	e.listener(api.Listener{Name: "keep", Port: ports[0], Service: "app"})
	e.sync(e.listener(api.Listener{Name: "gone", Port: ports[1], Service: "app", DrainTimeout: api.Duration(400 * time.Millisecond)}))
	keep, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	readLine(t, keep)
	draining, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer draining.Close()
	readLine(t, draining)

	e.sync(e.dropListener("gone"))
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]), time.Second); err == nil {
		t.Error("a removed listener still accepts")
	}
	// The draining connection works until the drain timeout, then is cut.
	echo(t, draining, "during drain")
	if st := e.lb.Stats(); len(st) != 2 || st[0].Name != "gone" || st[0].State != api.ListenerDraining {
		t.Errorf("stats while draining: got %+v", st)
	}
	draining.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := draining.Read(make([]byte, 1)); err == nil {
		t.Error("draining connection outlived drain_timeout")
	}
	// A new listener and a change of balance leave the kept connection alone.
	e.sync(e.listener(api.Listener{Name: "new", Port: ports[2], Service: "app"}))
	e.sync(e.listener(api.Listener{Name: "keep", Port: ports[0], Service: "app", Balance: api.BalanceLeastConn}))
	echo(t, keep, "still fine")
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", ports[2]), "new", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := e.lb.Stats(); len(st) != 2 || st[0].Name != "keep" || st[0].Balance != api.BalanceLeastConn {
		t.Errorf("stats after changes: got %+v", st)
	}
}

func TestPortInUseIsReportedAndRetried(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	squat, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := squat.Addr().(*net.TCPAddr).Port
	e.sync(e.listener(api.Listener{Name: "busy", Port: port, Service: "app"}))
	st := e.lb.Stats()
	if len(st) != 1 || st[0].State != api.ListenerFailed || !strings.Contains(st[0].Error, "another process holds the port") {
		t.Fatalf("got %+v, want failed with a clear error", st)
	}
	squat.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.lb.Stats()[0].State != api.ListenerListening {
		if time.Now().After(deadline) {
			t.Fatal("listener did not bind once the port was free")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", port), "ok", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestNoLeaks(t *testing.T) {
	e := newEnv(t)
	e.stop()
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	ports := freePorts(t, 20)
	var rev int64
	for i, p := range ports {
		rev = e.listener(api.Listener{Name: fmt.Sprintf("l%d", i), Port: p, Service: "app"})
	}
	time.Sleep(100 * time.Millisecond) // let the registry settle
	fds0, g0 := countFDs(t), runtime.NumGoroutine()

	e.startLB()
	e.sync(rev)
	var open []net.Conn
	for _, p := range ports {
		if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		readLine(t, c)
		open = append(open, c)
	}
	// The measure sees them: 20 listening sockets and, per connection,
	// four sockets (the client's, the balancer's two, the backend's) and
	// the echo backend's goroutine.
	if fds, g := countFDs(t), runtime.NumGoroutine(); fds < fds0+20+4*20 || g < g0+20 {
		t.Fatalf("got %d fds and %d goroutines with 20 ports and 20 connections, want at least %d and %d", fds, g, fds0+100, g0+20)
	}
	e.stop() // cuts the open connections
	for _, c := range open {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err == nil {
			// a reset is an error; a clean EOF would mean no cut
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC() // splice's pipe pairs wait in a sync.Pool until a GC
		fds, g := countFDs(t), runtime.NumGoroutine()
		if fds <= fds0 && g <= g0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after stop: %d fds (was %d), %d goroutines (was %d)\n%s", fds, fds0, g, g0, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: got %q, %v", buf, err)
	}
}

func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read line: %v (got %q)", err, b)
		}
		if one[0] == '\n' {
			return string(b)
		}
		b = append(b, one[0])
	}
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
