package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// world is a real embedded store and registry watcher for checkers to run on.
type world struct {
	t  *testing.T
	st *store.Store
	w  *registry.Watcher

	mu       sync.Mutex
	checkers map[*Checker]chan struct{} // running ones (w.run), and when each stops
}

func newWorld(t *testing.T) *world {
	t.Helper()
	st := storetest.New(t)
	w := registry.NewWatcher(st, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	return &world{t: t, st: st, w: w}
}

func (w *world) service(name string, port int, check api.Check, candidates ...string) {
	w.t.Helper()
	s := api.Service{Name: name, Port: port, Check: check, Candidates: candidates, Source: api.SourceAPI}
	s.SetDefaults()
	rev, err := w.st.PutService(context.Background(), s, false)
	if err != nil {
		w.t.Fatal(err)
	}
	w.seen(rev)
}

// seen waits until the snapshot shows revision rev, and every checker the
// world runs has synced it (each syncs on its own goroutine: on a loaded
// machine, later than any fixed pause).
func (w *world) seen(rev int64) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.w.WaitRevision(ctx, rev); err != nil {
		w.t.Fatalf("snapshot never reached revision %d: %v", rev, err)
	}
	w.mu.Lock()
	cs := maps.Clone(w.checkers)
	w.mu.Unlock()
	for c, done := range cs {
		for c.synced.Load() < rev {
			select {
			case <-done:
			case <-ctx.Done():
				w.t.Fatalf("checker %s never synced revision %d (at %d)", c.o.ID, rev, c.synced.Load())
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
	}
}

func (w *world) node(service, id string, addr netip.AddrPort) {
	w.t.Helper()
	n := api.Node{ID: id, Service: service, Address: addr.Addr(), Port: int(addr.Port()), Source: api.SourceAPI}
	n.SetDefaults()
	rev, _, err := w.st.PutNode(context.Background(), n, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	w.seen(rev)
}

// run starts a checker; stop it with the returned function (or at cleanup).
func (w *world) run(o Options) (stop func()) {
	o.Store, o.Snapshots = w.st, w.w
	if o.LeaseTTL == 0 {
		o.LeaseTTL = time.Second
	}
	c := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			w.t.Errorf("checker %s: %v", o.ID, err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			w.mu.Lock()
			delete(w.checkers, c)
			w.mu.Unlock()
		})
	}
	w.t.Cleanup(stop)
	w.mu.Lock()
	if w.checkers == nil {
		w.checkers = map[*Checker]chan struct{}{}
	}
	w.checkers[c] = done
	w.mu.Unlock()
	// It starts from what the store holds now.
	w.seen(w.w.Current().Revision)
	return stop
}

// waitNode waits (real time) until cond holds for the node in the snapshot.
func (w *world) waitNode(service, id, what string, timeout time.Duration, cond func(n *api.Node) bool) *api.Node {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		s := w.w.Current()
		if v, ok := s.Service(service); ok {
			for _, n := range v.Nodes() {
				if n.ID == id && cond(n) {
					return n
				}
			}
			if cond(nil) {
				return nil
			}
		}
		select {
		case <-w.w.Next(s):
		case <-deadline:
			w.t.Fatalf("node %s/%s: never %s within %v", service, id, what, timeout)
		}
	}
}

// fakeProber answers from a table the test changes, and counts probes.
type fakeProber struct {
	mu    sync.Mutex
	up    map[string]bool // target key -> passes
	calls atomic.Int64
}

func (p *fakeProber) set(key string, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up[key] = up
}

func (p *fakeProber) Probe(ctx context.Context, t Target) Result {
	p.calls.Add(1)
	p.mu.Lock()
	ok := p.up[t.Key()]
	p.mu.Unlock()
	if ok {
		return Result{OK: true, Reason: "ok"}
	}
	return Result{Reason: "tcp connect: connection refused"}
}

// settle advances fake time in steps, letting the checker handle each step.
func settle(clock *FakeClock, p *fakeProber, total, step time.Duration) {
	for elapsed := time.Duration(0); elapsed < total; elapsed += step {
		clock.Advance(step)
		// Wait until the probes this step started are done (no new calls for 5ms).
		for last := int64(-1); ; {
			time.Sleep(5 * time.Millisecond)
			n := p.calls.Load()
			if n == last {
				break
			}
			last = n
		}
	}
}

