package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// haLab is five hosts: h1-h3 each run an etcd member and a seamark server
// (DNS, checker, observer); h4 and h5 run the balancer members lb1 and lb2.
// Two groups share the members: lb with fast failover (the default) and ll
// with fast_failover: false (lease expiry only), so every failure is timed
// on both paths at once.
type haLab struct {
	t       *testing.T
	lab     *netLab
	sc      *storyCluster
	hooks   string
	hosts   map[string]*labHost
	members map[string]*labServer
}

var haLabSeq int

func newHALab(t *testing.T) *haLab {
	t.Helper()
	if testing.Short() {
		t.Skip("five hosts and an etcd cluster; skipped with -short")
	}
	haLabSeq++
	lab := newNetLabIn(t, 5, fmt.Sprintf("smha-%d%d", os.Getpid()%1000, haLabSeq), 247)
	lab.etcdOnTmpfs = true
	h4, h5 := lab.hosts[3], lab.hosts[4]
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	group := func(name, extra string) string {
		return fmt.Sprintf(`
  - name: %s
    preempt: false%s
    members: [{name: lb1, address: %s, priority: 150}, {name: lb2, address: %s, priority: 150}]
    hooks:
      on_active: 'echo "active $SEAMARK_GROUP $SEAMARK_MEMBER $(date +%%s.%%N)" >> %s'
      on_fault: 'echo "fault $SEAMARK_GROUP $SEAMARK_MEMBER $(date +%%s.%%N)" >> %s'`, name, extra, h4.addr, h5.addr, hooks, hooks)
	}
	cfg := "zones: [cluster.test]\ngroups:" + group("lb", "") + group("ll", "\n    fast_failover: false") + "\n"
	l := &haLab{t: t, lab: lab, sc: newStoryCluster(t, lab, cfg), hooks: hooks,
		hosts: map[string]*labHost{"lb1": h4, "lb2": h5}, members: map[string]*labServer{}}
	l.startMember("lb1")
	for _, s := range l.sc.servers {
		waitGroupAnswer(t, s, "lb", h4.addr.String(), 30*time.Second)
		waitGroupAnswer(t, s, "ll", h4.addr.String(), 10*time.Second)
	}
	l.startMember("lb2")
	l.waitReady()
	return l
}

func (l *haLab) startMember(name string) {
	l.members[name] = startLabServer(l.t, l.hosts[name], l.sc.cfg, l.sc.etcd, "--member", name)
}

func other(member string) string { return map[string]string{"lb1": "lb2", "lb2": "lb1"}[member] }

// memberAt names the member a DNS answer names ("" for none, "split: ..."
// for more than one).
func (l *haLab) memberAt(answer string) string {
	if strings.Contains(answer, ",") {
		return "split: " + answer
	}
	for name, h := range l.hosts {
		if answer == h.addr.String() {
			return name
		}
	}
	return ""
}

// waitReady waits until both members are live in both groups, each group
// has an active member that every DNS server answers, and in lb at least
// three observers have seen the active member answer.
func (l *haLab) waitReady() map[string]string {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		gs, err := l.sc.servers[0].client.Groups(ctx)
		cancel()
		active, ok := map[string]string{}, err == nil
		for _, g := range gs {
			if len(g.Candidates) != 2 || g.Active == nil {
				ok = false
				break
			}
			active[g.Name] = g.Active.Member
			if g.Name == "lb" && observersUp(g) < 3 {
				ok = false
			}
		}
		for _, s := range l.sc.servers {
			for g, m := range active {
				if a, err := s.dnsAnswer(g + ".cluster.test"); err != nil || l.memberAt(a) != m {
					ok = false
				}
			}
		}
		// Each member's own server sees the same: a member that has just
		// come back (restarted, thawed, healed) has caught up.
		for _, m := range l.members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			mgs, err := m.client.Groups(ctx)
			cancel()
			if err != nil || len(mgs) != len(gs) {
				ok = false
				continue
			}
			for _, g := range mgs {
				if len(g.Candidates) != 2 || g.Active == nil || g.Active.Member != active[g.Name] {
					ok = false
				}
			}
		}
		if ok && len(active) == 2 {
			return active
		}
		last = fmt.Sprintf("%+v %v", gs, err)
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("groups not ready within 30s: %s", last)
	return nil
}

func observersUp(g api.GroupStatus) int {
	n := 0
	for _, o := range g.Observations {
		if o.Member == g.Active.Member && o.Lease == g.Active.Lease && !o.Down {
			n++
		}
	}
	return n
}

// watchSplits asks every server's DNS for both group names until stop, and
// records any answer that names two members.
func (l *haLab) watchSplits() (stop func() []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var split []string
	var wg sync.WaitGroup
	for _, s := range l.sc.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, g := range []string{"lb", "ll"} {
					if a, err := s.dnsAnswer(g + ".cluster.test"); err == nil && strings.Contains(a, ",") {
						mu.Lock()
						split = append(split, fmt.Sprintf("h%d answered %s.cluster.test %s", s.h.n, g, a))
						mu.Unlock()
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return func() []string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return split
	}
}

// hookTimes returns the first time (unix seconds) after since that member
// ran the role hook in group.
func (l *haLab) hookTime(role, group, member string, since time.Time) float64 {
	b, _ := os.ReadFile(l.hooks)
	after := float64(since.UnixNano()) / 1e9
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != role || f[1] != group || f[2] != member {
			continue
		}
		if at, err := strconv.ParseFloat(f[3], 64); err == nil && at > after {
			return at
		}
	}
	return 0
}

