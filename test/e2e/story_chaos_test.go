package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStoryChaos is field story 4: while nodes come and go, an etcd member
// is killed and restarted, the etcd leader's host is cut off and healed,
// and a seamark server is killed and restarted in the middle of changes.
// Throughout: no registration held by a live agent is ever missing from any
// reachable server, and no DNS answer names a node removed more than the
// bound ago.
func TestStoryChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("nine hosts, an etcd cluster and its failures; skipped with -short")
	}
	const bound = time.Second
	lab := newNetLab(t, 3+4+1+1)
	stable, churn := lab.hosts[3:7], lab.hosts[7]
	checker := lab.hosts[8]
	sc := newStoryCluster(t, lab, `
zones: [cluster.test]
services:
  - name: app
    port: 3000
    check: {type: tcp, interval: 200ms, timeout: 200ms, rise: 1, fall: 2}
`)
	startNode := func(h *labHost) *labNode {
		echo := buildTool(t, "./echosvc")
		n := &labNode{h: h}
		n.svc = h.start(fmt.Sprintf("echosvc-h%d", h.n), echo, "-listen", fmt.Sprintf("%s:3000", h.addr))
		n.agent = h.start(fmt.Sprintf("agent-h%d", h.n), seamarkBin, "agent", "--server", strings.Join(sc.urls, ","),
			"--service", "app", "--port", "3000", "--id", fmt.Sprintf("node-h%d", h.n), "--address", h.addr.String(),
			"--state-file", "none", "--ttl", "5s", "--backoff-min", "50ms", "--backoff-max", "500ms")
		return n
	}
	var ids []string
	for _, h := range stable {
		startNode(h)
		ids = append(ids, fmt.Sprintf("node-h%d", h.n))
	}
	waitDNSCount(t, sc.servers, "app.cluster.test", len(stable), 30*time.Second)

	var mu sync.Mutex
	var violations []string
	var observations int
	churnAddr, churnID := churn.addr.String(), fmt.Sprintf("node-h%d", churn.n)
	// The churning node is removed when its deregistration is committed:
	// the first moment a server's API no longer lists it after its agent
	// was told to stop. From then on, no server may answer it for longer
	// than the bound.
	var stopping bool
	var removedAt time.Time
	var stalest time.Duration
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// The monitor: every reachable server's node list and DNS answer.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5000 && ctx.Err() == nil; i++ {
			for _, s := range sc.servers {
				cl := checker.client(fmt.Sprintf("http://%s:9400", s.h.addr))
				rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				nodes, _, err := cl.Nodes(rctx, "app", nil)
				cancel()
				if err != nil {
					continue // down or cut off: nobody can ask it
				}
				var have []string
				for _, n := range nodes {
					have = append(have, n.ID)
				}
				ans, dnsErr := s.dnsAnswer("app.cluster.test")
				mu.Lock()
				observations++
				if stopping && removedAt.IsZero() && !slices.Contains(have, churnID) {
					removedAt = time.Now()
				}
				if dnsErr == nil && !removedAt.IsZero() && slices.Contains(strings.Split(ans, ","), churnAddr) {
					stalest = max(stalest, time.Since(removedAt))
				}
				for _, id := range ids {
					if !slices.Contains(have, id) {
						violations = append(violations, fmt.Sprintf("%s: h%d lost the registration of live agent %s", time.Now().Format("15:04:05.000"), s.h.n, id))
					}
				}
				if dnsErr == nil && !removedAt.IsZero() && time.Since(removedAt) > bound && slices.Contains(strings.Split(ans, ","), churnAddr) {
					violations = append(violations, fmt.Sprintf("%s: h%d still answers %s, removed %v ago", time.Now().Format("15:04:05.000"), s.h.n, churnAddr, time.Since(removedAt)))
				}
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The churn: one node registers and deregisters, again and again.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100 && ctx.Err() == nil; i++ {
			n := startNode(churn)
			sleepCtx(ctx, 1500*time.Millisecond)
			mu.Lock()
			stopping = true
			mu.Unlock()
			n.agent.stop()
			n.svc.kill()
			sleepCtx(ctx, 700*time.Millisecond)
			mu.Lock()
			stopping, removedAt = false, time.Time{}
			mu.Unlock()
		}
	}()

	report := []string{}
	sleepCtx(ctx, 2*time.Second)
	// 1. An etcd member dies and comes back.
	h3 := lab.hosts[2]
	lab.etcd[h3.n].kill()
	sleepCtx(ctx, 3*time.Second)
	lab.restartEtcd(h3)
	sleepCtx(ctx, 3*time.Second)
	report = append(report, "etcd member on h3 killed for 3s and restarted (done "+time.Now().Format("15:04:05.000")+")")
	// 2. The etcd leader's host is cut off, then healed.
	leader := lab.etcdLeader(lab.hosts[:3])
	t.Logf("%s: cutting the etcd leader's host h%d", time.Now().Format("15:04:05.000"), leader.n)
	leader.cut()
	sleepCtx(ctx, 4*time.Second)
	leader.heal()
	sleepCtx(ctx, 4*time.Second)
	report = append(report, fmt.Sprintf("etcd leader's host h%d cut off for 4s and healed (done %s)", leader.n, time.Now().Format("15:04:05.000")))
	// 3. A seamark server is killed in the middle of changes and restarted.
	victim := sc.servers[1]
	victim.p.kill()
	sleepCtx(ctx, time.Second)
	sc.servers[1] = startLabServer(t, victim.h, sc.cfg, sc.etcd)
	sleepCtx(ctx, 3*time.Second)
	report = append(report, fmt.Sprintf("seamark server on h%d killed mid-churn and restarted", victim.h.n))
	stop()
	wg.Wait()

	// Everything settles to the full, healthy set everywhere.
	waitDNSCount(t, sc.servers, "app.cluster.test", len(stable), 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("story 4 report: %s; %d observations of reachable servers, %d violations; a removed node stayed in an answer at most %v after its removal was committed (bound %v)",
		strings.Join(report, "; "), observations, len(violations), stalest.Round(time.Millisecond), bound)
	if observations < 100 {
		t.Fatalf("only %d observations", observations)
	}
	if len(violations) > 0 {
		if len(violations) > 40 {
			violations = append(violations[:40], fmt.Sprintf("... and %d more", len(violations)-40))
		}
		t.Fatalf("invariants broken:\n%s", strings.Join(violations, "\n"))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
