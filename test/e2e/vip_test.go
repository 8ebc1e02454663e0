package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVIPHookMovesAddress is the documented virtual-IP recipe
// (examples/hooks/vip, docs/groups.md): a group's role hooks move an address
// between two balancer hosts, and gratuitous ARP moves a client's ARP entry
// with it. lb1 and lb2 run on hosts of their own over a one-member etcd on a
// third host, which is also the client; lb1's link is cut, so it runs
// on_fault (removing the address) and lb2 on_active (adding and announcing
// it); the client then reaches the address on lb2 through its ARP cache.
func TestVIPHookMovesAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("three hosts and an etcd; skipped with -short")
	}
	if _, err := exec.LookPath("arping"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("arping is missing: .ci/run installs iputils-arping")
		}
		t.Skip("arping is missing: apt-get install iputils-arping")
	}
	lab := newNetLab(t, 3)
	client, lb1h, lb2h := lab.hosts[0], lab.hosts[1], lab.hosts[2]
	etcd := lab.startEtcdCluster(lab.hosts[:1])
	hook, err := filepath.Abs("../../examples/hooks/vip")
	if err != nil {
		t.Fatal(err)
	}
	const vip = "10.77.0.100"
	cmd := fmt.Sprintf("%s %s/24 eth0", hook, vip)
	cfg := filepath.Join(t.TempDir(), "seamark.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: %s, priority: 151}, {name: lb2, address: %s, priority: 150}]
    hooks: {on_active: %q, on_standby: %q, on_fault: %q}
`, lb1h.addr, lb2h.addr, cmd, cmd, cmd))
	startLabServer(t, lb1h, cfg, etcd, "--member", "lb1")
	holds := func(h *labHost) bool {
		out, _ := exec.Command("ip", "-n", h.ns, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		return strings.Contains(string(out), " "+vip+"/24 ")
	}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("lb1 holds the address", 20*time.Second, func() bool { return holds(lb1h) })
	startLabServer(t, lb2h, cfg, etcd, "--member", "lb2")
	echo := buildTool(t, "./echosvc")
	for _, h := range []*labHost{lb1h, lb2h} {
		h.start(fmt.Sprintf("echosvc-h%d", h.n), echo, "-listen", "0.0.0.0:3000")
	}
	reach := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := client.dial(ctx, "tcp", vip+":3000")
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		fmt.Fprintln(c, "ping")
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line == "ping\n"
	}
	waitFor("the client reaches the address on lb1", 10*time.Second, reach)
	if got, want := neighbour(t, client, vip), mac(t, lb1h); got != want {
		t.Fatalf("the client's ARP entry for %s is %q, want lb1's %s", vip, got, want)
	}
	if holds(lb2h) {
		t.Fatal("lb2, the standby, holds the address too")
	}

	lb1h.cut()
	moved := waitFor("lb2 holds the address", 10*time.Second, func() bool { return holds(lb2h) })
	// lb1 ran on_fault when the store stopped confirming its lease: from
	// inside its host (its link is down, its namespace is not).
	waitFor("lb1 let the address go", 5*time.Second, func() bool { return !holds(lb1h) })
	// Gratuitous ARP: the client's entry moves at once, not when it goes
	// stale (delay_first_probe_time alone is 5 s).
	reached := waitFor("the client reaches the address on lb2", 2*time.Second, reach)
	if got, want := neighbour(t, client, vip), mac(t, lb2h); got != want {
		t.Errorf("the client's ARP entry for %s is %q, want lb2's %s", vip, got, want)
	}
	t.Logf("address on lb2 %v after the cut; the client reached it %v later", moved.Round(time.Millisecond), reached.Round(time.Millisecond))
}

var lladdrRE = regexp.MustCompile(`(?:lladdr|link/ether) ([0-9a-f:]{17})`)

// mac is the hardware address of a host's eth0.
func mac(t *testing.T, h *labHost) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", h.ns, "-o", "link", "show", "eth0").CombinedOutput()
	m := lladdrRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("ip link show eth0 in %s: %v: %s", h.ns, err, out)
	}
	return m[1]
}

// neighbour is the hardware address a host's ARP cache holds for ip, or "".
func neighbour(t *testing.T, h *labHost, ip string) string {
	t.Helper()
	out, _ := exec.Command("ip", "-n", h.ns, "neigh", "show", ip).CombinedOutput()
	if m := lladdrRE.FindStringSubmatch(string(out)); m != nil {
		return m[1]
	}
	return ""
}