// failoverRuns is how many times each failure is timed: 3 by default,
// SEAMARK_FAILOVER_RUNS for the documented 20-run figures.
func failoverRuns(t *testing.T) int {
	if v := os.Getenv("SEAMARK_FAILOVER_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SEAMARK_FAILOVER_RUNS=%q: want a positive number", v)
		}
		return n
	}
	return 3
}

// Fast failover bounds the issue asks for, and the overlap docs/groups.md
// documents (150 ms from the cut member's step-down decision to its
// successor's claim) plus what starting two hook processes through sh can
// add on a loaded machine: the hooks' own start times are what the test
// sees, and under a CI run's load (parallel packages, the race detector)
// one sh started up to 210 ms after the other.
//
// The bounds (p99 0.5 s, median 0.3 s) are measured with
// SEAMARK_FAILOVER_RUNS=20 (docs/benchmarks.md). The default three rounds in
// `go test ./...` share the machine with every other package's tests, where
// one stalled round of three is the p99: there the bounds have margins
// (1 s, 0.5 s) that still fail the lease-only path (1.0-1.5 s, median
// about 1.2 s) when the fast path breaks.
const (
	fastP99Bound    = 500 * time.Millisecond
	fastMedianBound = 300 * time.Millisecond
	overlapBound    = 150*time.Millisecond + 350*time.Millisecond
)

// failoverBounds are the p99 and median bounds for a run of n rounds.
func failoverBounds(n int) (p99, median time.Duration) {
	if n >= 20 {
		return fastP99Bound, fastMedianBound
	}
	return time.Second, 500 * time.Millisecond
}

