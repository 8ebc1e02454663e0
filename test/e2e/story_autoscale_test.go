package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// storyCluster is the control plane of the field stories: on each of the
// first three lab hosts an etcd member and a seamark server.
type storyCluster struct {
	lab     *netLab
	etcd    []string
	servers []*labServer
	urls    []string
	cfg     string
}

func newStoryCluster(t *testing.T, lab *netLab, config string, serverArgs ...string) *storyCluster {
	t.Helper()
	hosts := lab.hosts[:3]
	sc := &storyCluster{lab: lab, etcd: lab.startEtcdCluster(hosts)}
	sc.cfg = filepath.Join(t.TempDir(), "seamark.yaml")
	if err := os.WriteFile(sc.cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		s := startLabServer(t, h, sc.cfg, sc.etcd, serverArgs...)
		sc.servers = append(sc.servers, s)
		sc.urls = append(sc.urls, fmt.Sprintf("http://%s:9400", h.addr))
	}
	return sc
}

// labNode is a node host running the echo service on port 3000 and an agent.
type labNode struct {
	h            *labHost
	svc, agent   *proc
	killedAt     time.Time
	registeredAt time.Time
}

func (sc *storyCluster) startNode(t *testing.T, h *labHost, service string, port int) *labNode {
	t.Helper()
	echo := buildTool(t, "./echosvc")
	n := &labNode{h: h}
	n.svc = h.start(fmt.Sprintf("echosvc-h%d", h.n), echo, "-listen", fmt.Sprintf("%s:%d", h.addr, port))
	n.agent = h.start(fmt.Sprintf("agent-h%d", h.n), seamarkBin, "agent", "--server", strings.Join(sc.urls, ","),
		"--service", service, "--port", fmt.Sprint(port), "--id", fmt.Sprintf("node-h%d", h.n), "--address", h.addr.String(),
		"--state-file", "none", "--ttl", "2s", "--unhealthy-after", "500ms", "--identity-addr", h.addr.String()+":9401",
		"--backoff-min", "100ms", "--backoff-max", "1s")
	return n
}

// kill is kill -9 of the node: its agent and its service, without a word.
func (n *labNode) kill() {
	n.killedAt = time.Now()
	n.agent.kill()
	n.svc.kill()
}

