package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// labServer is a seamark server running inside a lab host.
type labServer struct {
	h      *labHost
	p      *proc
	client *api.Client
	dns    string
}

func startLabServer(t *testing.T, h *labHost, cfg string, etcd []string, extra ...string) *labServer {
	t.Helper()
	args := append([]string{"server", "--config", cfg, "--http-addr", h.addr.String() + ":9400", "--dns-addr", h.addr.String() + ":9453",
		"--etcd-endpoints", strings.Join(etcd, ","), "--name", fmt.Sprintf("h%d", h.n), "--balancer=false",
		"--insecure-expose"}, extra...) // the lab's own network namespaces: no one else is on it
	p := h.start(fmt.Sprintf("seamark-h%d", h.n), seamarkBin, args...)
	addr := p.waitOutput(anyHTTPAddrRE, 30*time.Second)
	return &labServer{h: h, p: p, client: h.client("http://" + addr), dns: h.addr.String() + ":9453"}
}

// groupView asks one server for a group's index and answer.
func (s *labServer) groupView(ctx context.Context, group string) (int64, string, error) {
	gs, idx, err := s.client.GroupsIndex(ctx)
	if err != nil {
		return 0, "", err
	}
	for _, g := range gs {
		if g.Name == group {
			var as []string
			for _, a := range g.Answer {
				as = append(as, a.String())
			}
			return idx, strings.Join(as, ","), nil
		}
	}
	return idx, "", fmt.Errorf("no group %s", group)
}

// dnsAnswer asks the server's DNS from inside its host.
func (s *labServer) dnsAnswer(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := s.h.dial(ctx, "udp", s.dns)
	if err != nil {
		return "", err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	conn := &dns.Conn{Conn: c}
	conn.SetDeadline(time.Now().Add(time.Second))
	if err := conn.WriteMsg(m); err != nil {
		return "", err
	}
	r, err := conn.ReadMsg()
	if err != nil {
		return "", err
	}
	var as []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			as = append(as, a.A.String())
		}
	}
	return strings.Join(as, ","), nil
}

// TestGroupPartition: three hosts, an etcd cluster of three, two balancer
// members and a third seamark server. Cutting the active member's link moves
// the role to the other member; at no store revision do two servers give
// different answers for the group name, and the cut-off member runs on_fault
// on its own.
func TestGroupPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("three hosts and an etcd cluster; skipped with -short")
	}
	lab := newNetLab(t, 3)
	h1, h2, h3 := lab.hosts[0], lab.hosts[1], lab.hosts[2]
	etcd := lab.startEtcdCluster(lab.hosts)
	dir := t.TempDir()
	hooks := filepath.Join(dir, "hooks.log")
	cfg := filepath.Join(dir, "seamark.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: %s, priority: 151}, {name: lb2, address: %s, priority: 150}]
    preempt_delay: 1s
    hooks:
      on_active: 'echo "active $SEAMARK_MEMBER $SEAMARK_FENCING $(date +%%s.%%N)" >> %[3]s'
      on_fault: 'echo "fault $SEAMARK_MEMBER $SEAMARK_FENCING $(date +%%s.%%N)" >> %[3]s'
`, h1.addr, h2.addr, hooks)), 0o644)
	// etcd's members find each other first.
	s3 := startLabServer(t, h3, cfg, etcd)
	s1 := startLabServer(t, h1, cfg, etcd, "--member", "lb1")
	s2 := startLabServer(t, h2, cfg, etcd, "--member", "lb2")
	servers := []*labServer{s1, s2, s3}
	waitGroupAnswer(t, s3, "lb", h1.addr.String(), 20*time.Second)
	for _, s := range servers {
		waitGroupAnswer(t, s, "lb", h1.addr.String(), 5*time.Second)
	}

	// Watch every server's (index, answer) and every DNS answer until done.
	var mu sync.Mutex
	seen := map[int64]string{}
	var conflicts []string
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				idx, ans, err := s.groupView(rctx, "lb")
				cancel()
				if err == nil && idx > 0 {
					mu.Lock()
					if prev, ok := seen[idx]; ok && prev != ans {
						conflicts = append(conflicts, fmt.Sprintf("index %d: %q and %q (h%d)", idx, prev, ans, s.h.n))
					}
					seen[idx] = ans
					mu.Unlock()
				}
				if a, err := s.dnsAnswer("lb.cluster.test"); err == nil && strings.Contains(a, ",") {
					mu.Lock()
					conflicts = append(conflicts, fmt.Sprintf("h%d DNS answered two members: %s", s.h.n, a))
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	cutAt := time.Now()
	h1.cut()
	d := waitGroupAnswer(t, s3, "lb", h2.addr.String(), 15*time.Second)
	t.Logf("active member cut off: the other side answers lb2 after %v", time.Since(cutAt))
	waitGroupAnswer(t, s2, "lb", h2.addr.String(), 5*time.Second)
	waitHook(t, hooks, "fault lb1", 10*time.Second)
	t.Logf("cut-off member ran on_fault; role moved in %v", d)

	h1.heal()
	waitGroupAnswer(t, s3, "lb", h1.addr.String(), 20*time.Second)
	for _, s := range servers {
		waitGroupAnswer(t, s, "lb", h1.addr.String(), 10*time.Second)
	}
	stop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d distinct indexes observed across 3 servers", len(seen))
	if len(conflicts) > 0 {
		t.Fatalf("split answers:\n%s", strings.Join(conflicts, "\n"))
	}
	// The cut-off member stopped acting as active (on_fault) before the
	// other one started (on_active): never two actives at once.
	b, _ := os.ReadFile(hooks)
	t.Logf("hooks:\n%s", b)
	var faultAt, activeAt float64
	for _, line := range strings.Split(string(b), "\n") {
		var role, member string
		var fencing int64
		var at float64
		if n, _ := fmt.Sscanf(line, "%s %s %d %f", &role, &member, &fencing, &at); n != 4 {
			continue
		}
		if role == "fault" && member == "lb1" && faultAt == 0 {
			faultAt = at
		}
		if role == "active" && member == "lb2" && activeAt == 0 {
			activeAt = at
		}
	}
	if faultAt == 0 || activeAt == 0 || faultAt >= activeAt {
		t.Errorf("lb1 stepped down at %.3f, lb2 became active at %.3f: want lb1 first", faultAt, activeAt)
	} else {
		t.Logf("lb1 stepped down %.0f ms before lb2 became active", (activeAt-faultAt)*1000)
	}
}

func waitGroupAnswer(t *testing.T, s *labServer, group, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, ans, err := s.groupView(ctx, group)
		cancel()
		if err == nil && ans == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("h%d: group %s answers %q (%v), want %s within %v", s.h.n, group, ans, err, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHook(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook log lacks %q:\n%s", want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
