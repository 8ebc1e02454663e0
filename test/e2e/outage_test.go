package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/testenv"
)

// Store outages: a full data disk, an external etcd that stops answering, a
// kill -9 in a write burst. The readers (DNS) keep the last state, writes fail
// fast, the store catches up, and nothing acknowledged is lost.

// outageConfig serves db (three trusted nodes) and burst (the writes of the
// tests) under cluster.test; more services follow it.
const outageConfig = `zones: [cluster.test]
services:
  - name: db
    port: 3000
    check: {type: none}
  - name: burst
    port: 3000
    check: {type: none}
`

// writeBound is how long a write may take while the store is away: the
// store gives up after 1.5 s; the rest is margin for a loaded machine.
const writeBound = 2500 * time.Millisecond

var dbAddrs = []string{"127.0.44.11", "127.0.44.12", "127.0.44.13"}

// startOutageServer runs a server with outageConfig plus extra (more
// services, listeners).
func startOutageServer(t *testing.T, name, extra string, args ...string) *agentServer {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(outageConfig+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, name, append([]string{"--config", cfg}, args...)...)
	as := &agentServer{server: s, dns: s.waitOutput(dnsAddrRE, 5*time.Second)}
	return as
}

func registerDB(t *testing.T, s *agentServer) {
	t.Helper()
	for i, a := range dbAddrs {
		if code, err := putNode(s.url, "db", fmt.Sprintf("db-%d", i), a, 0); code != 200 {
			t.Fatalf("register db-%d: %d %v", i, code, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(sorted(lookup(t, s.dns, "db.cluster.test")), dbAddrs) {
		if time.Now().After(deadline) {
			t.Fatalf("db.cluster.test: got %v, want %v", lookup(t, s.dns, "db.cluster.test"), dbAddrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

var writeClient = &http.Client{Timeout: 10 * time.Second}

// putNode registers a node with a tag of pad bytes through the bare HTTP API
// (no client retries, so the time measured is one request's).
func putNode(base, service, id, addr string, pad int) (int, error) {
	body := fmt.Sprintf(`{"address":%q,"tags":{"pad":%q}}`, addr, strings.Repeat("x", pad))
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/services/"+service+"/nodes/"+id, strings.NewReader(body))
	resp, err := writeClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != 200 {
		if resp.StatusCode == 503 {
			if resp.Header.Get("Retry-After") == "" {
				return resp.StatusCode, fmt.Errorf("503 without Retry-After: %s", msg)
			}
			return resp.StatusCode, nil
		}
		return resp.StatusCode, fmt.Errorf("%s", strings.Join(strings.Fields(string(msg)), " "))
	}
	return 200, nil
}

// checkAcked fails t unless every acknowledged node of burst is there.
func checkAcked(t *testing.T, s *agentServer, acked []string) {
	t.Helper()
	var have []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, _, err := s.client.Nodes(ctxTimeout(t, 5*time.Second), "burst", nil)
		if err == nil {
			have = have[:0]
			for _, n := range nodes {
				have = append(have, n.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list burst nodes: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var lost []string
	for _, id := range acked {
		if !slices.Contains(have, id) {
			lost = append(lost, id)
		}
	}
	t.Logf("%d writes acknowledged, %d nodes in the store, %d lost", len(acked), len(have), len(lost))
	if len(lost) > 0 {
		t.Fatalf("acknowledged writes lost: %v", lost)
	}
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "seamark-test", dir).CombinedOutput(); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// A data dir on a small tmpfs: too little space at start is one line; filled
// while serving, DNS keeps the last state, writes fail within the bound with
// 503 and Retry-After, and after the space returns the store comes back by
// itself with every acknowledged write.
func TestStoreDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	fs := mountTmpfs(t, "220m")
	data := filepath.Join(fs, "data")

	// Too little space at start: one clear line, no stack trace.
	fill(t, filepath.Join(fs, "filler"))
	cmd := exec.Command(seamarkBin, "server", "--data-dir", data, "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--log-level", "warn")
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("start on a full disk: %v: %s", err, out)
	if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "MiB free") || strings.Contains(string(out), "goroutine") {
		t.Fatalf("start on a full disk: got %v and %q, want exit 1 and one line naming the free space", err, out)
	}
	os.Remove(filepath.Join(fs, "filler"))

	backend := sayHi(t, "127.0.44.21:0")
	lbPort := freePort(t)
	s := startOutageServer(t, "server", webYAML(backend, lbPort), "--data-dir", data)
	registerDB(t, s)
	if code, err := putNode(s.url, "web", "web-1", "127.0.44.21", 0); code != 200 {
		t.Fatalf("register web-1: %d %v", code, err)
	}
	lbAddr := fmt.Sprintf("127.0.0.1:%d", lbPort)
	for deadline := time.Now().Add(10 * time.Second); greeting(lbAddr) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the balancer at %s never reached the backend: %v", lbAddr, greeting(lbAddr))
		}
	}
	var acked []string
	for i := range 5 {
		id := fmt.Sprintf("before-%d", i)
		if code, err := putNode(s.url, "burst", id, "127.0.44.20", 1000); code != 200 {
			t.Fatalf("write %s: %d %v", id, code, err)
		}
		acked = append(acked, id)
	}

	fill(t, filepath.Join(fs, "filler"))
	failed, slowest := 0, time.Duration(0)
	for i := 0; failed < 5; i++ {
		if i > 200 {
			t.Fatalf("the store took %d writes on a full disk without one failing", i)
		}
		id := fmt.Sprintf("full-%d", i)
		t0 := time.Now()
		code, err := putNode(s.url, "burst", id, "127.0.44.20", 8000)
		took := time.Since(t0)
		slowest = max(slowest, took)
		switch {
		case code == 200:
			acked = append(acked, id)
		case code == 503 && err == nil:
		case code == 503:
			t.Fatalf("write %s on a full disk: %v", id, err)
		default:
			t.Fatalf("write %s on a full disk: got %d %v, want 200 or 503", id, code, err)
		}
		if code != 200 {
			failed++
		}
		if took > writeBound {
			t.Fatalf("write %s on a full disk took %v, want within %v", id, took, writeBound)
		}
		if got := sorted(lookup(t, s.dns, "db.cluster.test")); !slices.Equal(got, dbAddrs) {
			t.Fatalf("db.cluster.test on a full disk: got %v, want %v", got, dbAddrs)
		}
		if err := greeting(lbAddr); err != nil {
			t.Fatalf("the balancer on a full disk: %v", err)
		}
	}
	t.Logf("full disk: %d writes failed, slowest %v", failed, slowest)
	// Status says why.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := s.client.Status(ctxTimeout(t, 5*time.Second))
		if err == nil && st.Store.Error != "" {
			t.Logf("status on a full disk: store error %q", st.Store.Error)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status on a full disk: %v, store error %q, want the reason", err, st.Store.Error)
		}
	}
	if !strings.Contains(s.output(), "embedded etcd") {
		t.Errorf("the log does not say what happened to the embedded etcd")
	}

	os.Remove(filepath.Join(fs, "filler"))
	t0 := time.Now()
	for i := 0; ; i++ {
		id := fmt.Sprintf("after-%d", i)
		code, _ := putNode(s.url, "burst", id, "127.0.44.20", 10)
		if code == 200 {
			acked = append(acked, id)
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("no write accepted within 30s of the space returning")
		}
		if got := sorted(lookup(t, s.dns, "db.cluster.test")); !slices.Equal(got, dbAddrs) {
			t.Fatalf("db.cluster.test while the store restarts: got %v, want %v", got, dbAddrs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("writes accepted again %v after the space returned", time.Since(t0).Round(time.Millisecond))
	checkAcked(t, s, acked)
}

// An external etcd stopped (SIGSTOP) for 20 s: DNS answers the last state
// throughout, every write fails within the bound, and after it resumes the
// server catches up by itself.
func TestExternalEtcdStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcd, url := startEtcdProc(t)
	s := startOutageServer(t, "server", "", "--etcd-endpoints", url)
	registerDB(t, s)

	pid := etcd.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	stopped := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	var writes int
	var slowest time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; time.Since(stopped) < 18*time.Second; i++ {
			t0 := time.Now()
			code, err := putNode(s.url, "burst", fmt.Sprintf("stopped-%d", i), "127.0.44.20", 10)
			took := time.Since(t0)
			mu.Lock()
			writes++
			slowest = max(slowest, took)
			if code != 503 || err != nil {
				problems = append(problems, fmt.Sprintf("write %d: got %d %v, want 503 with Retry-After", i, code, err))
			}
			if took > writeBound {
				problems = append(problems, fmt.Sprintf("write %d took %v, want within %v", i, took, writeBound))
			}
			mu.Unlock()
			time.Sleep(500 * time.Millisecond)
		}
	}()
	queries := 0
	for time.Since(stopped) < 20*time.Second {
		if got := sorted(lookup(t, s.dns, "db.cluster.test")); !slices.Equal(got, dbAddrs) {
			t.Fatalf("db.cluster.test %v after etcd stopped: got %v, want %v", time.Since(stopped), got, dbAddrs)
		}
		queries++
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("etcd stopped 20s: %d DNS queries answered the last state, %d writes, slowest %v", queries, writes, slowest)
	for _, p := range problems {
		t.Error(p)
	}

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	for {
		code, err := putNode(s.url, "db", "db-new", "127.0.44.14", 0)
		if code == 200 {
			break
		}
		if time.Since(resumed) > 15*time.Second {
			t.Fatalf("no write accepted within 15s of etcd resuming: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitDNS(t, s.dns, "db.cluster.test", "127.0.44.14", true, 10*time.Second)
	t.Logf("caught up %v after etcd resumed", time.Since(resumed).Round(time.Millisecond))
}

// kill -9 of the server in a burst of concurrent writes: after a restart on
// the same data every acknowledged write is there.
func TestKill9InWriteBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	s := startOutageServer(t, "server", "", "--data-dir", dir)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				code, _ := putNode(s.url, "burst", id, "127.0.44.20", 100)
				if code != 200 {
					return // the server is gone
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	s2 := startOutageServer(t, "server-again", "", "--data-dir", dir)
	checkAcked(t, s2, acked)
}

// webYAML adds service web (one backend) and a listener in front of it.
func webYAML(backend netip.AddrPort, lbPort int) string {
	return fmt.Sprintf(`  - name: web
    port: %d
    check: {type: none}
listeners:
  - {name: web, port: %d, bind: 127.0.0.1, service: web}
`, backend.Port(), lbPort)
}

// sayHi listens on addr and says "hi" to every connection.
func sayHi(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi\n"))
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// greeting connects through addr and expects the backend's "hi".
func greeting(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if string(b) != "hi\n" {
		return fmt.Errorf("got %q (%v), want the backend's greeting", b, err)
	}
	return nil
}