// The rise/fall state machine on an injected clock: a new node is out until
// it passed rise probes; a node whose port closes is out within
// interval*fall + timeout; it comes back after rise passes.
func TestRiseFallOnFakeClock(t *testing.T) {
	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Rise: 2, Fall: 3}
	w.service("db", 3000, check)
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.0.11:3000"))
	clock := NewFakeClock()
	p := &fakeProber{up: map[string]bool{"db/db-a": true}}
	w.run(Options{ID: "c1", Clock: clock, Prober: p})
	w.waitNode("db", "db-a", "present", 5*time.Second, func(n *api.Node) bool { return n != nil })
	start := clock.Now()
	// Fake time moves in steps, so a probe due inside a step starts at its
	// end: every bound below allows one step more.
	const step = 100 * time.Millisecond

	settle(clock, p, 3*time.Second, step)
	n := w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	if up := n.Checks[0].Since.Sub(start); up > 2*time.Second+step {
		t.Fatalf("new node healthy %v after start, want within rise*interval = 2s", up)
	}

	closed := clock.Now()
	p.set("db/db-a", false)
	settle(clock, p, 4*time.Second, step)
	n = w.waitNode("db", "db-a", "unhealthy", 5*time.Second, func(n *api.Node) bool { return n != nil && !n.Healthy })
	bound := 3*time.Second + 500*time.Millisecond + step // interval*fall + timeout
	if took := n.Checks[0].Since.Sub(closed); took > bound {
		t.Fatalf("node out %v after its port closed, want within interval*fall+timeout = %v", took, bound)
	} else {
		t.Logf("out %v after the port closed (bound %v)", took, bound)
	}
	if n.Checks[0].Reason != "tcp connect: connection refused" {
		t.Fatalf("got reason %q", n.Checks[0].Reason)
	}

	reopened := clock.Now()
	p.set("db/db-a", true)
	settle(clock, p, 3*time.Second, step)
	n = w.waitNode("db", "db-a", "healthy again", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	if took := n.Checks[0].Since.Sub(reopened); took > 2*time.Second+step {
		t.Fatalf("back %v after reopening, want within rise*interval = 2s", took)
	}
	events := w.w.Current().Events()
	var seq []string
	for _, e := range events {
		seq = append(seq, fmt.Sprintf("%s>%s", e.Old, e.New))
	}
	if got, want := fmt.Sprint(seq), "[unchecked>healthy healthy>unhealthy unhealthy>healthy]"; got != want {
		t.Fatalf("got events %s, want %s", got, want)
	}
}

// listen opens a real listener that accepts and closes connections.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
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
	t.Cleanup(func() { l.Close() })
	return l
}

// Real time, real listener, real prober, short intervals: the node is out of
// the healthy set within interval*fall + timeout of its port closing (plus
// the store write and snapshot, a few ms).
func TestPortCloseRealTime(t *testing.T) {
	w := newWorld(t)
	l := listen(t, "127.0.0.1:0")
	addr := netip.MustParseAddrPort(l.Addr().String())
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(50 * time.Millisecond), Rise: 2, Fall: 2}
	w.service("db", int(addr.Port()), check)
	w.node("db", "db-a", addr)
	w.run(Options{ID: "c1"})
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	l.Close()
	closed := time.Now()
	w.waitNode("db", "db-a", "unhealthy", 5*time.Second, func(n *api.Node) bool { return n != nil && !n.Healthy })
	took := time.Since(closed)
	bound := 2*100*time.Millisecond + 50*time.Millisecond
	t.Logf("out of the healthy set %v after the port closed (interval*fall+timeout = %v)", took, bound)
	if took > bound+200*time.Millisecond { // generous slack for a loaded CI machine
		t.Fatalf("took %v, want within %v", took, bound)
	}
}

