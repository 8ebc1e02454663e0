package lb

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/netlimit"
)

// The global cap spans listeners: at it, every port pauses (clients wait in
// the backlog), and the pause is counted.
func TestGlobalMaxConnsPausesEveryPort(t *testing.T) {
	reg := prometheus.NewRegistry()
	budget := netlimit.NewBudget(1<<20, 0)
	e := newEnvWith(t, func(o *Options) { o.MaxConns = 2; o.Budget = budget; o.Registerer = reg })
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	ports := freePorts(t, 2)
	e.listener(api.Listener{Name: "one", Port: ports[0], Service: "app"})
	e.sync(e.listener(api.Listener{Name: "two", Port: ports[1], Service: "app", MaxConns: 5}))
	var held []net.Conn
	for _, p := range ports {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readLine(t, c)
		held = append(held, c)
	}
	if got := budget.Held(); got != 4 {
		t.Fatalf("descriptors held for two proxied connections: got %d, want 4", got)
	}
	third, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("a third connection was served over the global cap of 2")
	}
	held[0].Close() // frees a slot on the other port
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line := readLine(t, third); line != "a" {
		t.Fatalf("got %q after a slot freed, want a", line)
	}
	want := `
# HELP seamark_conn_limit Most connections the surface holds (0: only the descriptor budget bounds it).
# TYPE seamark_conn_limit gauge
seamark_conn_limit{surface="lb"} 2
# HELP seamark_lb_listener_max_conns A listener's cap of connections per port (max_conns; 0: none). At it the port stops accepting.
# TYPE seamark_lb_listener_max_conns gauge
seamark_lb_listener_max_conns{listener="one"} 0
seamark_lb_listener_max_conns{listener="two"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "seamark_conn_limit", "seamark_lb_listener_max_conns"); err != nil {
		t.Fatal(err)
	}
	if n := e.lb.conns.Refused(netlimit.ReasonPaused); n < 1 {
		t.Fatalf("pauses counted: got %d, want at least 1", n)
	}
}

// A drain that timed out cuts its connections in a goroutine the balancer
// waits for, logs it once, and does not start a cut every reap.
func TestDrainTimeoutCutsOnceAndIsOwned(t *testing.T) {
	var logs syncBuf
	e := newEnvWith(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	e.service("app")
	e.node("app", "a", echoBackend(t, "a"), 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "gone", Port: port, Service: "app", DrainTimeout: api.Duration(100 * time.Millisecond)}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readLine(t, c)
	e.sync(e.dropListener("gone"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection outlived its drain timeout")
	}
	time.Sleep(4 * reapEvery)
	if n := e.lb.cuts.Load(); n != 1 {
		t.Errorf("cuts started: got %d, want 1", n)
	}
	if n := strings.Count(logs.String(), "drain timeout: cutting connections"); n != 1 {
		t.Errorf("drain timeout lines logged: got %d, want 1", n)
	}
	e.stop() // returns only once the cut's goroutine is done
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
