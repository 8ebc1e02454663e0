package lb

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
)

// refusingAddr returns a loopback address where nothing listens: connects
// to it are refused.
func refusingAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// blackhole returns a loopback listener that never accepts and whose
// backlog is full, so a further connect gets no answer and times out. The
// socket is made by hand for its backlog of 0 (one pending connection).
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(loopback, uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue, then make sure the next connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i > 8 {
			t.Fatal("the blackhole's backlog does not fill up")
		}
	}
	return addr
}

// resetting accepts, sends a greeting, and resets the connection.
func resetting(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("rst\n"))
			time.Sleep(50 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func TestConnectErrorsAreClassified(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, func(o *Options) { o.Registerer = reg })
	e.service("bad")
	e.service("rst")
	e.node("bad", "refuses", refusingAddr(t), 1)
	e.node("bad", "hole", blackhole(t), 1)
	e.node("rst", "resets", resetting(t), 1)
	ports := freePorts(t, 2)
	one := 1
	e.listener(api.Listener{Name: "bad", Port: ports[0], Service: "bad", Retries: &one, ConnectTimeout: api.Duration(300 * time.Millisecond)})
	e.sync(e.listener(api.Listener{Name: "rst", Port: ports[1], Service: "rst"}))

	// Each client tries both backends (one retry): one refuses, one times out.
	for range 3 {
		if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", ports[0]), "x", 5*time.Second); err == nil {
			t.Fatal("a client of a listener with no working backend was served")
		}
	}
	// The backend resets after its greeting.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	readLine(t, c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1))
	c.Close()

	stats := map[string]api.ListenerStats{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range e.lb.Stats() {
			stats[l.Name] = l
		}
		if stats["rst"].Resets > 0 && stats["rst"].Active == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	bad := stats["bad"]
	if bad.ConnectErrors != 6 || bad.ConnectRefused != 3 || bad.ConnectTimeouts != 3 || bad.Resets != 0 {
		t.Errorf("listener bad: got %d errors, %d refused, %d timeouts, %d resets; want 6, 3, 3, 0",
			bad.ConnectErrors, bad.ConnectRefused, bad.ConnectTimeouts, bad.Resets)
	}
	for _, b := range bad.Backends {
		want := map[string][2]uint64{"refuses": {3, 0}, "hole": {0, 3}}[b.Node]
		if b.ConnectErrors != 3 || b.ConnectRefused != want[0] || b.ConnectTimeouts != want[1] {
			t.Errorf("backend %s: got %d errors, %d refused, %d timeouts; want 3, %d, %d",
				b.Node, b.ConnectErrors, b.ConnectRefused, b.ConnectTimeouts, want[0], want[1])
		}
	}
	if r := stats["rst"]; r.Resets != 1 || r.ConnectErrors != 0 || len(r.Backends) != 1 || r.Backends[0].Resets != 1 {
		t.Errorf("listener rst: got %d resets, %d connect errors, backends %+v; want 1 reset on the listener and its backend", r.Resets, r.ConnectErrors, r.Backends)
	}

	want := `
# HELP seamark_lb_listener_connect_refused_total Failed connects to backends that the backend refused (ECONNREFUSED).
# TYPE seamark_lb_listener_connect_refused_total counter
seamark_lb_listener_connect_refused_total{listener="bad"} 3
seamark_lb_listener_connect_refused_total{listener="rst"} 0
# HELP seamark_lb_listener_connect_timeouts_total Failed connects to backends that timed out (connect_timeout).
# TYPE seamark_lb_listener_connect_timeouts_total counter
seamark_lb_listener_connect_timeouts_total{listener="bad"} 3
seamark_lb_listener_connect_timeouts_total{listener="rst"} 0
# HELP seamark_lb_listener_resets_total Connections that ended by a read or write error (a reset, mostly) rather than a clean close.
# TYPE seamark_lb_listener_resets_total counter
seamark_lb_listener_resets_total{listener="bad"} 0
seamark_lb_listener_resets_total{listener="rst"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"seamark_lb_listener_connect_refused_total", "seamark_lb_listener_connect_timeouts_total", "seamark_lb_listener_resets_total"); err != nil {
		t.Error(err)
	}
}

func TestStatsShowMaxConnsPausesAndQueue(t *testing.T) {
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
	defer first.Close()
	readLine(t, first)
	for range 2 {
		c, err := net.Dial("tcp", addr) // waits in the kernel's backlog
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var st api.ListenerStats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st = e.lb.Stats()[0]
		if st.Queued == 2 && st.Paused == 1 {
			break
		}
	}
	if st.MaxConns != 1 || st.Active != 1 || st.Paused != 1 || st.Queued != 2 {
		t.Errorf("got max_conns %d, active %d, paused %d, queued %d; want 1, 1, 1, 2", st.MaxConns, st.Active, st.Paused, st.Queued)
	}
}
