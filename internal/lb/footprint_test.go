package lb

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
)

// footAddr is where the footprint tests listen: an address of their own
// (127.0.62.0/24 is this package's), so that a range of thousands of ports
// is free on it.
var footAddr = netip.MustParseAddr("127.0.62.1")

// footprint is the memory the Go runtime holds for live data: the heap's
// live objects, goroutine stacks, span metadata and runtime structures
// outside the heap (the netpoller's descriptors among them), measured
// after two collections.
func footprint() (total uint64, parts string) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	total = m.HeapAlloc + m.StackInuse + m.MSpanInuse + m.OtherSys
	return total, fmt.Sprintf("heap %d, stacks %d, spans %d, other %d", m.HeapAlloc, m.StackInuse, m.MSpanInuse, m.OtherSys)
}

// freeRange returns the first port of n consecutive ports free on addr.
func freeRange(t *testing.T, addr netip.Addr, n int) int {
	t.Helper()
	for _, first := range []int{20000, 41000, 50000, 11000} {
		fds := make([]int, 0, n)
		ok := true
		for p := first; p < first+n; p++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
			if unix.Bind(fd, &unix.SockaddrInet4{Port: p, Addr: addr.As4()}) != nil {
				ok = false
				break
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		if ok {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports on %s", n, addr)
	return 0
}

// TestFootprintPerListeningPort: 9 000 listening ports (one listener's
// port range) cost the balancer at most 2 KB each: one epoll set and its
// one goroutine accept for all of them.
func TestFootprintPerListeningPort(t *testing.T) {
	if testing.Short() {
		t.Skip("9 000 listening ports; skipped with -short")
	}
	const n, bound = 9000, 2048
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", startBackendProc(t, "a").addr, 1)
	first := freeRange(t, footAddr, n)
	before, bparts := footprint()

	l := api.Listener{Name: "many", Ports: api.PortRange{First: first, Last: first + n - 1}, Service: "app", Source: api.SourceAPI, Bind: footAddr}
	l.SetDefaults()
	rev, err := e.st.PutListener(e.ctx, l, false)
	if err != nil {
		t.Fatal(err)
	}
	e.sync(rev)
	listening := 0
	for _, st := range e.lb.Stats() {
		if st.State == api.ListenerListening {
			listening++
		}
	}
	if listening != n {
		t.Fatalf("%d of %d ports listening", listening, n)
	}
	for _, p := range []int{first, first + n/2, first + n - 1} {
		if got, err := roundTrip(fmt.Sprintf("%s:%d", footAddr, p), "hello", 5*time.Second); err != nil || got != "a" {
			t.Fatalf("port %d: got %q, %v", p, got, err)
		}
	}
	after, aparts := footprint()
	per := (float64(after) - float64(before)) / n
	t.Logf("%d listening ports: %.0f bytes each (before: %s; after: %s; goroutines %d)", n, per, bparts, aparts, runtime.NumGoroutine())
	if per > bound {
		t.Errorf("a listening port costs %.0f bytes, more than %d", per, bound)
	}
	if per < 100 {
		t.Errorf("a listening port costs %.0f bytes: the measure is broken (a port's struct alone is more)", per)
	}
}

// TestFootprintPerIdleConnection: an idle proxied connection costs the
// balancer at most 3.5 KB (no goroutine: its structs and two sockets in a
// relay loop's epoll set); idle connections relay data from either side
// when it comes, and a half close still passes through.
//
// Clients arrive in batches, as idle connections pile up on a server.
func TestFootprintPerIdleConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("2 000 proxied connections; skipped with -short")
	}
	const n, batch, bound = 2000, 400, 3584
	e := newEnv(t)
	e.service("app")
	e.node("app", "a", startBackendProc(t, "a").addr, 1)
	port := freeRange(t, footAddr, 1)
	rev := e.listener(api.Listener{Name: "idle", Port: port, Bind: footAddr, Service: "app"})
	e.sync(rev)
	addr := fmt.Sprintf("%s:%d", footAddr, port)
	if _, err := roundTrip(addr, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the warm-up connection to end", func() bool { return e.lb.Stats()[0].Active == 0 })
	before, bparts := footprint()

	// Clients as bare descriptors, so that they cost this process nothing
	// beyond the balancer's side.
	clients := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range clients {
			unix.Close(fd)
		}
	})
	for len(clients) < n {
		for range batch {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: footAddr.As4()}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 20*time.Second, "every connection proxied", func() bool {
			return e.lb.Stats()[0].Active == int64(len(clients)) && e.lb.relayed() == len(clients)
		})
	}
	after, aparts := footprint()
	per := (float64(after) - float64(before)) / n
	t.Logf("%d idle connections: %.0f bytes each (before: %s; after: %s; goroutines %d)", n, per, bparts, aparts, runtime.NumGoroutine())
	if per > bound {
		t.Errorf("an idle connection costs %.0f bytes, more than %d", per, bound)
	}
	if per < 200 {
		t.Errorf("an idle connection costs %.0f bytes: the measure is broken (its structs alone are more)", per)
	}

	// Parked connections wake: the greeting waited in the client's socket;
	// an echo goes both ways; a half close passes through.
	for i, fd := range clients {
		tv := unix.Timeval{Sec: 5}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if got := readFD(t, fd, 2); got != "a\n" {
			t.Fatalf("connection %d: greeting %q", i, got)
		}
		if i%97 != 0 {
			continue
		}
		msg := fmt.Sprintf("ping %d\n", i)
		if _, err := unix.Write(fd, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := readFD(t, fd, len(msg)); got != msg {
			t.Fatalf("connection %d: echo %q, want %q", i, got, msg)
		}
		unix.Shutdown(fd, unix.SHUT_WR)
		var b [16]byte
		if m, err := unix.Read(fd, b[:]); m != 0 || err != nil {
			t.Fatalf("connection %d: after the half close got %d bytes, %v; want the end", i, m, err)
		}
	}
	for _, fd := range clients {
		unix.Close(fd)
	}
	clients = nil
	waitFor(t, 20*time.Second, "every connection to end", func() bool { return e.lb.Stats()[0].Active == 0 })
	if st := e.lb.Stats()[0]; st.Resets != 0 {
		t.Errorf("%d connections ended in a reset", st.Resets)
	}
}

