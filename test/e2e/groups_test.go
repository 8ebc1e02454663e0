package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// groupCluster is one seamark server owning an embedded store and serving
// DNS, and balancer members: seamark servers on that store, each a process.
type groupCluster struct {
	t       *testing.T
	cfg     string
	etcd    string
	dns     string
	s0      *server
	members map[string]*server
	dir     string // s0's data dir is dir/s0
}

func newGroupCluster(t *testing.T, config string) *groupCluster {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The embedded store's client address must be known to the members.
	etcd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s0 := startServerArgs(t, "s0", []string{"server", "--http-addr", "127.0.0.1:0", "--etcd-client-addr", etcd,
		"--etcd-peer-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--config", cfg, "--data-dir", filepath.Join(dir, "s0"),
		"--balancer=false", "--name", "s0"})
	return &groupCluster{t: t, dir: dir, cfg: cfg, etcd: "http://" + etcd, dns: s0.waitOutput(dnsAddrRE, 10*time.Second), s0: s0, members: map[string]*server{}}
}

// startServerArgs runs `seamark server` with exactly args.
func startServerArgs(t testing.TB, name string, args []string) *server {
	t.Helper()
	p := startProc(t, name, seamarkBin, args...)
	addr := p.waitOutput(httpAddrRE, 30*time.Second)
	s := &server{proc: p, url: "http://" + addr}
	c, err := api.NewClient([]string{s.url})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// member starts the balancer member name as its own seamark server.
func (gc *groupCluster) member(name string) *server {
	gc.t.Helper()
	s := startServerArgs(gc.t, name, []string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--etcd-endpoints", gc.etcd, "--config", gc.cfg, "--member", name, "--name", name, "--balancer=false",
		// s0's embedded store wants its root password.
		"--etcd-username", "root", "--etcd-password-file", filepath.Join(gc.dir, "s0", "etcd-root-password")})
	gc.members[name] = s
	return s
}

