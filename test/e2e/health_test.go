package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// In the real binary: a node whose port is open turns healthy, one whose port
// closes drops out, and both transitions are in the event log.
func TestServerChecksNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	s := startServer(t, "server", "--data-dir", t.TempDir(), "--name", "e2e-checker")
	ctx := ctxTimeout(t, 60*time.Second)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := netip.MustParseAddrPort(l.Addr().String())
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(200 * time.Millisecond), Timeout: api.Duration(100 * time.Millisecond), Rise: 2, Fall: 2}
	if _, err := s.client.CreateService(ctx, api.Service{Name: "app", Port: int(addr.Port()), Check: check}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Register(ctx, api.Node{ID: "app-1", Service: "app", Address: addr.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitHealthy := func(want int) time.Duration {
		t0 := time.Now()
		var idx int64
		for time.Since(t0) < 10*time.Second {
			nodes, next, err := s.client.Nodes(ctx, "app", &api.QueryOptions{HealthyOnly: true, Index: idx, Wait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) == want {
				return time.Since(t0)
			}
			idx = next
		}
		t.Fatalf("healthy nodes never became %d", want)
		return 0
	}
	t.Logf("registered node healthy after %v", waitHealthy(1))
	l.Close()
	t.Logf("closed port out after %v (interval*fall+timeout = 500ms)", waitHealthy(0))
	// The event follows the verdict by a write: wait for it with blocking reads.
	var events []api.Event
	var idx int64
	for deadline := time.Now().Add(5 * time.Second); len(events) < 2 && time.Now().Before(deadline); {
		events, idx, err = s.client.Events(ctx, api.EventQuery{Service: "app"}, &api.QueryOptions{Index: idx, Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(events) != 2 || events[0].New != api.StateHealthy || events[1].New != api.StateUnhealthy || events[1].Checker != "e2e-checker" {
		t.Fatalf("got events %+v, want healthy then unhealthy from e2e-checker", events)
	}
	t.Logf("event: %s %s -> %s (%s)", events[1].Node, events[1].Old, events[1].New, events[1].Reason)
	cli := startProc(t, "seamark events", seamarkBin, "events", "--server", s.url, "--service", "app")
	<-cli.done
	if out := cli.output(); !strings.Contains(out, "app/app-1") || !strings.Contains(out, "healthy -> unhealthy") || !strings.Contains(out, "connection refused") {
		t.Fatalf("seamark events printed:\n%s", out)
	}
	st, err := s.client.Status(ctx)
	if err != nil || len(st.Checkers) != 1 || st.Checkers[0].ID != "e2e-checker" {
		t.Fatalf("status checkers: got %+v (%v), want e2e-checker", st.Checkers, err)
	}
}
