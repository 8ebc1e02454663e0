package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStoryBalancerFailover is field story 3, lb1/lb2/lb, on separate hosts:
// the members answer their own names; the shared name follows the active
// member through kill -9, restart (and preempt), and a cut link (and its
// healing). Every server's DNS answer is watched throughout: it never names
// two members, and every move is timed.
func TestStoryBalancerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("five hosts and an etcd cluster; skipped with -short")
	}
	lab := newNetLab(t, 5)
	lb1h, lb2h := lab.hosts[3], lab.hosts[4]
	sc := newStoryCluster(t, lab, fmt.Sprintf(`
zones: [cluster.test]
groups:
  - name: lb
    preempt_delay: 1s
    members: [{name: lb1, address: %s, priority: 151}, {name: lb2, address: %s, priority: 150}]
`, lb1h.addr, lb2h.addr))
	cfg := sc.cfg
	startLB := func(h *labHost, name string) *labServer {
		return startLabServer(t, h, cfg, sc.etcd, "--member", name)
	}
	lb1 := startLB(lb1h, "lb1")
	waitAll := func(want string, within time.Duration) time.Duration {
		start := time.Now()
		for _, s := range sc.servers {
			waitGroupAnswer(t, s, "lb", want, within)
		}
		return time.Since(start)
	}
	waitAll(lb1h.addr.String(), 20*time.Second)
	startLB(lb2h, "lb2")
	for _, m := range []struct{ name, addr string }{{"lb1", lb1h.addr.String()}, {"lb2", lb2h.addr.String()}} {
		for _, s := range sc.servers {
			if got, err := s.dnsAnswer(m.name + ".cluster.test"); err != nil || got != m.addr {
				t.Fatalf("h%d: %s.cluster.test answers %q, %v; want %s", s.h.n, m.name, got, err, m.addr)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)

	// Watch every server's DNS answer for the shared name.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var split []string
	var wg sync.WaitGroup
	for _, s := range sc.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && ctx.Err() == nil; i++ {
				if a, err := s.dnsAnswer("lb.cluster.test"); err == nil && strings.Contains(a, ",") {
					mu.Lock()
					split = append(split, fmt.Sprintf("h%d answered %s", s.h.n, a))
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	report := []string{}
	step := func(what string, act func(), want string, within time.Duration) {
		t.Helper()
		start := time.Now()
		act()
		waitAll(want, within)
		report = append(report, fmt.Sprintf("%s: %v", what, time.Since(start).Round(time.Millisecond)))
	}
	step("kill -9 lb1 -> lb2", func() { lb1.p.kill() }, lb2h.addr.String(), 5*time.Second)
	step("restart lb1 -> lb1 after preempt_delay 1s", func() { lb1 = startLB(lb1h, "lb1") }, lb1h.addr.String(), 20*time.Second)
	step("cut lb1's link -> lb2", func() { lb1h.cut() }, lb2h.addr.String(), 15*time.Second)
	// lb1 cannot be asked while cut off; the servers on the other side can.
	step("heal lb1's link -> lb1 after preempt_delay", func() { lb1h.heal() }, lb1h.addr.String(), 30*time.Second)
	stop()
	wg.Wait()
	t.Logf("story 3 report: %s", strings.Join(report, "; "))
	if len(split) > 0 {
		t.Fatalf("the shared name named two members:\n%s", strings.Join(split, "\n"))
	}
}
