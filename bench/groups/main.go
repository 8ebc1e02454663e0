// Command groups measures balancer group failover: it runs a seamark server
// that owns an embedded store and serves DNS, and two balancer members as
// separate seamark processes on that store; then, n times, it kills the
// active member with SIGKILL (or freezes it with SIGSTOP, -mode freeze, so
// only the lease can move the role) and times how long the DNS answer for
// the group name takes to change, polling every millisecond.
//
//	go run ./bench/groups [-n 20] [-mode kill|freeze]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

func main() {
	n := flag.Int("n", 20, "failovers to measure")
	mode := flag.String("mode", "kill", "kill (SIGKILL the active member) or freeze (SIGSTOP it: the lease alone moves the role)")
	flag.Parse()
	if err := run(*n, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "bench/groups:", err)
		os.Exit(1)
	}
}

type proc struct {
	cmd  *exec.Cmd
	out  chan string
	done chan struct{}
}

var (
	httpRE = regexp.MustCompile(`seamark server running.* http=(127\.0\.0\.1:\d+)`)
	dnsRE  = regexp.MustCompile(`seamark server running.* dns=(127\.0\.0\.1:\d+)`)
)

func start(bin string, args ...string) (*proc, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{cmd: cmd, out: make(chan string, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), "seamark server running") {
				p.out <- sc.Text()
				sent = true
			}
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(p.done) }()
	select {
	case line := <-p.out:
		return p, line, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited before it ran", strings.Join(args, " "))
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, "", fmt.Errorf("%s did not start in 60s", strings.Join(args, " "))
	}
}

func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func answer(c *dns.Client, server, name string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return "error"
	}
	var as []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			as = append(as, a.A.String())
		}
	}
	return strings.Join(as, ",")
}

func run(n int, mode string) error {
	if mode != "kill" && mode != "freeze" {
		return fmt.Errorf("-mode %q: want kill or freeze", mode)
	}
	dir, err := os.MkdirTemp("", "bench-groups-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "seamark")
	build := exec.Command("go", "build", "-o", bin, "./cmd/seamark")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w (run from the repository root)", err)
	}
	cfg := filepath.Join(dir, "seamark.yaml")
	os.WriteFile(cfg, []byte(`
zones: [cluster.test]
groups:
  - name: lb
    preempt: false
    lease_ttl: 1s
    members: [{name: lb1, address: 127.0.0.21, priority: 150}, {name: lb2, address: 127.0.0.22, priority: 150}]
`), 0o644)
	etcd := fmt.Sprintf("127.0.0.1:%d", freePort())
	s0, line, err := start(bin, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "s0"), "--etcd-client-addr", etcd,
		"--etcd-peer-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--balancer=false", "--name", "s0")
	if err != nil {
		return err
	}
	defer s0.kill()
	dnsAddr := dnsRE.FindStringSubmatch(line)[1]
	client, _ := api.NewClient([]string{"http://" + httpRE.FindStringSubmatch(line)[1]})
	members := map[string]*proc{}
	startMember := func(name string) error {
		p, _, err := start(bin, "server", "--config", cfg, "--etcd-endpoints", "http://"+etcd, "--member", name, "--name", name,
			"--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--balancer=false")
		members[name] = p
		return err
	}
	defer func() {
		for _, p := range members {
			if p != nil {
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
				p.kill()
			}
		}
	}()
	for _, m := range []string{"lb1", "lb2"} {
		if err := startMember(m); err != nil {
			return err
		}
	}
	addrOf := map[string]string{"127.0.0.21": "lb1", "127.0.0.22": "lb2"}
	dc := &dns.Client{Timeout: 200 * time.Millisecond}
	var took []time.Duration
	fmt.Printf("# balancer group failover, %d × %s of the active member (%s)\n\n", n, map[string]string{"kill": "SIGKILL", "freeze": "SIGSTOP"}[mode], time.Now().Format("2006-01-02"))
	for i := range n {
		// Both members live, one active.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var active string
		for ctx.Err() == nil {
			gs, err := client.Groups(ctx)
			if err == nil && len(gs) == 1 && len(gs[0].Candidates) == 2 && gs[0].Active != nil {
				if a := answer(dc, dnsAddr, "lb.cluster.test."); addrOf[a] == gs[0].Active.Member {
					active = gs[0].Active.Member
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if active == "" {
			return fmt.Errorf("round %d: no active member with both members live", i)
		}
		other := map[string]string{"lb1": "lb2", "lb2": "lb1"}[active]
		p := members[active]
		t0 := time.Now()
		if mode == "kill" {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		} else {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP)
		}
		for {
			if addrOf[answer(dc, dnsAddr, "lb.cluster.test.")] == other {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("round %d: the answer did not move in 30s", i)
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(t0)
		took = append(took, d)
		fmt.Printf("round %2d: %s -> %s in %v\n", i+1, active, other, d.Round(time.Millisecond))
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
		p.kill()
		members[active] = nil
		if err := startMember(active); err != nil {
			return err
		}
	}
	slices.Sort(took)
	pct := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	fmt.Printf("\n| failovers | p50 | p99 | max | goal |\n|---|---|---|---|---|\n| %d (%s) | %v | %v | %v | ≤ 1 s p99 |\n",
		n, mode, pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	fmt.Println("\nFor reference (issue 6, from the field): keepalived VRRP takes about 3.5 s; DNS-script failover 60 s plus the TTL.")
	return nil
}