// A /28 candidate pool with 3 live listeners advertises exactly those 3;
// starting a 4th adds it within 2 intervals.
func TestCandidatePool(t *testing.T) {
	w := newWorld(t)
	first := listen(t, "127.0.1.1:0")
	port := netip.MustParseAddrPort(first.Addr().String()).Port()
	for _, a := range []string{"127.0.1.5", "127.0.1.9"} {
		listen(t, fmt.Sprintf("%s:%d", a, port))
	}
	interval := 300 * time.Millisecond
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(interval), FastInterval: api.Duration(20 * time.Millisecond), Timeout: api.Duration(100 * time.Millisecond), Rise: 2, Fall: 2}
	w.service("pool", int(port), check, "127.0.1.0/28")
	w.run(Options{ID: "c1"})
	healthy := func() []string {
		v, _ := w.w.Current().Service("pool")
		var out []string
		for _, n := range v.Healthy() {
			out = append(out, n.Address.String())
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(healthy()) != "[127.0.1.1 127.0.1.5 127.0.1.9]" {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want the 3 live candidates", healthy())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stay a few intervals: no other address of the /28 turns up.
	time.Sleep(3 * interval)
	if got := fmt.Sprint(healthy()); got != "[127.0.1.1 127.0.1.5 127.0.1.9]" {
		t.Fatalf("got %v, want exactly the 3 live candidates", got)
	}
	listen(t, fmt.Sprintf("127.0.1.12:%d", port))
	started := time.Now()
	w.waitNode("pool", api.CandidateID(netip.MustParseAddr("127.0.1.12")), "advertised", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	took := time.Since(started)
	t.Logf("4th candidate advertised %v after it started listening (2 intervals = %v)", took, 2*interval)
	if took > 2*interval {
		t.Fatalf("4th candidate took %v, want within 2 intervals (%v)", took, 2*interval)
	}
}

// blockable dials for real unless blocked; blocked dials hang until the
// probe's deadline, like a blackholed address.
type blockable struct{ blocked atomic.Bool }

func (b *blockable) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if b.blocked.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Three checkers on one store disagree: the majority decides; a checker that
// dies without a word stops counting once its lease expires.
func TestCheckersVote(t *testing.T) {
	w := newWorld(t)
	l := listen(t, "127.0.0.1:0")
	addr := netip.MustParseAddrPort(l.Addr().String())
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(50 * time.Millisecond), Rise: 1, Fall: 1}
	w.service("db", int(addr.Port()), check)
	w.node("db", "db-a", addr)

	a, b := &blockable{}, &blockable{}
	c := &blockable{}
	c.blocked.Store(true)
	w.run(Options{ID: "a", Prober: &NetProber{Dial: a.dial}})
	w.run(Options{ID: "b", Prober: &NetProber{Dial: b.dial}})
	// Checker c runs on its own connection to the store, so the test can cut
	// it off as if its machine died: its lease then runs out.
	user, pw := w.st.Credentials()
	cst, err := store.Open(context.Background(), store.Options{Endpoints: w.st.Endpoints(), Username: user, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	cw := &world{t: t, st: cst, w: w.w}
	stopC := cw.run(Options{ID: "c", Prober: &NetProber{Dial: c.dial}, LeaseTTL: time.Second})

	votes := func(n *api.Node) string {
		s := ""
		for _, v := range n.Checks {
			s += v.Checker + "=" + string(v.State) + " "
		}
		return s
	}
	n := w.waitNode("db", "db-a", "voted healthy by 2 of 3", 5*time.Second, func(n *api.Node) bool { return n != nil && len(n.Checks) == 3 && n.Healthy })
	t.Logf("2 of 3 reach it: %shealthy=%v", votes(n), n.Healthy)

	b.blocked.Store(true)
	n = w.waitNode("db", "db-a", "voted unhealthy by 2 of 3", 5*time.Second, func(n *api.Node) bool { return n != nil && len(n.Checks) == 3 && !n.Healthy })
	t.Logf("1 of 3 reaches it: %shealthy=%v", votes(n), n.Healthy)

	// c dies without a word: its store connection goes, nothing is revoked.
	cst.Close()
	died := time.Now()
	n = w.waitNode("db", "db-a", "healthy once c's lease expired", 10*time.Second, func(n *api.Node) bool { return n != nil && len(n.Checks) == 2 && n.Healthy })
	t.Logf("c's vote gone %v after it died (lease ttl 1s): %shealthy=%v", time.Since(died).Round(10*time.Millisecond), votes(n), n.Healthy)
	stopC()
}

// A connect failure reported by the balancer gets the node probed at once and
// then at the fast interval, instead of waiting out a long interval.
func TestConnectFailedHurries(t *testing.T) {
	w := newWorld(t)
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(10 * time.Second), FastInterval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(50 * time.Millisecond), Rise: 1, Fall: 2}
	w.service("db", 3000, check)
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.0.11:3000"))
	clock := NewFakeClock()
	p := &fakeProber{up: map[string]bool{"db/db-a": true}}
	c := New(Options{ID: "c1", Clock: clock, Prober: p, Store: w.st, Snapshots: w.w, LeaseTTL: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w.waitNode("db", "db-a", "present", 5*time.Second, func(n *api.Node) bool { return n != nil })
	// The checker syncs the node on its own goroutine, on a loaded machine
	// after some of these steps: its first probe is due within an interval
	// of that. Fake time moves until it ran.
	waitProbe := func(what string, before int64, step time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); p.calls.Load() == before; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no probe within 10s", what)
			}
			settle(clock, p, step, step)
		}
	}
	waitProbe("first probe", 0, time.Second)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })

	p.set("db/db-a", false)
	reported := clock.Now()
	before := p.calls.Load()
	c.ConnectFailed("db", "db-a")
	// The report is probed at once (within launchTick): wait for that probe
	// before moving time on (the checker takes the report on its own
	// goroutine).
	waitProbe("probe after the report", before, launchTick)
	settle(clock, p, 500*time.Millisecond, 50*time.Millisecond)
	n := w.waitNode("db", "db-a", "unhealthy", 5*time.Second, func(n *api.Node) bool { return n != nil && !n.Healthy })
	if took := n.Checks[0].Since.Sub(reported); took > 200*time.Millisecond {
		t.Fatalf("out %v after the balancer reported a failure, want about one fast interval (100ms), not the 10s interval", took)
	}
}

