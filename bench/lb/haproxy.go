package main

// The peer: Debian's HAProxy in TCP mode, configured for its best on two
// cores: nbthread 2, splicing both ways, roundrobin, a maxconn as high as
// the open-file limit allows, no logging. One frontend per listener, one
// backend per service, the same backends as seamark's.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type haproxyConfig struct {
	services  []benchService
	listeners []benchListener
	// splice is "auto" (option splice-auto), "always" (splice-request and
	// splice-response) or "off".
	splice string
}

// haproxyMaxconn is the highest maxconn whose descriptors (two sockets per
// connection, a pipe of two per four connections, the listeners) fit in the
// open-file limit.
func haproxyMaxconn(nofile uint64, listeners int) int {
	return max((int(nofile)-listeners-200)*2/5, 100)
}

func (c haproxyConfig) text(dir string, nofile uint64) string {
	nl := 0
	for _, l := range c.listeners {
		nl += max(l.last-l.port, 0) + 1
	}
	maxconn := haproxyMaxconn(nofile, nl)
	var b strings.Builder
	fmt.Fprintf(&b, `# written by bench/lb
global
    nbthread 2
    maxconn %d
    maxpipes %d
    ulimit-n %d
    stats socket %s mode 600 level admin

defaults
    mode tcp
    maxconn %d
    timeout connect 2s
    timeout client 10m
    timeout server 10m
`, maxconn, maxconn/4, nofile, filepath.Join(dir, "haproxy.sock"), maxconn)
	switch c.splice {
	case "auto":
		b.WriteString("    option splice-auto\n")
	case "always":
		b.WriteString("    option splice-request\n    option splice-response\n")
	}
	for _, l := range c.listeners {
		fmt.Fprintf(&b, "\nfrontend %s\n", l.name)
		if l.last > l.port {
			fmt.Fprintf(&b, "    bind %s:%d-%d\n", l.addr(), l.port, l.last)
		} else {
			fmt.Fprintf(&b, "    bind %s:%d\n", l.addr(), l.port)
		}
		fmt.Fprintf(&b, "    default_backend %s\n", l.service)
	}
	for _, s := range c.services {
		fmt.Fprintf(&b, "\nbackend %s\n    balance roundrobin\n", s.name)
		for i, a := range s.backend {
			fmt.Fprintf(&b, "    server %s-%d %s\n", s.name, i+1, net.JoinHostPort(a, fmt.Sprint(s.port)))
		}
	}
	return b.String()
}

// startHAProxy writes the config into dir/<name>/ and starts haproxy in the
// foreground; it returns once the stats socket answers and the first
// listener accepts.
func startHAProxy(ctx context.Context, path, dir, name string, c haproxyConfig, nofile uint64) (*proc, error) {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(d, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(c.text(d, nofile)), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(dir, name, path, "-db", "-f", cfg)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(d, "haproxy.sock")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("haproxy exited at start: %s", p.tail())
		case <-ctx.Done():
			p.stop(syscall.SIGTERM)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(syscall.SIGTERM)
			return nil, fmt.Errorf("haproxy stats socket not up after 2m: %s", p.tail())
		}
	}
	if len(c.listeners) > 0 {
		if err := p.waitDial(ctx, fmt.Sprintf("127.0.0.1:%d", c.listeners[0].port), 30*time.Second); err != nil {
			p.stop(syscall.SIGTERM)
			return nil, err
		}
	}
	return p, nil
}
