package lb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// countingBackend echoes like echoBackend and counts the connections it
// accepted, so a test can tell that a refused client was never dialed.
func countingBackend(t *testing.T, name string) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), &n
}

// sendFrom connects from a local address, writes pre (a PROXY header, or
// nothing) and msg, and returns what came back before the end.
func sendFrom(from netip.Addr, addr, pre, msg string) (string, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, pre+msg)
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func listenerStats(t *testing.T, s *Server, name string) api.ListenerStats {
	t.Helper()
	for _, l := range s.Stats() {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no listener %s in %+v", name, s.Stats())
	return api.ListenerStats{}
}

// TestAllowDeny: a client outside a listener's allow list, or inside its deny
// list, is closed before any backend is dialed, and counted as denied.
func TestAllowDeny(t *testing.T) {
	e := newEnv(t)
	be, accepts := countingBackend(t, "a")
	e.service("app")
	e.node("app", "a", be, 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "cust", Port: port, Service: "app",
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.40.0/25")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("127.0.40.7/32")}}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, tc := range []struct {
		from  string
		serve bool
	}{
		{"127.0.40.1", true},
		{"127.0.40.126", true},
		{"127.0.40.130", false}, // outside allow
		{"127.0.40.7", false},   // allowed, but denied
		{"127.0.0.1", false},
	} {
		before := accepts.Load()
		got, _ := sendFrom(netip.MustParseAddr(tc.from), addr, "", "hi")
		if tc.serve && got != "a\nhi" {
			t.Errorf("client %s got %q, want the echo", tc.from, got)
		}
		if !tc.serve {
			if got != "" {
				t.Errorf("client %s got %q, want to be closed", tc.from, got)
			}
			if n := accepts.Load(); n != before {
				t.Errorf("client %s: the backend was dialed (%d accepts, had %d)", tc.from, n, before)
			}
		}
	}
	if st := listenerStats(t, e.lb, "cust"); st.Denied != 3 {
		t.Errorf("denied = %d, want 3", st.Denied)
	}
}

// TestAcceptProxyFrom: a PROXY header is believed only from a listed
// upstream; from anywhere else the connection is closed before a dial, so a
// client that reaches the port directly cannot claim an allowed address.
// Without accept_proxy_from only loopback upstreams are believed.
func TestAcceptProxyFrom(t *testing.T) {
	e := newEnv(t)
	be, accepts := countingBackend(t, "a")
	e.service("app")
	e.node("app", "a", be, 1)
	ports := freePorts(t, 2)
	e.listener(api.Listener{Name: "open", Port: ports[1], Service: "app", AcceptProxy: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	e.sync(e.listener(api.Listener{Name: "inner", Port: ports[0], Service: "app", AcceptProxy: true,
		AcceptProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.40.10/32")},
		Allow:           []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	hdr := func(src string) string { return fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n", src, ports[0]) }
	upstream, stranger := netip.MustParseAddr("127.0.40.10"), netip.MustParseAddr("127.0.40.11")

	if got, _ := sendFrom(upstream, addr, hdr("192.0.2.5"), "hi"); got != "a\nhi" {
		t.Errorf("trusted upstream for an allowed client got %q, want the echo", got)
	}
	before := accepts.Load()
	if got, _ := sendFrom(upstream, addr, hdr("198.51.100.5"), "hi"); got != "" {
		t.Errorf("trusted upstream for a client outside allow got %q, want to be closed", got)
	}
	if got, _ := sendFrom(stranger, addr, hdr("192.0.2.5"), "hi"); got != "" {
		t.Errorf("untrusted upstream claiming an allowed client got %q, want to be closed", got)
	}
	if n := accepts.Load(); n != before {
		t.Errorf("refused clients were dialed: %d accepts, had %d", n, before)
	}
	if st := listenerStats(t, e.lb, "inner"); st.Denied != 2 {
		t.Errorf("inner denied = %d, want 2", st.Denied)
	}
	// Default: loopback upstreams are believed.
	open := fmt.Sprintf("127.0.0.1:%d", ports[1])
	hdrOpen := fmt.Sprintf("PROXY TCP4 192.0.2.9 127.0.0.1 40000 %d\r\n", ports[1])
	if got, _ := sendFrom(stranger, open, hdrOpen, "hi"); got != "a\nhi" {
		t.Errorf("loopback upstream without accept_proxy_from got %q, want the echo", got)
	}
}

// syncBuffer is a log sink safe for the relays' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestConnectionLog: a listener with log: true writes one line per
// connection with HAProxy's fields, and one per refused client; a listener
// without it writes none.
func TestConnectionLog(t *testing.T) {
	e := newEnv(t)
	e.stop()
	var buf syncBuffer
	e.logger = slog.New(slog.NewJSONHandler(&buf, nil))
	e.startLB()
	be, _ := countingBackend(t, "a")
	e.service("app")
	e.node("app", "a", be, 1)
	ports := freePorts(t, 2)
	e.listener(api.Listener{Name: "quiet", Port: ports[1], Service: "app"})
	e.sync(e.listener(api.Listener{Name: "logged", Port: ports[0], Service: "app", Log: true,
		Deny: []netip.Prefix{netip.MustParsePrefix("127.0.40.66/32")}}))
	client := netip.MustParseAddr("127.0.40.65")
	if got, _ := sendFrom(client, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", "hello"); got != "a\nhello" {
		t.Fatalf("got %q", got)
	}
	sendFrom(netip.MustParseAddr("127.0.40.66"), fmt.Sprintf("127.0.0.1:%d", ports[0]), "", "x")
	sendFrom(client, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", "quiet")
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.lines("connection")) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := buf.lines("connection")
	if len(lines) != 1 {
		t.Fatalf("got %d connection lines, want 1 (the quiet listener logs none): %v", len(lines), lines)
	}
	l := lines[0]
	if !strings.HasPrefix(l["client"].(string), "127.0.40.65:") || l["listener"] != "logged" || l["node"] != "a" || l["backend"] != be.String() {
		t.Errorf("line %v: wrong client, listener, node or backend", l)
	}
	// bytes_in: "hello"; bytes_out: the greeting and the echo.
	if l["bytes_in"] != 5.0 || l["bytes_out"] != float64(len("a\nhello")) {
		t.Errorf("bytes in/out = %v/%v, want 5/%d", l["bytes_in"], l["bytes_out"], len("a\nhello"))
	}
	if l["end"] != "client_closed" {
		t.Errorf("end = %v, want client_closed (the client half-closed first)", l["end"])
	}
	if _, ok := l["connect_ms"].(float64); !ok {
		t.Errorf("no connect_ms in %v", l)
	}
	if d, _ := l["duration_ms"].(float64); d <= 0 {
		t.Errorf("duration_ms = %v, want > 0", l["duration_ms"])
	}
	refused := buf.lines("connection refused")
	if len(refused) != 1 || refused[0]["end"] != "denied" || !strings.HasPrefix(refused[0]["client"].(string), "127.0.40.66:") {
		t.Errorf("refused lines = %v, want one denied line for 127.0.40.66", refused)
	}
}

func TestListenerAccessValidation(t *testing.T) {
	base := api.Listener{Name: "x", Port: 9001, Service: "app"}
	base.SetDefaults()
	for _, tc := range []struct {
		name string
		edit func(*api.Listener)
		want string
	}{
		{"host bits", func(l *api.Listener) { l.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")} }, "allow[0]: 10.0.0.5/24 has host bits set; write 10.0.0.0/24"},
		{"proxy from without accept", func(l *api.Listener) { l.AcceptProxyFrom = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} }, "accept_proxy_from: is set but accept_proxy is not"},
		{"too many", func(l *api.Listener) { l.Deny = make([]netip.Prefix, api.MaxListenerPrefixes+1) }, "deny: has 1025 networks, more than 1024"},
	} {
		l := base
		tc.edit(&l)
		if got := l.Validate().Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want it to contain %q", tc.name, got, tc.want)
		}
	}
}

// TestBackendCountersSurviveFlap: a node that goes down stays in the stats,
// marked down with the time it went, and keeps its totals when it comes
// back, as the listener's do; a deregistered node leaves the stats.
func TestBackendCountersSurviveFlap(t *testing.T) {
	e := newEnv(t)
	be, _ := countingBackend(t, "a")
	e.service("app")
	e.node("app", "a", be, 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "l", Port: port, Service: "app"}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 3 {
		if _, err := roundTrip(addr, "x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	backend := func() api.BackendStats {
		t.Helper()
		bs := listenerStats(t, e.lb, "l").Backends
		if len(bs) != 1 {
			t.Fatalf("backends = %+v, want node a alone", bs)
		}
		return bs[0]
	}
	e.sync(e.nodeState("app", "a", be, api.StateUnhealthy))
	if b := backend(); b.Healthy || b.DownSince == nil || b.Total != 3 {
		t.Errorf("down node: %+v, want healthy false, down_since set, total 3", b)
	}
	e.sync(e.nodeState("app", "a", be, api.StateHealthy))
	if _, err := roundTrip(addr, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if b := backend(); !b.Healthy || b.DownSince != nil || b.Total != 4 {
		t.Errorf("back up: %+v, want healthy, no down_since, total 4 (counters kept across the flap)", b)
	}
	e.sync(e.dropNode("app", "a"))
	if bs := listenerStats(t, e.lb, "l").Backends; len(bs) != 0 {
		t.Errorf("deregistered node still in stats: %+v", bs)
	}
}
