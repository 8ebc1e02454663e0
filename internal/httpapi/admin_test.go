package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
)

// An operator's admin state is kept apart from the registration: a
// re-registration (as an agent does every few seconds after losing its
// lease) leaves it as it was, a drained node leaves the healthy list but
// stays in the node list with its admin state, a weight override replaces
// the weight, each change is an event naming who, and a read token cannot
// change it.
func TestNodeAdmin(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	reg := api.Node{ID: "db-a", Service: "db", Address: netip.MustParseAddr("127.0.48.1"), Weight: 3, Source: api.SourceAgent}
	if _, err := f.client.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := f.request(t, "PUT", "/v1/services/db/nodes/db-a/admin", `{"state":"drain"}`, readSecret); code != 403 {
		t.Fatalf("drain with a read token: got %d %s, want 403", code, body)
	}
	if _, err := f.client.SetAdmin(ctx, "db", "db-a", api.NodeAdmin{State: api.AdminDrain, Weight: 7, Reason: "kernel update"}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantState api.AdminState, wantWeight, wantHealthy int) {
		t.Helper()
		nodes, _, err := f.client.Nodes(ctx, "db", nil)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("%s: nodes: %v %v", when, nodes, err)
		}
		n := nodes[0]
		if n.Admin.StateOf() != wantState || n.Weight != wantWeight {
			t.Fatalf("%s: got admin %s weight %d, want %s %d", when, n.Admin.StateOf(), n.Weight, wantState, wantWeight)
		}
		if !n.Healthy {
			t.Fatalf("%s: healthy is false; a drain must not change the verdict", when)
		}
		healthy, _, err := f.client.Nodes(ctx, "db", &api.QueryOptions{HealthyOnly: true})
		if err != nil || len(healthy) != wantHealthy {
			t.Fatalf("%s: got %d nodes in service, want %d (%v)", when, len(healthy), wantHealthy, err)
		}
	}
	check("after drain", api.AdminDrain, 7, 0)
	// The agent registers again, with a new lease and its own state: the
	// drain stays.
	reg.State = api.StateHealthy
	if _, err := f.client.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	check("after re-registration", api.AdminDrain, 7, 0)
	nodes, _, _ := f.client.Nodes(ctx, "db", nil)
	if nodes[0].RegisteredWeight != 3 || nodes[0].Admin.By != "ops" {
		t.Fatalf("got registered weight %d by %q, want 3 by ops", nodes[0].RegisteredWeight, nodes[0].Admin.By)
	}
	// Deregistered and registered again (an agent's clean restart).
	if _, err := f.client.Deregister(ctx, "db", "db-a"); err != nil {
		t.Fatal(err)
	}
	// While the node is gone its admin state is listed, as not registered.
	states, err := f.client.AdminStates(ctx)
	if err != nil || len(states) != 1 || states[0].Registered || states[0].Node != "db-a" || states[0].Admin.State != api.AdminDrain {
		t.Fatalf("admin states of a deregistered node: %+v %v", states, err)
	}
	if _, err := f.client.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	check("after restart", api.AdminDrain, 7, 0)
	if states, _ := f.client.AdminStates(ctx); len(states) != 1 || !states[0].Registered {
		t.Fatalf("admin states after the node came back: %+v", states)
	}
	// A blocking read of every node wakes on an admin change (the dashboard
	// follows nodes so).
	_, idx, err := f.client.AllNodes(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.SetAdmin(ctx, "db", "db-a", api.NodeAdmin{State: api.AdminMaint}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	all, _, err := f.client.AllNodes(ctx, &api.QueryOptions{Index: idx, Wait: 3 * time.Second})
	if err != nil || time.Since(t0) > time.Second || len(all) != 1 || all[0].Admin.StateOf() != api.AdminMaint {
		t.Fatalf("blocking read after an admin change: %v in %v, %v", all, time.Since(t0), err)
	}
	check("after maint", api.AdminMaint, 3, 0)
	if _, err := f.client.ClearAdmin(ctx, "db", "db-a"); err != nil {
		t.Fatal(err)
	}
	check("after clear", api.AdminReady, 3, 1)
	if _, err := f.client.ClearAdmin(ctx, "db", "db-a"); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	events, _, err := f.client.Events(ctx, api.EventQuery{Node: "db-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Kind == api.EventAdmin {
			got = append(got, string(e.Old)+">"+string(e.New)+" by "+e.Who)
		}
	}
	if want := "ready>drain by ops,drain>maint by ops,maint>ready by ops"; strings.Join(got, ",") != want {
		t.Fatalf("admin events: got %q, want %q", strings.Join(got, ","), want)
	}

	for _, tc := range []struct{ name, path, body, msg string }{
		{"bad state", "/v1/services/db/nodes/db-a/admin", `{"state":"off"}`, `state: "off" is not ready, drain or maint`},
		{"bad weight", "/v1/services/db/nodes/db-a/admin", `{"weight":5000}`, "weight: 5000 is out of range"},
		{"by is the server's", "/v1/services/db/nodes/db-a/admin", `{"by":"me"}`, "set by the server"},
		{"unknown node", "/v1/services/db/nodes/nope/admin", `{"state":"drain"}`, `node "nope" of service "db" is not registered now`},
		{"unknown service", "/v1/services/nope/nodes/x/admin", `{"state":"drain"}`, `service "nope" does not exist`},
		{"id not a name", "/v1/services/db/nodes/a%2Fb/admin", `{"state":"drain"}`, `id: "a/b" is not a valid name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := f.request(t, "PUT", tc.path, tc.body, writeSecret)
			var e api.Error
			_ = json.Unmarshal([]byte(body), &e)
			if code < 400 || code >= 500 || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %d %s, want a 4xx saying %q", code, body, tc.msg)
			}
		})
	}
}

// FuzzNodeAdmin feeds arbitrary bytes to the admin body: decoding and
// validation answer an error or a value, never panic, and a valid value
// has a known state and a weight in range.
func FuzzNodeAdmin(f *testing.F) {
	for _, seed := range []string{
		`{"state":"drain"}`, `{"state":"maint","reason":"rebuild"}`, `{"state":"ready","weight":5}`, `{"weight":1000}`,
		`{"state":"off"}`, `{"weight":-1}`, `{"by":"me"}`, `{"since":"2026-12-07T10:00:00Z"}`, `{"state":1}`, `{}`, `null`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a api.NodeAdmin
		if httpapi.DecodeBody(bytes.NewReader(data), &a) != nil || a.Validate() != nil {
			return
		}
		if s := a.StateOf(); s != api.AdminReady && s != api.AdminDrain && s != api.AdminMaint {
			t.Fatalf("valid admin body %q has state %q", data, s)
		}
		if a.Weight < 0 || a.Weight > 1000 || len(a.Reason) > api.MaxAdminReason {
			t.Fatalf("valid admin body %q: weight %d reason %d bytes", data, a.Weight, len(a.Reason))
		}
	})
}
