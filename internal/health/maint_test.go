package health

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// A node in maint is not probed, and its verdict stays as it was however
// long the maint lasts (here ten intervals of a port that is closed); back
// to ready, it is probed again within an interval and judged on its own.
func TestMaintStopsProbes(t *testing.T) {
	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 2, Fall: 2}
	w.service("db", 3000, check)
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.48.11:3000"))
	clock := NewFakeClock()
	p := &fakeProber{up: map[string]bool{"db/db-a": true}}
	w.run(Options{ID: "c1", Clock: clock, Prober: p})
	w.waitNode("db", "db-a", "present", 5*time.Second, func(n *api.Node) bool { return n != nil })
	const step = 100 * time.Millisecond
	settle(clock, p, 3*time.Second, step)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	maint := func(a *api.NodeAdmin) {
		t.Helper()
		rev, _, err := w.st.SetAdmin(context.Background(), "db", "db-a", a, "test")
		if err != nil {
			t.Fatal(err)
		}
		w.seen(rev) // and the checker synced it
	}
	maint(&api.NodeAdmin{State: api.AdminMaint})
	settle(clock, p, step, step) // a probe already due when maint arrived
	before := p.calls.Load()
	p.set("db/db-a", false)
	settle(clock, p, 10*time.Second, step)
	if got := p.calls.Load() - before; got != 0 {
		t.Fatalf("got %d probes of a node in maint over 10 intervals, want 0", got)
	}
	n := w.waitNode("db", "db-a", "present", time.Second, func(n *api.Node) bool { return n != nil })
	if !n.Healthy || len(n.Checks) != 1 || n.Checks[0].State != api.StateHealthy {
		t.Fatalf("maint changed the verdict: healthy %v checks %+v", n.Healthy, n.Checks)
	}

	maint(nil)
	settle(clock, p, 3*time.Second, step)
	if got := p.calls.Load() - before; got < 2 {
		t.Fatalf("got %d probes in 3 intervals after maint ended, want at least 2", got)
	}
	w.waitNode("db", "db-a", "unhealthy (its port is closed)", 5*time.Second, func(n *api.Node) bool { return n != nil && !n.Healthy })
}
