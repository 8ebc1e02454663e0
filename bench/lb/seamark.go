package main

// seamark's side: `seamark server` (internal/server.Start, what the CLI's
// server verb runs: embedded store, registry, checker, DNS, API and the
// balancer) in a child process, this binary run again with childFlag, so its
// CPU, memory and descriptors are its own. The child reads a YAML config file
// like any server, reloads it on SIGHUP, and can write a CPU profile of its
// whole life (started once it is up, written when it stops).
//
//	child -> stdout  "ready <http addr>" once started

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

const childFlag = "-bench-lb-seamark" // hidden: run as the seamark server child

// serveSeamark is the child: args are the config path and a CPU profile path
// (or "").
func serveSeamark(args []string) {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lb", childFlag, "<config> <cpuprofile or \"\">")
		os.Exit(2)
	}
	if err := runSeamark(args[0], args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "seamark child:", err)
		os.Exit(1)
	}
}

func runSeamark(cfgPath, profile string) error {
	f, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("config rejected:\n%w", err)
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("config rejected:\n%w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	srv, err := server.Start(startCtx, server.Options{Config: f, ConfigPath: cfgPath, Logger: log, Version: "bench"})
	cancel()
	if err != nil {
		return err
	}
	if profile != "" {
		pf, err := os.Create(profile)
		if err != nil {
			srv.Close()
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			srv.Close()
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("ready %s\n", srv.HTTPAddr())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			if err := srv.Reload(rctx); err != nil {
				log.Error("reload", "err", err)
			}
			cancel()
		case <-ctx.Done():
			return srv.Close()
		}
	}
}

// seamarkProc is the parent's handle on a seamark child.
type seamarkProc struct {
	*proc
	cfg    string
	client *api.Client
}

// seamarkConfig is what the benchmark asks of a seamark server.
type seamarkConfig struct {
	dataDir   string
	services  []benchService
	listeners []benchListener
}

type benchService struct {
	name    string
	port    int
	backend []string // node addresses (all on port)
}

type benchListener struct {
	name, service string
	port, last    int    // last > port: a range
	bind          string // "": 127.0.0.1
}

func (l benchListener) addr() string { return cmp.Or(l.bind, "127.0.0.1") }

func (c seamarkConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by bench/lb
server:
  http_addr: 127.0.0.1:0
  dns_addr: 127.0.0.1:0
  data_dir: %s
  etcd_client_addr: 127.0.0.1:0
  etcd_peer_addr: 127.0.0.1:0
services:
`, c.dataDir)
	for _, s := range c.services {
		fmt.Fprintf(&b, "  - name: %s\n    port: %d\n    check: {type: none}\n    nodes:\n", s.name, s.port)
		for i, a := range s.backend {
			fmt.Fprintf(&b, "      - {id: %s-%d, address: %s}\n", s.name, i+1, a)
		}
	}
	b.WriteString("listeners:\n")
	for _, l := range c.listeners {
		if l.last > l.port {
			fmt.Fprintf(&b, "  - {name: %s, ports: \"%d-%d\", bind: %s, service: %s, idle_timeout: 10m}\n", l.name, l.port, l.last, l.addr(), l.service)
		} else {
			fmt.Fprintf(&b, "  - {name: %s, port: %d, bind: %s, service: %s, idle_timeout: 10m}\n", l.name, l.port, l.addr(), l.service)
		}
	}
	return b.String()
}

func (c seamarkConfig) ports() int {
	n := 0
	for _, l := range c.listeners {
		n += max(l.last-l.port, 0) + 1
	}
	return n
}

// startSeamark writes c as dir/<name>.yaml and starts a seamark child on it;
// it returns once every listener port is listening. With quiet it asks the
// child nothing: it waits for the listening sockets only (from /proc), and
// the caller checks the ports' states through the API when it is done
// measuring memory (a status of thousands of ports is megabytes of garbage
// in the server, and one call left the RSS 40 MB higher at 9 000 ports).
func startSeamark(ctx context.Context, dir, name string, c seamarkConfig, profile string, quiet bool) (*seamarkProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(c.yaml()), 0o600); err != nil {
		return nil, err
	}
	logf := filepath.Join(dir, name+".log")
	lf, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	p := &proc{name: name, logf: logf, exited: make(chan struct{})}
	p.cmd = execCommand(self, childFlag, cfg, profile)
	p.cmd.Stderr = lf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start seamark: %w", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- a
			}
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	s := &seamarkProc{proc: p, cfg: cfg}
	select {
	case addr := <-ready:
		if s.client, err = api.NewClient([]string{"http://" + addr}); err != nil {
			s.stop(syscall.SIGTERM)
			return nil, err
		}
	case <-p.exited:
		return nil, fmt.Errorf("seamark exited at start: %s", p.tail())
	case <-time.After(90 * time.Second):
		s.stop(syscall.SIGTERM)
		return nil, fmt.Errorf("seamark not ready after 90s: %s", p.tail())
	case <-ctx.Done():
		s.stop(syscall.SIGTERM)
		return nil, ctx.Err()
	}
	wait := s.waitListening
	if quiet {
		wait = s.waitSockets
	}
	if err := wait(ctx, c.ports(), 2*time.Minute); err != nil {
		s.stop(syscall.SIGTERM)
		return nil, err
	}
	return s, nil
}

// waitSockets waits until the child holds n sockets (read from /proc).
func (s *seamarkProc) waitSockets(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for socketCount(s.pid()) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("seamark: not %d sockets after %v", n, timeout)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("seamark exited: %s", s.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// waitListening waits until the balancer reports n ports listening.
func (s *seamarkProc) waitListening(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.client.BalancerStats(ctx, "")
		if err == nil {
			up, failed := 0, ""
			for _, l := range st {
				switch l.State {
				case api.ListenerListening:
					up++
				case api.ListenerFailed:
					failed = l.Error
				}
			}
			if up >= n {
				return nil
			}
			if failed != "" {
				return fmt.Errorf("seamark: a listener failed: %s", failed)
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("seamark exited: %s", s.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("seamark: not %d ports listening after %v (last error: %v)", n, timeout, err)
		}
	}
}

// reload writes c over the child's config and sends SIGHUP.
func (s *seamarkProc) reload(c seamarkConfig) error {
	if err := os.WriteFile(s.cfg, []byte(c.yaml()), 0o600); err != nil {
		return err
	}
	return s.cmd.Process.Signal(syscall.SIGHUP)
}