// A service's on_change hook gets every transition as JSON; the hook of a
// service the config file does not own (written into the store by another
// path) never runs.
func TestOnChangeHookRuns(t *testing.T) {
	w := newWorld(t)
	out, pwned := t.TempDir()+"/events", t.TempDir()+"/pwned"
	for _, svc := range []struct {
		name  string
		owner api.Source
		hook  string
	}{{"db", api.SourceConfig, "cat >> " + out + "; echo >> " + out}, {"web", api.SourceAPI, "cat >> " + pwned}} {
		s := api.Service{Name: svc.name, Port: 3000, Check: api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Rise: 1, Fall: 1}, OnChange: svc.hook, Source: svc.owner}
		s.SetDefaults()
		rev, err := w.st.PutService(context.Background(), s, false)
		if err != nil {
			t.Fatal(err)
		}
		w.seen(rev)
	}
	w.node("db", "db-a", netip.MustParseAddrPort("127.0.0.11:3000"))
	w.node("web", "web-a", netip.MustParseAddrPort("127.0.0.12:3000"))
	hooks := NewHooks(HookOptions{Backoff: 10 * time.Millisecond})
	hctx, hcancel := context.WithCancel(context.Background())
	hdone := make(chan struct{})
	go func() { defer close(hdone); hooks.Run(hctx) }()
	defer func() { hcancel(); <-hdone }()
	clock := NewFakeClock()
	p := &fakeProber{up: map[string]bool{"db/db-a": true, "web/web-a": true}}
	w.run(Options{ID: "c1", Clock: clock, Prober: p, Hooks: hooks})
	w.waitNode("db", "db-a", "present", 5*time.Second, func(n *api.Node) bool { return n != nil })
	w.waitNode("web", "web-a", "present", 5*time.Second, func(n *api.Node) bool { return n != nil })
	settle(clock, p, 2*time.Second, 500*time.Millisecond)
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	w.waitNode("web", "web-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(out)
		var e api.Event
		if len(data) > 0 && json.Unmarshal(bytes.TrimSpace(data), &e) == nil {
			if e.Node != "db-a" || e.New != api.StateHealthy || e.Checker != "c1" {
				t.Fatalf("hook got %+v, want db-a turning healthy by c1", e)
			}
			time.Sleep(200 * time.Millisecond) // web's hook, queued beside db's, would have run
			if _, err := os.Stat(pwned); err == nil {
				t.Fatal("the hook of a service the config file does not own ran")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook output after 5s: %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthGoroutines counts the goroutines with this package's code on their
// stack, other than the caller's (the store's client keeps goroutines for
// leases as it sees fit; they are not the checker's).
func healthGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	stacks := strings.Split(all, "\n\n")[1:]
	var ours []string
	for _, st := range stacks {
		if strings.Contains(st, "seamark/internal/health.") {
			ours = append(ours, st)
		}
	}
	return len(ours), strings.Join(ours, "\n\n")
}

// A checker with the real prober, probing open, refused and blackholed
// targets, leaves no goroutine or descriptor once Run returns: its probes
// in flight end with it.
func TestCheckerStopLeavesNothing(t *testing.T) {
	w := newWorld(t)
	l := listen(t, "127.0.0.1:0")
	up := netip.MustParseAddrPort(l.Addr().String())
	check := api.Check{Type: api.CheckTCP, Interval: api.Duration(50 * time.Millisecond), Timeout: api.Duration(time.Minute), Rise: 1, Fall: 1}
	w.service("db", int(up.Port()), check)
	w.node("db", "db-a", up)
	w.node("db", "db-b", closedPort(t))
	if hole, ok := fullBacklog(t); ok {
		w.node("db", "db-c", hole)
	} else {
		t.Log("the accept queue never filled: no blackholed target")
	}
	// A first checker sets up what the store's client keeps for leases.
	stop0 := w.run(Options{ID: "c0"})
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	stop0()
	g0, _ := healthGoroutines()
	fd0 := openFDs()

	stop := w.run(Options{ID: "c1"})
	w.waitNode("db", "db-a", "healthy", 5*time.Second, func(n *api.Node) bool { return n != nil && n.Healthy })
	time.Sleep(100 * time.Millisecond) // the blackholed target's probes are in flight (1m timeout)
	if g, _ := healthGoroutines(); g <= g0 {
		t.Fatalf("checker running: %d goroutines of this package, want more than %d (is the count right?)", g, g0)
	}
	stop()

	settleCounts(func() bool { g, _ := healthGoroutines(); return g <= g0 && openFDs() <= fd0 })
	if g, stacks := healthGoroutines(); g > g0 {
		t.Errorf("goroutines after stop: got %d, want at most %d\n%s", g, g0, stacks)
	}
	if fd := openFDs(); fd > fd0 {
		t.Errorf("open fds after stop: got %d, want at most %d", fd, fd0)
	}
}

// A pool of 128 candidates probed every 20 ms, its results coming in from
// the prober's loop while the checker starts more (run it with -race):
// exactly the live ones are advertised, and a live one stopped goes.
func TestCheckerManyTargets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prober *NetProber
	}{
		{"connects asked at once", &NetProber{}},
		{"connects through epoll", &NetProber{EpollOnly: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.prober.Close()
			w := newWorld(t)
			first := listen(t, "127.0.3.1:0")
			port := netip.MustParseAddrPort(first.Addr().String()).Port()
			live := []string{"127.0.3.1"}
			var last net.Listener
			for i := 10; i < 128; i += 13 {
				a := fmt.Sprintf("127.0.3.%d", i)
				last = listen(t, fmt.Sprintf("%s:%d", a, port))
				live = append(live, a)
			}
			slices.Sort(live)
			check := api.Check{Type: api.CheckTCP, Interval: api.Duration(20 * time.Millisecond), Timeout: api.Duration(100 * time.Millisecond), Rise: 1, Fall: 1}
			w.service("pool", int(port), check, "127.0.3.0/25")
			w.run(Options{ID: "c1", Prober: tc.prober})
			healthy := func() string {
				v, _ := w.w.Current().Service("pool")
				var out []string
				for _, n := range v.Healthy() {
					out = append(out, n.Address.String())
				}
				slices.Sort(out)
				return fmt.Sprint(out)
			}
			wait := func(want string) {
				t.Helper()
				for deadline := time.Now().Add(5 * time.Second); healthy() != want; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("got %v, want %v", healthy(), want)
					}
				}
			}
			wait(fmt.Sprint(live))
			time.Sleep(200 * time.Millisecond) // ten rounds of probes: nothing else turns up
			wait(fmt.Sprint(live))
			last.Close() // 127.0.3.127
			wait(fmt.Sprint(slices.DeleteFunc(live, func(a string) bool { return a == "127.0.3.127" })))
		})
	}
}

// BenchmarkDueQueue is the scheduler's work per probe: take the next due
// target out of 10 000 and put it back one interval later.
func BenchmarkDueQueue(b *testing.B) {
	const n = 10000
	var q dueQueue
	for range n {
		t := &target{queued: true, qgen: 1}
		q.push(dueEntry{key: int64(rand.N(time.Second)), t: t, gen: 1})
	}
	b.ReportAllocs()
	for b.Loop() {
		e := q.pop()
		q.push(dueEntry{key: e.key + int64(time.Second), t: e.t, gen: e.gen})
	}
}
