package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// Issue 15's resource budget, end to end: a server started with
// `ulimit -n 1024` takes 5 000 attempts to hold idle connections on the API
// and on a balancer port, each in turn and then all at once, and stays up
// and truthful: /v1/status and DNS over UDP answer, the healthy node stays
// healthy (no event says otherwise), the refusals are counted in the
// metrics, and the server uses less than half a core while the flood holds.
//
// The all-at-once hold lasts 20 s (each phase in turn 5 s);
// SEAMARK_FLOOD_HOLD=60s makes it the 60 s. DNS over TCP joins the
// flood with SEAMARK_FLOOD_DNS_TCP=1.
// TODO(lead): turn DNS TCP on by default once the DNS branch (TCP caps
// through internal/netlimit) is merged.
//
// It goes on with the limits on accepted objects (413 and 400 naming the
// limit) and an empty config file on SIGHUP (refused, visible in status).
func TestFloodKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for 40 s or more")
	}
	hold := 20 * time.Second
	if v := os.Getenv("SEAMARK_FLOOD_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SEAMARK_FLOOD_HOLD=%q: %v", v, err)
		}
		hold = d
	}
	const attempts = 5000

	// The backend: holds what it is sent.
	be, err := net.Listen("tcp", "127.0.43.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var beConns sync.Map
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			beConns.Store(c, true)
			go func() { io.Copy(io.Discard, c); c.Close(); beConns.Delete(c) }()
		}
	}()
	defer beConns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	bePort := be.Addr().(*net.TCPAddr).Port
	lbPort := freePort(t)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	writeCfg := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(fmt.Sprintf(`zones: [cluster.test]
services:
  - name: app
    port: %d
    check: {type: tcp, interval: 1s, timeout: 1s, rise: 1, fall: 3}
    nodes: [{id: app-a, address: 127.0.43.1}]
listeners:
  - {name: flood, port: %d, bind: 127.0.0.1, service: app}
`, bePort, lbPort))

	args := []string{"server", "--http-addr", "127.0.0.1:0", "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--dns-addr", "127.0.0.1:0", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--name", "e2e-flood"}
	p := startProc(t, "seamark server (ulimit -n 1024)", "/bin/sh", append([]string{"-c", `ulimit -n 1024 && exec "$0" "$@"`, seamarkBin}, args...)...)
	apiAddr := p.waitOutput(httpAddrRE, 30*time.Second)
	dnsAddr := p.waitOutput(dnsAddrRE, time.Second)
	p.waitOutput(regexp.MustCompile(`open-file limit.* soft=1024 `), time.Second)
	pid := p.cmd.Process.Pid // sh exec'd the server
	c, err := api.NewClient([]string{"http://" + apiAddr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Minute)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, _, err := c.Nodes(ctx, "app", nil); err == nil && len(n) == 1 && n[0].Healthy && len(n[0].Checks) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app-a did not become healthy")
		}
	}

	// check asks what must keep working during a flood; each failure is
	// an error of the test.
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	check := func(phase string) {
		t.Helper()
		select {
		case <-p.done:
			t.Fatalf("%s: the server exited:\n%s", phase, tail(p.output(), 30))
		default:
		}
		resp, err := httpc.Get("http://" + apiAddr + "/v1/status")
		if err != nil {
			t.Errorf("%s: /v1/status: %v", phase, err)
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: /v1/status: got %d, want 200", phase, resp.StatusCode)
			}
		}
		if a, err := queryA(dnsAddr, "app.cluster.test"); err != nil || len(a) != 1 || a[0] != "127.0.43.1" {
			t.Errorf("%s: DNS UDP app.cluster.test: got %v, %v; want [127.0.43.1]", phase, a, err)
		}
	}
	// holdFor checks every second for d and returns the server's CPU use
	// (cores) over it.
	holdFor := func(phase string, d time.Duration) float64 {
		t.Helper()
		c0, t0 := cpuTicks(t, pid), time.Now()
		for end := t0.Add(d); time.Now().Before(end); time.Sleep(time.Second) {
			check(phase)
		}
		cores := float64(cpuTicks(t, pid)-c0) / 100 / time.Since(t0).Seconds() // USER_HZ is 100 on Linux
		t.Logf("%s: server CPU %.1f%% of a core over %v", phase, 100*cores, time.Since(t0).Round(time.Second))
		if cores >= 0.5 {
			t.Errorf("%s: server used %.0f%% of a core while the flood held, want < 50%%", phase, 100*cores)
		}
		return cores
	}

	// Half the API's clients send nothing, half one request and then idle
	// on the kept-alive connection.
	api1 := func() []net.Conn {
		return flood(t, "api", "127.0.43.2", apiAddr, attempts, []byte("GET /v1/zones HTTP/1.1\r\nHost: seamark\r\n\r\n"))
	}
	lb1 := func() []net.Conn {
		return flood(t, "lb", "127.0.43.3", fmt.Sprintf("127.0.0.1:%d", lbPort), attempts, nil)
	}
	for _, ph := range []struct {
		name  string
		run   func() []net.Conn
		holds time.Duration
	}{{"api", api1, 5 * time.Second}, {"lb", lb1, 5 * time.Second}} {
		held := ph.run()
		holdFor("flood "+ph.name, ph.holds)
		closeAll(held)
	}
	// All at once.
	var all []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	floods := []func() []net.Conn{api1, lb1}
	if os.Getenv("SEAMARK_FLOOD_DNS_TCP") == "1" {
		floods = append(floods, func() []net.Conn { return flood(t, "dns tcp", "127.0.43.4", dnsAddr, attempts, nil) })
	}
	for _, f := range floods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := f()
			mu.Lock()
			all = append(all, h...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	holdFor("flood all at once", hold)
	closeAll(all)
	check("after the flood")

	// The healthy node stayed healthy: no event took it down.
	events, _, err := c.Events(ctx, api.EventQuery{Service: "app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.New != api.StateHealthy {
			t.Errorf("false transition: %s %s -> %s by %s (%s)", e.Node, e.Old, e.New, e.Checker, e.Reason)
		}
	}
	// The refusals are counted.
	m := scrape(t, httpc, apiAddr)
	for _, series := range []string{`seamark_conn_refused_total{reason="evicted",surface="api"}`, `seamark_conn_refused_total{reason="paused",surface="lb"}`} {
		if v := m[series]; v < 1 {
			t.Errorf("metric %s: got %v, want refusals counted", series, v)
		} else {
			t.Logf("%s %v", series, v)
		}
	}
	t.Logf("fds: limit %v, reserve %v, open now %v", m["seamark_fd_limit"], m["seamark_fd_reserve"], m["seamark_fd_open"])

	// Oversized objects are refused, naming the limit.
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"tag value", "/v1/services/app/nodes/big", `{"id":"big","address":"127.0.43.9","tags":{"k":"` + strings.Repeat("v", api.MaxTagValueLen+1) + `"}}`, 400, "at most 4096"},
		{"whole body", "/v1/services/app/nodes/big", `{"id":"big","address":"127.0.43.9","tags":{"k":"` + strings.Repeat("v", 2<<20) + `"}}`, 413, "larger than 1048576"},
	} {
		// As curl does with a large body: ask before sending it, so the
		// 413 arrives instead of a reset while the body is still going.
		req, _ := http.NewRequest("PUT", "http://"+apiAddr+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Expect", "100-continue")
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 2 * time.Second}}).Do(req)
		if err != nil {
			t.Fatalf("oversized %s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.msg) {
			t.Errorf("oversized %s: got %d %s, want %d naming %q", tc.name, resp.StatusCode, b, tc.code, tc.msg)
		}
	}

	// An empty config file on SIGHUP is refused and shows in status.
	writeCfg("")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := c.Status(ctx)
		if err == nil && st.Config != nil && !st.Config.LastReloadSuccess {
			if !strings.Contains(st.Config.Error, "allow_empty") || st.Services != 1 || st.Listeners != 1 {
				t.Errorf("status after an empty SIGHUP: config %+v, %d services, %d listeners; want the refusal and everything kept", st.Config, st.Services, st.Listeners)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the refused reload: %+v %v", st, err)
		}
	}
	check("after the refused reload")
}

// flood makes n attempts to open and hold a connection to addr from the
// local address src, 128 at a time, and returns the connections that opened.
// Every other one sends greet first (when set), and reads nothing.
func flood(t *testing.T, name, src, addr string, n int, greet []byte) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	var mu sync.Mutex
	var held []net.Conn
	var failed int
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			for range next {
				c, err := d.Dial("tcp", addr)
				if err == nil && greet != nil && i%2 == 0 {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					c.Write(greet)
				}
				i++
				mu.Lock()
				if err != nil {
					failed++
				} else {
					held = append(held, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("flood %s: %d attempts in %v: %d opened (in the backlog, or closed later by the server), %d failed", name, n, time.Since(t0).Round(time.Millisecond), len(held), failed)
	return held
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// queryA asks dnsAddr over UDP for name's A records.
func queryA(dnsAddr, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, dnsAddr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, nil
}

// cpuTicks is the user and system time of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read the server's CPU time: %v", err)
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is field 14, stime 15
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// scrape reads /metrics into series -> value.
func scrape(t *testing.T, c *http.Client, addr string) map[string]float64 {
	t.Helper()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
