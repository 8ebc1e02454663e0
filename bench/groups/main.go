// Command groups measures balancer group failover: it runs a seamark server
// that owns an embedded store and serves DNS, and two balancer members as
// separate seamark processes on that store; then, n times, it kills the
// active member with SIGKILL (or freezes it with SIGSTOP, -mode freeze) and
// times how long the DNS answer for the group name takes to change, polling
// every millisecond. -fast=false turns fast failover off (lease expiry only).
//
// -mode lab runs the three failures (kill -9, SIGSTOP, a link cut with
// nftables) on separate hosts (network namespaces, an etcd cluster of three;
// needs root, etcd-server and nftables) through the e2e test
// TestGroupFastFailover, which times fast failover and the lease-only path
// in the same run, and prints them side by side.
//
//	go run ./bench/groups [-n 20] [-mode kill|freeze|lab] [-fast=false]
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
	mode := flag.String("mode", "kill", "kill (SIGKILL the active member), freeze (SIGSTOP it), or lab (kill, freeze and a cut link on separate hosts, fast and lease-only side by side)")
	fast := flag.Bool("fast", true, "fast failover (false: lease expiry only); lab mode measures both")
	flag.Parse()
	var err error
	if *mode == "lab" {
		err = runLab(*n)
	} else {
		err = run(*n, *mode, *fast)
	}
	if err != nil {
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

func run(n int, mode string, fast bool) error {
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
    fast_failover: `+fmt.Sprint(fast)+`
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
	path := map[bool]string{true: "fast failover", false: "lease only"}[fast]
	fmt.Printf("# balancer group failover, %d × %s of the active member, %s (%s)\n\n", n, map[string]string{"kill": "SIGKILL", "freeze": "SIGSTOP"}[mode], path, time.Now().Format("2006-01-02"))
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
	fmt.Printf("\n| failovers | p50 | p99 | max | goal |\n|---|---|---|---|---|\n| %d (%s, %s) | %v | %v | %v | ≤ 1 s p99 |\n",
		n, mode, path, pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	fmt.Println("\nFor reference (issue 6, from the field): keepalived VRRP takes about 3.5 s; DNS-script failover 60 s plus the TTL.")
	return nil
}

// runLab runs the e2e test that times the three failures on separate hosts
// with both paths, and prints its figures side by side.
func runLab(n int) error {
	cmd := exec.Command("go", "test", "-count=1", "-run", "TestGroupFastFailover$", "-v", "-timeout", "30m", "./test/e2e/")
	cmd.Env = append(os.Environ(), fmt.Sprintf("SEAMARK_FAILOVER_RUNS=%d", n))
	out, err := cmd.CombinedOutput()
	raw := filepath.Join(os.TempDir(), "bench-groups-lab.log")
	os.WriteFile(raw, out, 0o644)
	type row struct{ n, p50, p99, max string }
	rows := map[string]row{}
	var overlap string
	for _, line := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(line, "FAILOVER | "); ok {
			f := strings.Split(rest, " | ")
			if len(f) >= 6 {
				rows[f[0]+"/"+f[1]] = row{f[2], f[3], f[4], strings.TrimSuffix(strings.TrimSpace(f[5]), " |")}
			}
		}
		if _, rest, ok := strings.Cut(line, "OVERLAP | cut | "); ok {
			overlap = rest
		}
	}
	if len(rows) == 0 {
		os.Stdout.Write(out)
		return fmt.Errorf("the lab test printed no figures (%v): it needs root, etcd-server and nftables", err)
	}
	fmt.Printf("# balancer group failover on separate hosts, etcd cluster of three, %d runs each (%s)\n\n", n, time.Now().Format("2006-01-02"))
	fmt.Println("| failure of the active member | fast p50 | fast p99 | fast max | lease-only p50 | lease-only p99 | lease-only max | goal (fast) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, c := range []struct{ key, name string }{{"kill", "kill -9"}, {"freeze", "SIGSTOP (frozen)"}, {"cut", "link cut, no RST (nftables)"}} {
		f, l := rows[c.key+"/fast"], rows[c.key+"/lease-only"]
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | ≤ 0.3 s p50, ≤ 0.5 s p99 |\n", c.name, f.p50, f.p99, f.max, l.p50, l.p99, l.max)
	}
	if overlap != "" {
		fmt.Printf("\nCut member's on_fault minus the standby's on_active (negative: it let go first): %s\n", overlap)
	}
	fmt.Printf("\nEvery round, and the servers' logs when a bound was missed: %s\n", raw)
	if err != nil {
		return fmt.Errorf("the lab test failed: %v (figures above)", err)
	}
	return nil
}
