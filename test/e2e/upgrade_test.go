package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUpgradeInPlace (issue 19): a server with the embedded store, DNS, a
// balancer listener and the active member of a two-member balancer group
// (the standby runs in a server of its own) is upgraded in place 5
// times in a row (SIGUSR2) while clients open new connections at ~1000/s and
// keep 200 long echo streams open, and a DNS client asks for the group's
// name: nothing refused, nothing reset, every stream's bytes echoed in full,
// every DNS query answered with the member's address. Then an upgrade to a
// binary that exits 1 leaves the old process serving, again with nothing
// refused.
func TestUpgradeInPlace(t *testing.T) {
	dir := t.TempDir()
	// The binary the server starts on SIGUSR2: a link the test points at
	// seamark, then at one that fails.
	next := filepath.Join(dir, "next-seamark")
	if err := os.Symlink(seamarkBin, next); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(dir, "failing")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho new binary fails >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SEAMARK_UPGRADE_BINARY", next)
	// systemd's side: every new process says MAINPID= and READY=1, with a
	// watchdog of its own.
	notifySock := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifySock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	var notifyMu sync.Mutex
	var notes []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			notifyMu.Lock()
			notes = append(notes, string(buf[:n]))
			notifyMu.Unlock()
		}
	}()
	t.Setenv("NOTIFY_SOCKET", notifySock)

	be, err := net.Listen("tcp", "127.0.49.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	lbPort := freePort(t)
	cfg := filepath.Join(dir, "seamark.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
zones: [cluster.test]
services:
  - name: echo
    port: %d
    check: {type: tcp, interval: 1s, timeout: 1s, rise: 1, fall: 3}
    nodes: [{id: echo-a, address: 127.0.49.1}]
listeners:
  - {name: front, port: %d, bind: 127.0.0.1, service: echo, drain_timeout: 5m}
groups:
  - name: lb
    lease_ttl: 2s
    members: [{name: lb1, address: 127.0.49.21, priority: 151}, {name: lb2, address: 127.0.49.22, priority: 150}]
`, be.Addr().(*net.TCPAddr).Port, lbPort))
	pidFile := filepath.Join(dir, "seamark.pid")
	etcd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startServerArgs(t, "server", []string{"server", "--http-addr", "127.0.0.1:0", "--etcd-client-addr", etcd, "--etcd-peer-addr", "127.0.0.1:0",
		"--dns-addr", "127.0.0.1:0", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--member", "lb1", "--pid-file", pidFile})
	dnsAddr := s.waitOutput(dnsAddrRE, 5*time.Second)
	// lb2, the standby, on a server of its own on the same store: were lb1's
	// candidacy or role to lapse during an upgrade, lb2 would take the name.
	startServerArgs(t, "lb2", []string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--etcd-endpoints", "http://" + etcd, "--config", cfg, "--member", "lb2", "--name", "lb2", "--balancer=false",
		"--etcd-username", "root", "--etcd-password-file", filepath.Join(dir, "data", "etcd-root-password")})
	front := fmt.Sprintf("127.0.0.1:%d", lbPort)

	askGroup := func() (string, error) {
		m := new(dns.Msg)
		m.SetQuestion("lb.cluster.test.", dns.TypeA)
		c := &dns.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, dnsAddr)
		if err != nil {
			return "", err
		}
		var got []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = append(got, a.A.String())
			}
		}
		return strings.Join(got, ","), nil
	}
	// Ready: the group name answers and the listener echoes.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, _ := askGroup()
		c, err := net.DialTimeout("tcp", front, time.Second)
		ok := false
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("x"))
			b := make([]byte, 1)
			_, err = io.ReadFull(c, b)
			ok = err == nil
			c.Close()
		}
		if a == "127.0.49.21" && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: group answers %q, listener echo %v", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	readPid := func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	if readPid() == 0 {
		t.Fatal("no pid file")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var (
		newOK, newFail, refused, reset atomic.Int64
		dnsOK, dnsFail, dnsWrong       atomic.Int64
		failMu                         sync.Mutex
		fails                          []string
	)
	noteFail := func(kind string, err error) {
		failMu.Lock()
		if len(fails) < 20 {
			fails = append(fails, kind+": "+err.Error())
		}
		failMu.Unlock()
	}
	classify := func(err error) {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			refused.Add(1)
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			reset.Add(1)
		}
	}

	// 200 long streams: each writes 64 bytes every ~200 ms and reads them
	// back, for the whole test.
	const streams = 200
	streamErr := make([]error, streams)
	streamBytes := make([]int64, streams)
	for i := range streams {
		c, err := net.DialTimeout("tcp", front, 5*time.Second)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte{byte('a' + i%26)}, 64)
			buf := make([]byte, len(msg))
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					streamErr[i] = err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
					streamErr[i] = fmt.Errorf("echo: %v (%q)", err, buf)
					return
				}
				streamBytes[i] += int64(len(msg))
			}
		}()
	}
	// New connections at ~1000/s: 25 clients, one every 20 ms each (the
	// dial and echo take some of each tick on a loaded machine).
	for range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			buf := make([]byte, 5)
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				c, err := net.DialTimeout("tcp", front, 5*time.Second)
				if err != nil {
					newFail.Add(1)
					classify(err)
					noteFail("dial", err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write([]byte("hello"))
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				c.Close()
				if err != nil || string(buf) != "hello" {
					newFail.Add(1)
					classify(err)
					noteFail("echo", fmt.Errorf("%v (%q)", err, buf))
					continue
				}
				newOK.Add(1)
			}
		}()
	}
	// DNS: the group's name, every 10 ms.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			a, err := askGroup()
			switch {
			case err != nil:
				dnsFail.Add(1)
				noteFail("dns", err)
			case a != "127.0.49.21":
				dnsWrong.Add(1)
				noteFail("dns", fmt.Errorf("answered %q", a))
			default:
				dnsOK.Add(1)
			}
		}
	}()

	gone := func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		f := strings.Fields(string(b))
		return len(f) > 2 && f[2] == "Z"
	}
	start := time.Now()
	time.Sleep(time.Second)
	var olds []int
	for i := range 5 {
		old := readPid()
		t0 := time.Now()
		if i == 4 {
			// The last one through the CLI verb.
			out, err := exec.Command(seamarkBin, "upgrade", "--pid-file", pidFile, "--wait", "60s").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "upgraded: pid") {
				t.Fatalf("seamark upgrade: %v\n%s", err, out)
			}
		} else if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		for readPid() == old {
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("upgrade %d: pid file still names %d after 60s", i+1, old)
			}
			time.Sleep(20 * time.Millisecond)
		}
		olds = append(olds, old)
		for want, t1 := fmt.Sprintf("MAINPID=%d\nREADY=1\n", readPid()), time.Now(); ; time.Sleep(20 * time.Millisecond) {
			notifyMu.Lock()
			found := false
			for _, n := range notes {
				found = found || strings.HasPrefix(n, want)
			}
			notifyMu.Unlock()
			if found {
				break
			}
			if time.Since(t1) > 5*time.Second {
				t.Fatalf("upgrade %d: no %q on the notify socket", i+1, want)
			}
		}
		t.Logf("upgrade %d: pid %d -> %d serving after %v", i+1, old, readPid(), time.Since(t0).Round(time.Millisecond))
		time.Sleep(time.Second)
	}

	// The API answers on the address it had (the socket was handed over),
	// from the newest process, on the store the first one started.
	if st, err := s.client.Status(ctxTimeout(t, 5*time.Second)); err != nil || st.Store.Kind != "embedded" {
		t.Fatalf("API after the upgrades: %+v, %v", st.Store, err)
	}

	// A new binary that fails: the old process serves on.
	if err := os.Remove(next); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(failing, next); err != nil {
		t.Fatal(err)
	}
	cur := readPid()
	syscall.Kill(cur, syscall.SIGUSR2)
	time.Sleep(3 * time.Second)
	if readPid() != cur || gone(cur) {
		t.Fatalf("after a failed upgrade pid %d should serve on (pid file %d)", cur, readPid())
	}
	if !strings.Contains(s.output(), "upgrade failed; this process serves on") {
		t.Errorf("the failed upgrade is not logged")
	}
	// seamark upgrade says so too, and exits 1.
	out, err := exec.Command(seamarkBin, "upgrade", "--pid-file", pidFile, "--wait", "3s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "serves on") {
		t.Errorf("seamark upgrade to a failing binary: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	// The old processes drained (the streams were theirs) and exited.
	for _, pid := range olds {
		for t0 := time.Now(); !gone(pid); time.Sleep(50 * time.Millisecond) {
			if time.Since(t0) > 20*time.Second {
				t.Errorf("old process %d still running 20s after its connections ended", pid)
				break
			}
		}
	}
	// An old process leaving after an upgrade is no stop of the service.
	notifyMu.Lock()
	for _, n := range notes {
		if strings.HasPrefix(n, "STOPPING=1") {
			t.Errorf("an old process said STOPPING=1 on its way out: %q", notes)
			break
		}
	}
	notifyMu.Unlock()

	var streamTotal int64
	broken := 0
	for i := range streams {
		streamTotal += streamBytes[i]
		if streamErr[i] != nil {
			broken++
			if broken <= 5 {
				t.Errorf("stream %d: %v after %d bytes", i, streamErr[i], streamBytes[i])
			}
		}
	}
	t.Logf("%v: new connections %d ok (%.0f/s), %d failed (%d refused, %d reset); streams %d/%d intact, %d bytes echoed; dns %d answered, %d failed, %d wrong",
		elapsed.Round(time.Second), newOK.Load(), float64(newOK.Load())/elapsed.Seconds(), newFail.Load(), refused.Load(), reset.Load(),
		streams-broken, streams, streamTotal, dnsOK.Load(), dnsFail.Load(), dnsWrong.Load())
	if newFail.Load() > 0 || dnsFail.Load() > 0 || dnsWrong.Load() > 0 {
		t.Errorf("failures: %v", fails)
	}
	if broken > 0 {
		t.Errorf("%d of %d streams broke", broken, streams)
	}
}
