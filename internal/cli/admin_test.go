package cli

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// The admin verbs change what `seamark nodes` shows in its ADMIN, WEIGHT
// and SERVED columns, beside the registrant's state and the checks, and
// every change is an admin event in `seamark events`, as a role change shows
// its group and member.
func TestAdminVerbs(t *testing.T) {
	url := startTestServer(t, withFreePort(t, statusConfig))
	c, err := api.NewClient([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), api.Node{ID: "app-1", Service: "app", Address: netip.MustParseAddr("127.0.48.31"), Weight: 2}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		out  string // in the verb's output
		row  string // in the nodes row of db-a
	}{
		{[]string{"drain", "db/db-a", "--reason", "kernel"}, "db/db-a: admin ready -> drain, weight registered", "1  healthy  drain  none (healthy)  no (admin drain)"},
		{[]string{"weight", "db/db-a", "5"}, "admin drain -> drain, weight 5", "5 (registered 1)  healthy  drain"},
		{[]string{"maint", "db/db-a"}, "admin drain -> maint, weight 5", "maint  none (healthy)  no (admin maint)"},
		{[]string{"ready", "db/db-a"}, "admin maint -> ready, weight 5", "5 (registered 1)  healthy  ready  none (healthy)  yes"},
		{[]string{"weight", "db/db-a", "--clear"}, "admin ready -> ready, weight registered", "1  healthy  ready  none (healthy)  yes"},
	}
	for _, s := range steps {
		out, errOut, code := run(t, append(s.args, "--server", url)...)
		if code != 0 || !strings.Contains(out, s.out) {
			t.Fatalf("%v: exit %d, got %q %s, want %q", s.args, code, out, errOut, s.out)
		}
		nodes, _, _ := run(t, "nodes", "db", "--server", url)
		if !strings.Contains(nodes, "REGISTRANT") || !strings.Contains(squeeze(nodes), squeeze(s.row)) {
			t.Fatalf("after %v: nodes lacks %q:\n%s", s.args, s.row, nodes)
		}
	}
	if out, _, _ := run(t, "drain", "db/db-a", "--server", url); !strings.Contains(out, "ready -> drain") {
		t.Fatalf("drain again: %q", out)
	}
	if out, _, _ := run(t, "status", "--server", url); !strings.Contains(out, "taken out: db/db-a (drain)") {
		t.Fatalf("status does not name the drained node:\n%s", out)
	}
	run(t, "ready", "db/db-a", "--server", url)
	// app-1 is down (nothing listens on it): the columns say why.
	nodes, _, _ := run(t, "nodes", "app", "--server", url)
	if !strings.Contains(squeeze(nodes), "healthy ready") || !strings.Contains(squeeze(nodes), "(unhealthy) no (checks)") {
		t.Fatalf("app-1 row does not say its checks fail:\n%s", nodes)
	}
	for _, bad := range [][]string{{"drain", "db-a"}, {"weight", "db/db-a", "0"}, {"weight", "db/db-a"}, {"drain", "db/nope"}} {
		if _, errOut, code := run(t, append(bad, "--server", url)...); code == 0 {
			t.Errorf("%v: exit 0, want an error", bad)
		} else if errOut == "" {
			t.Errorf("%v: no message", bad)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _, _ := run(t, "events", "--server", url)
		if strings.Contains(out, "admin") && strings.Contains(out, "ready -> drain") && strings.Contains(out, "maint -> ready") && strings.Contains(out, "kernel") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events lack the admin changes:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEventLine(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		e    api.Event
		want []string
	}{
		{api.Event{Time: at, Kind: "role", Group: "lb", Member: "lb1", Address: "127.0.0.21", Role: api.RoleActive, Reason: "highest priority", Checker: "s1"}, []string{"role", "group lb member lb1", "-> active", "highest priority"}},
		{api.Event{Time: at, Kind: api.EventAdmin, Service: "app", Node: "a1", Old: "ready", New: "drain", Who: "ops"}, []string{"admin", "app/a1", "ready -> drain", "by ops"}},
		{api.Event{Time: at, Kind: api.EventHealth, Service: "app", Node: "a1", Old: "healthy", New: "unhealthy", Checker: "s1"}, []string{"health", "app/a1", "healthy -> unhealthy", "s1"}},
	} {
		got := eventLine(tc.e)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("eventLine(%s): got %q, want it to hold %q", tc.e.Kind, got, w)
			}
		}
	}
}

// squeeze makes every run of spaces one, so a test does not depend on
// column widths.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
