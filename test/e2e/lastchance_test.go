package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// An active member whose process gets no CPU for 400 ms (SIGSTOP, as on a
// badly loaded machine) has heard nothing from the store for longer than
// the 300 ms fast-failover fence when it runs again. Nobody ended its lease
// (no observer here), so before stepping down it asks the store once more,
// is confirmed, and stays: five such stalls make no role change, no on_fault,
// and count in seamark_group_last_chance_renewals_total.
func TestStalledActiveMemberStays(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	hooks := filepath.Join(dir, "hooks.log")
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: 127.0.53.21, priority: 100}]
    hooks:
      on_fault: 'echo "fault $SEAMARK_MEMBER" >> %s'
`, hooks)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, "lb1", []string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--config", cfg, "--member", "lb1", "--name", "lb1", "--balancer=false"})
	ctx := ctxTimeout(t, 2*time.Minute)
	var active *api.Role
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		gs, err := s.client.Groups(ctx)
		if err == nil && len(gs) == 1 && gs[0].Active != nil && gs[0].Active.Member == "lb1" {
			active = gs[0].Active
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lb1 never became active: %+v %v", gs, err)
		}
	}
	roleEvents := func() int {
		evs, _, err := s.client.Events(ctx, api.EventQuery{Kind: "role"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	time.Sleep(time.Second) // the start's events on their way
	before := roleEvents()

	pid := s.proc.cmd.Process.Pid
	for i := range 5 {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		t.Logf("stall %d done", i+1)
	}

	gs, err := s.client.Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Active == nil || gs[0].Active.Fencing != active.Fencing {
		t.Errorf("after the stalls the role is %+v (%v), want lb1 still at fencing %d", gs, err, active.Fencing)
	}
	if n := roleEvents() - before; n != 0 {
		t.Errorf("%d role events during the stalls, want 0", n)
	}
	if b, _ := os.ReadFile(hooks); len(b) > 0 {
		t.Errorf("on_fault ran:\n%s", b)
	}
	var chances float64
	for k, v := range scrape(t, httpClient5s, strings.TrimPrefix(s.url, "http://")) {
		if strings.HasPrefix(k, "seamark_group_last_chance_renewals_total") {
			chances += v
		}
	}
	if chances < 1 {
		t.Errorf("seamark_group_last_chance_renewals_total = %v after five 400 ms stalls, want at least 1", chances)
	}
	t.Logf("five 400 ms stalls: role kept at fencing %d, %v last-chance renewals", active.Fencing, chances)
}
