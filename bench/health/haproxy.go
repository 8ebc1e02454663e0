package main

// The peer: Debian's HAProxy with one backend of the same n servers, checked
// with "check inter 1s fall 2 rise 2", nbthread 2, and no frontend traffic.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// haproxyVersion returns the first line of `haproxy -v`, or why there is none.
func haproxyVersion() (path, version string, err error) {
	path, err = exec.LookPath("haproxy")
	if err != nil {
		return "", "", errors.New("haproxy is not installed (apt-get install -y haproxy)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-v").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s -v: %w", path, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return path, strings.TrimSpace(first), nil
}

type haproxy struct {
	cmd    *exec.Cmd
	sock   string
	logf   string
	exited chan struct{}
}

// startHAProxy writes the config into dir and starts haproxy in the foreground.
func startHAProxy(path, dir string, n, port int) (*haproxy, error) {
	sock := filepath.Join(dir, "haproxy.sock")
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread 2
    maxconn 4096
    stats socket %s mode 600 level admin
    stats timeout 30s

defaults
    mode tcp
    timeout connect 1s
    timeout check 1s
    timeout client 30s
    timeout server 30s

backend bench
    balance roundrobin
    default-server check inter 1s fall 2 rise 2
`, sock)
	for i := range n {
		fmt.Fprintf(&b, "    server s%d %s:%d\n", i, targetAddr(i), port)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	logf := filepath.Join(dir, "haproxy.log")
	lf, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(path, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	h := &haproxy{cmd: cmd, sock: sock, logf: logf, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(h.exited) }()
	// Wait for the stats socket.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return h, nil
		}
		select {
		case <-h.exited:
			return nil, fmt.Errorf("haproxy exited at start: %s", h.tail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("haproxy stats socket not up after 30s: %s", h.tail())
		}
	}
}

func (h *haproxy) pid() int { return h.cmd.Process.Pid }

// tail is the end of haproxy's own output, for error messages.
func (h *haproxy) tail() string {
	b, _ := os.ReadFile(h.logf)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// stop ends haproxy by its PID: SIGTERM, then SIGKILL after 3 s.
func (h *haproxy) stop() {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		return
	case <-time.After(3 * time.Second):
	}
	h.cmd.Process.Kill()
	<-h.exited
}

// serverStats sums "show stat" over the backend's servers.
type serverStats struct {
	servers int
	up      int    // status UP
	checked int    // last check passed (L4OK)
	chkfail uint64 // failed checks, summed
}

func (h *haproxy) stat() (serverStats, error) {
	var s serverStats
	c, err := net.DialTimeout("unix", h.sock, 2*time.Second)
	if err != nil {
		return s, fmt.Errorf("haproxy stats socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "show stat -1 4 -1\n"); err != nil {
		return s, fmt.Errorf("haproxy show stat: %w", err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	col := map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "# "); ok {
			for i, name := range strings.Split(h, ",") {
				col[name] = i
			}
			continue
		}
		if line == "" || len(col) == 0 {
			continue
		}
		f := strings.Split(line, ",")
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		if get("pxname") != "bench" || get("svname") == "BACKEND" {
			continue
		}
		s.servers++
		if get("status") == "UP" {
			s.up++
		}
		// "* L4OK": the last check passed and the next one is under way.
		if strings.TrimPrefix(get("check_status"), "* ") == "L4OK" {
			s.checked++
		}
		v, _ := strconv.ParseUint(get("chkfail"), 10, 64)
		s.chkfail += v
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("haproxy show stat: %w", err)
	}
	if len(col) == 0 {
		return s, errors.New("haproxy show stat: no header in the answer")
	}
	return s, nil
}
