package lb

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

func (e *env) admin(service, id string, a *api.NodeAdmin) int64 {
	e.t.Helper()
	rev, _, err := e.st.SetAdmin(e.ctx, service, id, a, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// An operator's drain is a node leaving the healthy set: no new
// connections; an open one keeps flowing, and with on_backend_down: cut it
// is cut drain_timeout after the drain (never before).
func TestAdminDrainKeepsOpenConnectionsUpToDrainTimeout(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	e.node("app", "a", a, 1)
	e.node("app", "b", b, 1)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const drain = 1500 * time.Millisecond
	e.sync(e.listener(api.Listener{Name: "d", Port: port, Service: "app", OnBackendDown: api.BackendDownCut, DrainTimeout: api.Duration(drain)}))
	var onA net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if readLine(t, c) == "a" {
			onA = c
			break
		}
	}
	if onA == nil {
		t.Fatal("no connection landed on a")
	}
	start := time.Now()
	e.sync(e.admin("app", "a", &api.NodeAdmin{State: api.AdminDrain}))
	for i := range 6 {
		if name, err := roundTrip(addr, "x", 5*time.Second); err != nil || name != "b" {
			t.Fatalf("connection %d after a is drained: got %q, %v; want b", i, name, err)
		}
	}
	echo(t, onA, "still flowing")
	onA.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(onA, make([]byte, 1)); err == nil {
		t.Fatal("the drained node's connection outlived drain_timeout with on_backend_down: cut")
	}
	if d := time.Since(start); d < drain-100*time.Millisecond {
		t.Fatalf("drained node's connection cut %v after the drain, want not before drain_timeout %v", d, drain)
	}
}

// A weight override is the weight balancing uses.
func TestAdminWeightOverride(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	e.node("app", "a", a, 1)
	e.node("app", "b", b, 1)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.listener(api.Listener{Name: "w", Port: port, Service: "app"})
	e.sync(e.admin("app", "a", &api.NodeAdmin{State: api.AdminReady, Weight: 4}))
	got := map[string]int{}
	for range 10 {
		name, err := roundTrip(addr, "x", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	if got["a"] != 8 || got["b"] != 2 {
		t.Fatalf("10 connections with a's weight overridden to 4 (b 1): got %v, want a 8, b 2", got)
	}
}
