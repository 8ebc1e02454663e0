package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
)

// Issue 18, health checks that shard: three servers on one store (Debian's
// etcd) and 300 loopback targets in two services, "solo" (check.replicas 1)
// and "pair" (replicas 2). Each server probes exactly the targets
// rendezvous hashing places on it (seamark_health_targets_owned, and the
// targets' listeners see only their owners' probes): about a third of the
// solo ones and two thirds of the pair ones. Then one server is killed with
// SIGKILL: the solo targets only it probed are probed again by the others
// within 2 s of its checker lease (1 s) expiring. It is started again and
// takes its targets back. Through both moves no node changes state on
// the two servers that stay (polled every 50 ms) and no health event is
// logged.
func TestShardedChecksRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcd := startEtcd(t)
	const perService = 150
	services := []struct {
		name     string
		replicas int
	}{{"solo", 1}, {"pair", 2}}

	// One HTTP listener per target (a tcp probe resets before the target
	// accepts it); each remembers when it was probed.
	type target struct {
		service, id string
		l           net.Listener
		mu          sync.Mutex
		accepts     []time.Time
	}
	var targets []*target
	var cfg strings.Builder
	cfg.WriteString("zones: [cluster.test]\nservices:\n")
	for _, s := range services {
		fmt.Fprintf(&cfg, "  - name: %s\n    port: 1\n    check: {type: http, interval: 1s, timeout: 500ms, rise: 1, fall: 2, replicas: %d}\n    nodes:\n", s.name, s.replicas)
		for i := range perService {
			tg := &target{service: s.name, id: fmt.Sprintf("t%03d", i), l: listenOn(t, "127.0.0.1:0")}
			targets = append(targets, tg)
			t.Cleanup(func() { tg.l.Close() })
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tg.mu.Lock()
				tg.accepts = append(tg.accepts, time.Now())
				tg.mu.Unlock()
			})}
			go srv.Serve(tg.l)
			fmt.Fprintf(&cfg, "      - {id: %s, address: 127.0.0.1, port: %d}\n", tg.id, tg.l.Addr().(*net.TCPAddr).Port)
		}
	}
	path := filepath.Join(t.TempDir(), "seamark.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{"s1", "s2", "s3"}
	var servers []*server
	for _, n := range names {
		servers = append(servers, startServerArgs(t, n, []string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
			"--etcd-endpoints", etcd, "--config", path, "--name", n, "--balancer=false", "--checker-lease-ttl", "1s"}))
	}
	ctx := ctxTimeout(t, 5*time.Minute)

	// What each server must own, computed as every server does.
	ownedBy := func(live ...string) map[string]map[*target]bool {
		var cs []api.Checker
		for _, n := range live {
			cs = append(cs, api.Checker{ID: n})
		}
		p := registry.NewPlacement(cs)
		out := map[string]map[*target]bool{}
		for _, n := range live {
			out[n] = map[*target]bool{}
		}
		for _, tg := range targets {
			k := 1
			if tg.service == "pair" {
				k = 2
			}
			for _, o := range p.Owners(registry.NodeKey(tg.service, tg.id), k, nil) {
				out[o][tg] = true
			}
		}
		return out
	}
	gauge := func(s *server, name string) float64 {
		return scrape(t, httpClient5s, strings.TrimPrefix(s.url, "http://"))[name]
	}
	// settled waits until every node is healthy, every server owns what the
	// placement over live gives it and hands off nothing.
	settled := func(what string, live []*server, liveNames []string) {
		t.Helper()
		want := ownedBy(liveNames...)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			ok := true
			var got []string
			for i, s := range live {
				owned, handoff := gauge(s, "seamark_health_targets_owned"), gauge(s, "seamark_health_targets_handoff")
				got = append(got, fmt.Sprintf("%s owns %v (want %d) hands off %v", liveNames[i], owned, len(want[liveNames[i]]), handoff))
				ok = ok && int(owned) == len(want[liveNames[i]]) && handoff == 0
			}
			healthy := 0
			for _, sv := range services {
				nodes, _, err := live[0].client.Nodes(ctx, sv.name, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range nodes {
					if n.Healthy && !n.Held {
						healthy++
					}
				}
			}
			if ok && healthy == len(targets) {
				t.Logf("%s: %s; %d nodes healthy", what, strings.Join(got, ", "), healthy)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not settled within 60s: %s; %d of %d nodes healthy", what, strings.Join(got, ", "), healthy, len(targets))
			}
		}
	}
	settled("three servers", servers, names)

	// The listeners see their owners' probes only: over 5 s a solo target
	// gets about 5, a pair target about 10, never the 15 of three checkers.
	mark := time.Now()
	time.Sleep(5 * time.Second)
	for _, tg := range targets {
		tg.mu.Lock()
		n := 0
		for _, a := range tg.accepts {
			if a.After(mark) {
				n++
			}
		}
		tg.mu.Unlock()
		lo, hi := 3, 7 // one owner
		if tg.service == "pair" {
			lo, hi = 7, 12 // two
		}
		if n < lo || n > hi {
			t.Errorf("%s/%s was probed %d times in 5s, want %d to %d (its owners' probes only)", tg.service, tg.id, n, lo, hi)
		}
	}

	before, _, err := servers[0].client.Events(ctx, api.EventQuery{Kind: api.EventHealth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Watch the servers left: no node may leave the healthy set.
	var flips atomic.Int64
	var flipped sync.Map
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	for _, s := range servers[:2] {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				for _, sv := range services {
					nodes, _, err := s.client.Nodes(ctx, sv.name, nil)
					if err != nil {
						continue
					}
					for _, n := range nodes {
						if !n.Healthy {
							flips.Add(1)
							flipped.Store(sv.name+"/"+n.ID, fmt.Sprintf("%+v", n))
						}
					}
				}
			}
		}()
	}

	orphans := ownedBy(names...)["s3"]
	servers[2].kill()
	killed := time.Now()
	// The lease expires: s3 leaves the live checkers.
	var expired time.Time
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := servers[0].client.Status(ctx)
		if err == nil && !slices.ContainsFunc(st.Checkers, func(c api.Checker) bool { return c.ID == "s3" }) {
			expired = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("s3's checker still live 15s after it was killed")
		}
	}
	settled("after s3 was killed", servers[:2], names[:2])

	// s3 comes back: the nodes placed on it move back, the others keep
	// probing them until it has written its verdicts.
	servers[2] = startServerArgs(t, "s3 again", []string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--etcd-endpoints", etcd, "--config", path, "--name", "s3", "--balancer=false", "--checker-lease-ttl", "1s"})
	settled("s3 back", servers, names)
	close(stop)
	watchers.Wait()

	// Every solo target only s3 probed is probed again, by its new owner.
	var worst time.Duration
	var worstID string
	for tg := range orphans {
		if tg.service != "solo" {
			continue
		}
		tg.mu.Lock()
		i, _ := slices.BinarySearchFunc(tg.accepts, killed.Add(100*time.Millisecond), func(a, b time.Time) int { return a.Compare(b) })
		var first time.Time
		if i < len(tg.accepts) {
			first = tg.accepts[i]
		}
		tg.mu.Unlock()
		if first.IsZero() {
			t.Fatalf("solo/%s (s3's) never probed again after the kill", tg.id)
		}
		if d := first.Sub(expired); d > worst {
			worst, worstID = d, tg.id
		}
	}
	t.Logf("s3 killed; its lease expired after %v; the last of its solo targets (%s) probed again %v after that (%v after the kill)",
		expired.Sub(killed).Round(time.Millisecond), worstID, worst.Round(time.Millisecond), (expired.Sub(killed) + worst).Round(time.Millisecond))
	if worst > 2*time.Second {
		t.Errorf("s3's targets probed again up to %v after its lease expired, want within 2s", worst)
	}
	if d := expired.Sub(killed) + worst; d > 3*time.Second {
		t.Errorf("s3's targets probed again up to %v after it was killed, want within 3s (lease 1s, a quarter interval, margins)", d)
	}
	if n := flips.Load(); n > 0 {
		flipped.Range(func(k, v any) bool { t.Errorf("node %s seen unhealthy: %s", k, v); return true })
		t.Errorf("%d observations of a node out of the healthy set after the kill and the rejoin, want 0", n)
	}
	after, _, err := servers[0].client.Events(ctx, api.EventQuery{Kind: api.EventHealth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for _, e := range before {
		last = max(last, e.Revision)
	}
	for _, e := range after {
		if e.Revision > last {
			t.Errorf("health event after the kill or the rejoin, want none: %+v", e)
		}
	}
}