// TestGroupFastFailover times, on separate hosts with an etcd cluster of
// three, how long the group name takes to answer the standby after the
// active member is killed (kill -9), frozen (SIGSTOP) and cut off (nftables
// drops everything both ways, no RST): fast failover within 0.5 s p99 and
// 0.3 s median, lease-only measured beside it. No DNS answer ever names two
// members; a cut-off member runs on_fault before the standby runs on_active,
// or within the documented overlap. It prints one table line per case and
// path for bench/groups.
func TestGroupFastFailover(t *testing.T) {
	needNft(t)
	l := newHALab(t)
	runs := failoverRuns(t)
	stopWatch := l.watchSplits()
	took := map[string][]time.Duration{} // case/path -> times
	var overlaps []time.Duration
	for _, c := range []string{"kill", "freeze", "cut"} {
		for i := range runs {
			active := l.waitReady()
			victim := active["lb"]
			h, m := l.hosts[victim], l.members[victim]
			pid := m.p.cmd.Process.Pid
			t0 := time.Now()
			switch c {
			case "kill":
				syscall.Kill(-pid, syscall.SIGKILL)
			case "freeze":
				syscall.Kill(-pid, syscall.SIGSTOP)
			case "cut":
				h.firewall(true)
			}
			// Poll the first server's DNS until each group whose active
			// member was the victim answers the other member.
			pending := map[string]string{}
			for g, a := range active {
				if a == victim {
					pending[g] = other(victim)
				}
			}
			logged := false
			for len(pending) > 0 {
				if _, slow := pending["lb"]; slow && !logged && time.Since(t0) > 300*time.Millisecond {
					// Slow: show what the observers say (aside, so that the
					// polling goes on).
					logged = true
					go func(round int) {
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						gs, err := l.sc.servers[0].client.Groups(ctx)
						cancel()
						for _, g := range gs {
							if g.Name == "lb" {
								t.Logf("%s %s round %d not moved after %v: active %+v, observations %+v", c, victim, round, time.Since(t0).Round(time.Millisecond), g.Active, g.Observations)
							}
						}
						if err != nil {
							t.Logf("%s round %d: groups: %v", c, round, err)
						}
					}(i + 1)
				}
				for g, want := range pending {
					a, err := l.sc.servers[0].dnsAnswerWithin(g+".cluster.test", 50*time.Millisecond)
					if err == nil && l.memberAt(a) == want {
						path := map[string]string{"lb": "fast", "ll": "lease-only"}[g]
						took[c+"/"+path] = append(took[c+"/"+path], time.Since(t0))
						t.Logf("round %s %d: %s moved off %s in %v (at %s)", c, i+1, g, victim, time.Since(t0).Round(time.Millisecond), time.Now().Format("15:04:05.000"))
						delete(pending, g)
					}
				}
				if time.Since(t0) > 15*time.Second {
					t.Fatalf("%s %s, round %d: %v did not move in 15s", c, victim, i+1, pending)
				}
				time.Sleep(3 * time.Millisecond)
			}
			if c == "cut" {
				// The cut member stepped down on its own (fence) before or
				// about when the standby became active.
				deadline := time.Now().Add(5 * time.Second)
				var fault, act float64
				for time.Now().Before(deadline) {
					fault, act = l.hookTime("fault", "lb", victim, t0), l.hookTime("active", "lb", other(victim), t0)
					if fault > 0 && act > 0 {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if fault == 0 || act == 0 {
					b, _ := os.ReadFile(l.hooks)
					t.Fatalf("cut round %d: %s's on_fault at %.3f, %s's on_active at %.3f:\n%s", i+1, victim, fault, other(victim), act, b)
				}
				overlaps = append(overlaps, time.Duration((fault-act)*float64(time.Second)))
			}
			switch c {
			case "kill":
				l.startMember(victim)
			case "freeze":
				syscall.Kill(-pid, syscall.SIGCONT)
			case "cut":
				h.firewall(false)
			}
			// The member back settles (finds its lease gone, steps down,
			// campaigns again) before the next round fails the other one.
			time.Sleep(time.Second)
		}
	}
	if split := stopWatch(); len(split) > 0 {
		t.Fatalf("a group name named two members:\n%s", strings.Join(split, "\n"))
	}
	for _, c := range []string{"kill", "freeze", "cut"} {
		for _, path := range []string{"fast", "lease-only"} {
			ds := took[c+"/"+path]
			if len(ds) == 0 {
				continue
			}
			slices.Sort(ds)
			p50, p99 := ds[(len(ds)-1)/2], ds[min(len(ds)-1, int(0.99*float64(len(ds))))]
			t.Logf("FAILOVER | %s | %s | %d | %v | %v | %v |", c, path, len(ds), p50.Round(time.Millisecond), p99.Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
			if p99Bound, medianBound := failoverBounds(len(ds)); path == "fast" && (p99 > p99Bound || p50 > medianBound) {
				t.Errorf("%s, fast failover: median %v (bound %v), p99 %v (bound %v); all %v", c, p50, medianBound, p99, p99Bound, ds)
			}
		}
	}
	slices.Sort(overlaps)
	t.Logf("OVERLAP | cut | on_fault of the cut member minus on_active of the standby: %v", overlaps)
	if len(overlaps) > 0 && overlaps[len(overlaps)-1] > overlapBound {
		t.Errorf("the cut member ran on_fault up to %v after the standby ran on_active; documented overlap 150 ms (+350 ms for starting hooks under load)", overlaps[len(overlaps)-1])
	}
}

// TestGroupFastFailoverFlappingLink: the active member's link is cut for
// 200 ms and healed for 200 ms, ten times: the group name moves at most
// once and never names two members.
func TestGroupFastFailoverFlappingLink(t *testing.T) {
	needNft(t)
	l := newHALab(t)
	active := l.waitReady()
	stopWatch := l.watchSplits()
	ctx, stop := context.WithCancel(context.Background())
	moves := map[string][]string{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := map[string]string{"lb": active["lb"], "ll": active["ll"]}
		for ctx.Err() == nil {
			for _, g := range []string{"lb", "ll"} {
				if a, err := l.sc.servers[0].dnsAnswer(g + ".cluster.test"); err == nil {
					if m := l.memberAt(a); m != "" && m != last[g] {
						moves[g] = append(moves[g], fmt.Sprintf("%s -> %s", last[g], m))
						last[g] = m
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	h := l.hosts[active["lb"]]
	for range 10 {
		h.firewall(true)
		time.Sleep(200 * time.Millisecond)
		h.firewall(false)
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // leases and fences settle
	stop()
	wg.Wait()
	t.Logf("flapping link of %s (10 × 200 ms cut, 200 ms healed): lb moved %d times %v; ll (lease only) %d times %v",
		active["lb"], len(moves["lb"]), moves["lb"], len(moves["ll"]), moves["ll"])
	if len(moves["lb"]) > 1 {
		t.Errorf("lb moved %d times: %v; want at most one", len(moves["lb"]), moves["lb"])
	}
	if split := stopWatch(); len(split) > 0 {
		t.Fatalf("a group name named two members:\n%s", strings.Join(split, "\n"))
	}
}

// firewall cuts the host off (true) with nftables dropping every packet in
// and out of eth0, so no peer ever sees a reset, or removes the cut (false).
func (h *labHost) firewall(cut bool) {
	h.lab.t.Helper()
	var rules string
	if cut {
		rules = "table inet smhacut {\n chain in { type filter hook input priority 0; policy accept; iifname \"eth0\" drop; }\n chain out { type filter hook output priority 0; policy accept; oifname \"eth0\" drop; }\n}\n"
	} else {
		rules = "delete table inet smhacut\n"
	}
	cmd := exec.Command("ip", "netns", "exec", h.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.lab.t.Fatalf("nft in %s: %v: %s", h.ns, err, out)
	}
}

func needNft(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft is missing: apt-get install nftables")
		}
		t.Skip("nft is missing: apt-get install nftables")
	}
}