// TestStoryAutoscaling is field story 1: a cluster seeded through DNS while
// it scales. Three seamark servers on an etcd cluster of three; six node
// hosts with an agent and a service on port 3000; nodes are killed with -9
// and new ones start at new addresses, round after round. Throughout, every
// answer of every seamark DNS server is checked by connecting to it, and a
// seed.Cluster client sends requests without pause.
func TestStoryAutoscaling(t *testing.T) {
	if testing.Short() {
		t.Skip("16 hosts, an etcd cluster and 20 processes; skipped with -short")
	}
	const (
		initial = 6
		rounds  = 3
		perKill = 2
		// bound is how long a killed node may stay in an answer: the check
		// (interval 200ms × fall 2 + timeout 200ms) and a margin for
		// propagation to every server.
		bound = time.Second
	)
	lab := newNetLab(t, 3+initial+rounds*perKill+1)
	sc := newStoryCluster(t, lab, `
zones: [cluster.test]
services:
  - name: app
    port: 3000
    check: {type: tcp, interval: 200ms, timeout: 200ms, fast_interval: 100ms, rise: 1, fall: 2}
    answers: {when_none_healthy: empty}
`)
	client := lab.hosts[len(lab.hosts)-1]
	spare := lab.hosts[3+initial : len(lab.hosts)-1]
	var mu sync.Mutex
	nodes := map[string]*labNode{} // by address
	for _, h := range lab.hosts[3 : 3+initial] {
		nodes[h.addr.String()] = sc.startNode(t, h, "app", 3000)
	}
	waitDNSCount(t, sc.servers, "app.cluster.test", initial, 30*time.Second)

	// The application: a seed client on its own host, seeded through DNS.
	seedBin := buildTool(t, "./seedclient")
	app := client.start("seedclient", seedBin, "-seeds", "app.cluster.test:9401", "-dns", sc.servers[0].dns,
		"-duration", "60s", "-every", "20ms", "-tend", "300ms")

	// The checker: every server's answer, every answered address connected to.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var violations []string
	var checks int
	var stalest time.Duration // longest a killed node was still answered
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			for _, s := range sc.servers {
				ans, err := s.dnsAnswer("app.cluster.test")
				if err != nil {
					continue
				}
				for _, a := range strings.Split(ans, ",") {
					if a == "" {
						continue
					}
					cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					c, err := client.dial(cctx, "tcp", a+":3000")
					cancel()
					mu.Lock()
					checks++
					if n := nodes[a]; n != nil && !n.killedAt.IsZero() {
						stalest = max(stalest, time.Since(n.killedAt))
					}
					if err != nil {
						n := nodes[a]
						if ctx.Err() == nil && (n == nil || n.killedAt.IsZero() || time.Since(n.killedAt) > bound) {
							violations = append(violations, fmt.Sprintf("h%d answered %s, which does not accept connections: %v", s.h.n, a, err))
						}
					} else {
						c.Close()
					}
					mu.Unlock()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// Scale in and out, round after round.
	time.Sleep(2 * time.Second)
	for r := range rounds {
		mu.Lock()
		var live []string
		for a, n := range nodes {
			if n.killedAt.IsZero() {
				live = append(live, a)
			}
		}
		slices.Sort(live)
		rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, a := range live[:perKill] {
			nodes[a].kill()
		}
		mu.Unlock()
		for _, h := range spare[r*perKill : (r+1)*perKill] {
			n := sc.startNode(t, h, "app", 3000)
			mu.Lock()
			nodes[h.addr.String()] = n
			mu.Unlock()
		}
		waitDNSCount(t, sc.servers, "app.cluster.test", initial, 20*time.Second)
		t.Logf("round %d: killed %v, started %d new nodes; every server answers %d live nodes", r+1, live[:perKill], perKill, initial)
		time.Sleep(2 * time.Second)
	}
	stop()
	wg.Wait()
	app.kill()

	// The application's view: the longest run of failing requests.
	var total, failed int
	var worst time.Duration
	var streakStart int64
	sc2 := bufio.NewScanner(strings.NewReader(app.output()))
	for sc2.Scan() {
		var r struct {
			At  int64  `json:"at"`
			OK  bool   `json:"ok"`
			Err string `json:"err"`
		}
		if json.Unmarshal(sc2.Bytes(), &r) != nil || r.At == 0 {
			continue
		}
		total++
		if r.OK {
			// A run of failures lasts until the next request that works.
			if streakStart != 0 {
				worst = max(worst, time.Duration(r.At-streakStart))
			}
			streakStart = 0
			continue
		}
		failed++
		if streakStart == 0 {
			streakStart = r.At
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("story 1 report: %d answers checked by connecting, %d violations, a killed node answered at most %v after its death (bound %v); seed client: %d requests, %d failed, longest run of failures (until the next request that worked) %v",
		checks, len(violations), stalest.Round(time.Millisecond), bound, total, failed, worst)
	if len(violations) > 0 {
		t.Errorf("answers named nodes that did not accept connections more than %v after their death:\n%s", bound, strings.Join(violations, "\n"))
	}
	if total < 100 {
		t.Fatalf("the seed client made only %d requests:\n%s", total, app.output())
	}
	if worst > bound {
		t.Errorf("the seed client's requests kept failing for %v, more than %v", worst, bound)
	}
}

// waitDNSCount waits until every server answers exactly n addresses for name.
func waitDNSCount(t *testing.T, servers []*labServer, name string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		var got []string
		for _, s := range servers {
			ans, err := s.dnsAnswer(name)
			got = append(got, ans)
			if err != nil || len(strings.Split(ans, ",")) != n || ans == "" {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d addresses from every server within %v, got %q", name, n, within, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