// answer asks the cluster's DNS server for name's A records.
func (gc *groupCluster) answer(name string) []string {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, gc.dns)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	out := []string{}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// waitAnswer polls the group name until it answers exactly want, and
// returns how long that took.
func (gc *groupCluster) waitAnswer(name, want string, within time.Duration) time.Duration {
	gc.t.Helper()
	start := time.Now()
	for {
		got := gc.answer(name)
		if len(got) == 1 && got[0] == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			gc.t.Fatalf("%s: answers %v, want %s within %v", name, got, want, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holds checks that name keeps answering want for d.
func (gc *groupCluster) holds(name, want string, d time.Duration) {
	gc.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if got := gc.answer(name); len(got) != 1 || got[0] != want {
			gc.t.Fatalf("%s: answers %v, want %s to hold", name, got, want)
		}
	}
}

// waitCandidates waits until the group shows n live candidacies.
func (gc *groupCluster) waitCandidates(group string, n int) {
	gc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gs, err := gc.s0.client.Groups(ctxTimeout(gc.t, 2*time.Second))
		if err == nil {
			for _, g := range gs {
				if g.Name == group && len(g.Candidates) == n {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			gc.t.Fatalf("group %s: want %d candidates: %+v %v", group, n, gs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const groupConfig = `
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: 127.0.0.21, priority: 151}, {name: lb2, address: 127.0.0.22, priority: 150}]
    preempt_delay: 1s
  - name: np
    preempt: false
    members: [{name: lb1, address: 127.0.0.21, priority: 151}, {name: lb2, address: 127.0.0.22, priority: 150}]
`

// TestGroupFailover: kill -9 of the active member moves the group name to
// the standby within lease_ttl + 0.5s; SIGTERM hands over in under 200 ms;
// with preempt the preferred member takes the role back after preempt_delay,
// without preempt it does not.
func TestGroupFailover(t *testing.T) {
	gc := newGroupCluster(t, groupConfig)
	lb1 := gc.member("lb1")
	gc.waitAnswer("lb.cluster.test", "127.0.0.21", 10*time.Second)
	gc.waitAnswer("np.cluster.test", "127.0.0.21", 5*time.Second)
	gc.member("lb2")
	gc.waitCandidates("lb", 2)
	gc.waitCandidates("np", 2)
	// Member names always answer their own address.
	if got := gc.answer("lb2.cluster.test"); len(got) != 1 || got[0] != "127.0.0.22" {
		t.Errorf("lb2.cluster.test: got %v", got)
	}

	lb1.kill()
	d := gc.waitAnswer("lb.cluster.test", "127.0.0.22", 5*time.Second)
	t.Logf("kill -9 of the active member: group name moved in %v", d)
	if d > 1500*time.Millisecond {
		t.Errorf("failover took %v, want within lease_ttl + 0.5s = 1.5s", d)
	}
	gc.waitAnswer("np.cluster.test", "127.0.0.22", 2*time.Second)
	if dig, err := exec.LookPath("dig"); err == nil {
		host, port, _ := net.SplitHostPort(gc.dns)
		out, err := exec.Command(dig, "@"+host, "-p", port, "+short", "lb.cluster.test").Output()
		if err != nil || strings.TrimSpace(string(out)) != "127.0.0.22" {
			t.Errorf("dig lb.cluster.test: got %q, %v", out, err)
		}
	}

	// lb1 back: lb (preempt) returns to it after preempt_delay; np stays.
	start := time.Now()
	lb1 = gc.member("lb1")
	gc.waitAnswer("lb.cluster.test", "127.0.0.21", 10*time.Second)
	if took := time.Since(start); took < time.Second {
		t.Errorf("preempted %v after the restart, before preempt_delay 1s", took)
	}
	gc.holds("np.cluster.test", "127.0.0.22", 500*time.Millisecond)

	// SIGTERM of the active member hands over at once.
	stopAt := time.Now()
	go lb1.stop()
	gc.waitAnswer("lb.cluster.test", "127.0.0.22", 5*time.Second)
	d = time.Since(stopAt)
	t.Logf("SIGTERM of the active member: group name moved in %v", d)
	if d > 200*time.Millisecond {
		t.Errorf("graceful handover took %v, want under 200ms", d)
	}
}

// TestGroupTrackWeights: each member tracks its own service (":port" is the
// member's own address); when the active member's fails, a weight larger
// than the priority gap moves the role, a smaller one does not.
func TestGroupTrackWeights(t *testing.T) {
	// The same port on each member's address: lb1's and lb2's service.
	ln1, err := net.Listen("tcp", "127.0.0.21:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln1.Addr().(*net.TCPAddr).Port
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.22:%d", port))
	if err != nil {
		t.Skipf("port %d taken on 127.0.0.22: %v", port, err)
	}
	defer ln2.Close()
	check := fmt.Sprintf(`{type: tcp, address: ":%d", interval: 100ms, timeout: 100ms, rise: 1, fall: 1}`, port)
	gc := newGroupCluster(t, fmt.Sprintf(`
zones: [cluster.test]
groups:
  - name: big
    members: [{name: lb1, address: 127.0.0.21, priority: 160}, {name: lb2, address: 127.0.0.22, priority: 150}]
    track: [{check: %[1]s, weight: -20}]
  - name: small
    members: [{name: lb1, address: 127.0.0.21, priority: 160}, {name: lb2, address: 127.0.0.22, priority: 150}]
    track: [{check: %[1]s, weight: -5}]
`, check))
	gc.member("lb1")
	gc.waitAnswer("big.cluster.test", "127.0.0.21", 10*time.Second)
	gc.waitAnswer("small.cluster.test", "127.0.0.21", 5*time.Second)
	gc.member("lb2")
	gc.waitCandidates("big", 2)
	gc.waitCandidates("small", 2)
	ln1.Close() // lb1's own service goes down
	d := gc.waitAnswer("big.cluster.test", "127.0.0.22", 5*time.Second)
	t.Logf("weight -20 over a gap of 10: role moved %v after the tracked service closed", d)
	gc.holds("small.cluster.test", "127.0.0.21", time.Second)

	// seamark validate warns about the weight that can never move the role.
	out, _ := exec.Command(seamarkBin, "validate", gc.cfg).CombinedOutput()
	if !strings.Contains(string(out), "groups[1].track: no tracked check can move the role: largest weight 5 does not exceed the priority gap 10") {
		t.Errorf("seamark validate did not warn about the small weight:\n%s", out)
	}
}

// TestGroupFrozenMemberStepsDown: a member frozen (SIGSTOP) accepts
// connections but renews nothing, so only its lease can move the role: the
// standby takes over once it expires; thawed, the old active finds its lease
// lost, runs on_fault on its own, and with preempt takes the role back with
// a higher fencing revision, running on_active again.
func TestGroupFrozenMemberStepsDown(t *testing.T) {
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	gc := newGroupCluster(t, fmt.Sprintf(`
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: 127.0.0.21, priority: 151}, {name: lb2, address: 127.0.0.22, priority: 150}]
    preempt_delay: 500ms
    hooks:
      on_active: 'echo "active $SEAMARK_MEMBER $SEAMARK_FENCING" >> %[1]s'
      on_fault: 'echo "fault $SEAMARK_MEMBER $SEAMARK_GROUP" >> %[1]s'
`, hooks))
	lb1 := gc.member("lb1")
	gc.waitAnswer("lb.cluster.test", "127.0.0.21", 10*time.Second)
	gc.member("lb2")
	gc.waitCandidates("lb", 2)

	if err := syscall.Kill(-lb1.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	d := gc.waitAnswer("lb.cluster.test", "127.0.0.22", 5*time.Second)
	t.Logf("frozen active member: role moved by lease expiry in %v", d)
	if d > 2500*time.Millisecond {
		t.Errorf("lease failover took %v", d)
	}
	syscall.Kill(-lb1.cmd.Process.Pid, syscall.SIGCONT)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(hooks)
		log := string(b)
		if strings.Contains(log, "fault lb1 lb") && strings.Count(log, "active lb1") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hooks after the thaw:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	gc.waitAnswer("lb.cluster.test", "127.0.0.21", 5*time.Second)
	b, _ := os.ReadFile(hooks)
	var fencings []int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m string
		var f int
		if n, _ := fmt.Sscanf(line, "active %s %d", &m, &f); n == 2 && m == "lb1" {
			fencings = append(fencings, f)
		}
	}
	if len(fencings) < 2 || fencings[len(fencings)-1] <= fencings[0] {
		t.Errorf("lb1's fencing revisions %v: the new claim must be higher\n%s", fencings, b)
	}
}
