package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nameBackend answers every connection with its name and counts them.
type nameBackend struct {
	name    string
	accepts atomic.Int64
}

func startNameBackend(t *testing.T, name string, addr string) *nameBackend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &nameBackend{name: name}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepts.Add(1)
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	return b
}

// via connects from src (with pre written first: a PROXY header, or "")
// and returns the first line the backend sent, or "" when the balancer
// closed the connection.
func via(src netip.Addr, addr, pre string) string {
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if pre != "" {
		io.WriteString(c, pre)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestHashStickyAcrossServersAndRestart (issue 17): with balance: hash, 1 000
// client addresses reach the same backends through two servers of the same
// config (two members of a balancer group see the same nodes) and through
// one of them again after a restart; removing one of five backends moves at
// most a quarter of the clients (rendezvous hashing moves only its own).
// The same servers refuse clients outside a listener's allow list before
// any backend is dialed, and PROXY headers from outside accept_proxy_from.
func TestHashStickyAcrossServersAndRestart(t *testing.T) {
	// Five backends on one port of five addresses.
	probe, err := net.Listen("tcp", "127.0.40.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	var backends []*nameBackend
	var nodes []string
	for i := 1; i <= 5; i++ {
		backends = append(backends, startNameBackend(t, fmt.Sprintf("n%d", i), fmt.Sprintf("127.0.40.%d:%d", i, port)))
		nodes = append(nodes, fmt.Sprintf("{id: n%d, address: 127.0.40.%d}", i, i))
	}
	lbPorts := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	config := func(nodes []string, lb int) string {
		return fmt.Sprintf(`zones: [hash.test]
services:
  - name: app
    port: %d
    check: {type: none}
    nodes: [%s]
listeners:
  - {name: sticky, port: %d, bind: 127.0.0.1, service: app, balance: hash}
  - {name: cust_a, port: %d, bind: 127.0.0.1, service: app, allow: [127.40.0.0/24], deny: [127.40.0.13/32]}
  - {name: behind, port: %d, bind: 127.0.0.1, service: app, accept_proxy: true, accept_proxy_from: [127.0.40.200/32]}
`, port, strings.Join(nodes, ", "), lb, lbPorts[2], lbPorts[3])
	}
	dir := t.TempDir()
	cfg1, cfg2 := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, cfg1, config(nodes, lbPorts[0]))
	writeFile(t, cfg2, config(nodes, lbPorts[1]))
	data1 := filepath.Join(dir, "data1")
	s1 := startServer(t, "server-1", "--config", cfg1, "--data-dir", data1)
	startServer(t, "server-2", "--config", cfg2, "--data-dir", filepath.Join(dir, "data2"))
	client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 40, byte(1 + i/250), byte(1 + i%250)}) }
	mapping := func(lb int) []string {
		t.Helper()
		addr := fmt.Sprintf("127.0.0.1:%d", lb)
		deadline := time.Now().Add(20 * time.Second)
		for via(client(0), addr, "") == "" { // wait for the listener and its backends
			if time.Now().After(deadline) {
				t.Fatalf("listener %s does not reach a backend", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		out := make([]string, 1000)
		for i := range out {
			if out[i] = via(client(i), addr, ""); out[i] == "" {
				t.Fatalf("client %s got no backend through %s", client(i), addr)
			}
		}
		return out
	}
	diff := func(a, b []string) int {
		n := 0
		for i := range a {
			if a[i] != b[i] {
				n++
			}
		}
		return n
	}
	first := mapping(lbPorts[0])
	if d := diff(first, mapping(lbPorts[1])); d != 0 {
		t.Errorf("the two servers sent %d of 1000 clients to different backends, want 0", d)
	}
	spread := map[string]int{}
	for _, b := range first {
		spread[b]++
	}
	if len(spread) != 5 {
		t.Errorf("1000 clients reached %v, want all five backends", spread)
	}

	// Restart server 1 on its data: the same map.
	if err := s1.stop(); err != nil {
		t.Fatal(err)
	}
	s1 = startServer(t, "server-1-again", "--config", cfg1, "--data-dir", data1)
	if d := diff(first, mapping(lbPorts[0])); d != 0 {
		t.Errorf("after a restart %d of 1000 clients went to another backend, want 0", d)
	}

	// One of five backends leaves: only its clients move.
	writeFile(t, cfg1, config(nodes[:4], lbPorts[0]))
	if err := syscall.Kill(s1.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var after []string
	for {
		after = mapping(lbPorts[0])
		if !strings.Contains(strings.Join(after, ","), "n5") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("n5 still gets clients 20s after it left the config")
		}
		time.Sleep(100 * time.Millisecond)
	}
	moved, hadN5 := diff(first, after), spread["n5"]
	if moved > 250 || moved != hadN5 {
		t.Errorf("removing n5 moved %d of 1000 clients (n5 had %d), want only n5's and at most 250", moved, hadN5)
	}
	t.Logf("1000 clients over 5 backends %v; removing n5 moved %d", spread, moved)

	// Allow list: refused before any backend is dialed.
	total := func() (n int64) {
		for _, b := range backends {
			n += b.accepts.Load()
		}
		return n
	}
	cust := fmt.Sprintf("127.0.0.1:%d", lbPorts[2])
	if got := via(netip.MustParseAddr("127.40.0.7"), cust, ""); got == "" {
		t.Error("a client inside cust_a's allow list was refused")
	}
	before := total()
	for _, src := range []string{"127.40.0.13", "127.40.1.7", "127.0.0.1"} {
		if got := via(netip.MustParseAddr(src), cust, ""); got != "" {
			t.Errorf("client %s outside the allow list (or denied) reached %s", src, got)
		}
	}
	if n := total(); n != before {
		t.Errorf("refused clients were dialed: %d backend accepts, want 0", n-before)
	}

	// PROXY from an untrusted source is refused; from the trusted one it works.
	behind := fmt.Sprintf("127.0.0.1:%d", lbPorts[3])
	hdr := fmt.Sprintf("PROXY TCP4 192.0.2.1 127.0.0.1 5000 %d\r\n", lbPorts[3])
	if got := via(netip.MustParseAddr("127.0.40.200"), behind, hdr); got == "" {
		t.Error("a PROXY header from accept_proxy_from was refused")
	}
	before = total()
	if got := via(netip.MustParseAddr("127.0.40.201"), behind, hdr); got != "" {
		t.Errorf("a PROXY header from an untrusted source reached %s", got)
	}
	if n := total(); n != before {
		t.Errorf("the untrusted PROXY client was dialed through")
	}
	// The refusals are counted.
	m := scrape(t, http.DefaultClient, strings.TrimPrefix(s1.url, "http://"))
	if a, b := m[`seamark_lb_listener_denied_total{listener="cust_a"}`], m[`seamark_lb_listener_denied_total{listener="behind"}`]; a != 3 || b != 1 {
		t.Errorf("denied in /metrics: cust_a %v, behind %v; want 3 and 1", a, b)
	}
}