func readFD(t *testing.T, fd, n int) string {
	t.Helper()
	b := make([]byte, n)
	got := 0
	for got < n {
		m, err := unix.Read(fd, b[got:])
		if err != nil || m == 0 {
			t.Fatalf("read: %d bytes, %v (have %q)", m, err, b[:got])
		}
		got += m
	}
	return string(b)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkProxyConnection: one client connection through the balancer to
// a backend process and back (greeting, one message, half close), the
// client on bare syscalls so that its allocations are not counted.
func BenchmarkProxyConnection(b *testing.B) {
	e := newEnv(b)
	e.service("app")
	e.node("app", "a", startBackendProc(b, "a").addr, 1)
	port := freePortsOn(b, footAddr, 1)[0]
	e.sync(e.listener(api.Listener{Name: "bench", Port: port, Bind: footAddr, Service: "app"}))
	sa := &unix.SockaddrInet4{Port: port, Addr: footAddr.As4()}
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		unix.Write(fd, []byte("ping\n"))
		unix.Shutdown(fd, unix.SHUT_WR)
		got := 0
		for {
			n, err := unix.Read(fd, buf[got:])
			if n <= 0 || err != nil {
				break
			}
			got += n
		}
		unix.Close(fd)
		if string(buf[:got]) != "a\nping\n" {
			b.Fatalf("got %q", buf[:got])
		}
	}
}

// relayed counts the connections being relayed (dialed, not yet ended).
func (s *Server) relayed() int {
	s.mu.Lock()
	ports := make([]*port, 0, len(s.ports))
	for _, p := range s.ports {
		ports = append(ports, p)
	}
	s.mu.Unlock()
	n := 0
	for _, p := range ports {
		p.mu.Lock()
		n += len(p.conns)
		p.mu.Unlock()
	}
	return n
}
