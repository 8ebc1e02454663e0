package seed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/seedtest"
	"github.com/seamark/seamark/internal/server"
	"github.com/seamark/seamark/seed"
)

// testNode is a node as an agent would present it: a service port and an
// identity endpoint on the node's own address.
type testNode struct {
	id       string
	ip       netip.Addr
	svc      *seedtest.Service
	identity *seedtest.Identity
	stopped  bool
}

func (n *testNode) stop() {
	if !n.stopped {
		n.stopped = true
		n.identity.Close()
		n.svc.Close()
	}
}

// fleet is a set of nodes sharing one identity port and one service port,
// and optionally a balancer address in front of them (the first ip).
type fleet struct {
	identityPort, servicePort uint16
	identityLns, serviceLns   map[netip.Addr]net.Listener
}

// newFleet reserves the identity and service ports on every ip.
func newFleet(t *testing.T, ips []netip.Addr) *fleet {
	t.Helper()
	f := &fleet{identityLns: map[netip.Addr]net.Listener{}, serviceLns: map[netip.Addr]net.Listener{}}
	for _, into := range []*map[netip.Addr]net.Listener{&f.identityLns, &f.serviceLns} {
		lns, port, err := seedtest.ListenSamePort(ips)
		if err != nil {
			t.Fatal(err)
		}
		for i, ln := range lns {
			(*into)[ips[i]] = ln
			t.Cleanup(func() { ln.Close() })
		}
		if into == &f.identityLns {
			f.identityPort = port
		} else {
			f.servicePort = port
		}
	}
	return f
}

// start runs node id on ip, answering identities with peers.
func (f *fleet) start(t *testing.T, id string, ip netip.Addr, peers seedtest.PeersFunc) *testNode {
	t.Helper()
	return f.startAs(t, id, ip, ip, peers)
}

// startAs runs node id listening on ip whose identity gives access as its
// access address, and alts.
func (f *fleet) startAs(t *testing.T, id string, ip, access netip.Addr, peers seedtest.PeersFunc, alts ...api.AltAddress) *testNode {
	t.Helper()
	n := &testNode{id: id, ip: ip}
	n.svc = seedtest.NewService(f.serviceLns[ip])
	n.identity = seedtest.NewIdentity(f.identityLns[ip], api.Identity{
		ID: id, Service: "db", Address: access, Port: int(f.servicePort), Alternates: alts,
	}, peers)
	t.Cleanup(n.stop)
	return n
}

func (f *fleet) apiNode(id string, ip netip.Addr) api.Node {
	return api.Node{ID: id, Service: "db", Address: ip, Port: int(f.servicePort)}
}

func (f *fleet) seed(ip netip.Addr) string {
	return netip.AddrPortFrom(ip, f.identityPort).String()
}

func ids(nodes []seed.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 10ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %v: %s", d, what)
}

// seedGoroutines lists the goroutines running code of the seed package.
func seedGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "seamark/seamark/seed.") && !strings.Contains(g, "seed_test.") {
			out = append(out, g)
		}
	}
	return out
}

// noSeedGoroutines fails if any seed goroutine is left (bounded wait).
func noSeedGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if left = seedGoroutines(); len(left) == 0 {
			return
		}
	}
	t.Errorf("%d seed goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
}

// startSeamark runs a real seamark server (embedded etcd, API, DNS for zone
// cluster.test) with a service db whose nodes are trusted as registered.
func startSeamark(t *testing.T) (*server.Server, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "seamark.yaml")
	const cfg = "zones: [cluster.test]\nservices:\n  - name: db\n    port: 3000\n    check: {type: none}\n    answers: {max_answers: 16, ttl: 1s}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Server.DataDir = filepath.Join(dir, "data")
	f.Server.HTTPAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := server.Start(ctxT(t, 30*time.Second), server.Options{Config: f, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := api.NewClient([]string{"http://" + s.HTTPAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// A seed that is a load balancer in front of three nodes: the client sees
// that the address it dialled is not the node's own, learns all three nodes
// and from then on connects to each directly, each node once in the map.
func TestClusterThroughBalancer(t *testing.T) {
	_, apic := startSeamark(t)
	lb := netip.MustParseAddr("127.0.20.1")
	ips := seedtest.Loopbacks(20, 11, 3)
	f := newFleet(t, append([]netip.Addr{lb}, ips...))
	ctx := ctxT(t, 30*time.Second)
	var nodes []*testNode
	var identityTargets, serviceTargets []string
	for i, ip := range ips {
		id := fmt.Sprintf("db-%c", 'a'+i)
		nodes = append(nodes, f.start(t, id, ip, seedtest.APIPeers(apic, "db")))
		if _, err := apic.Register(ctx, f.apiNode(id, ip)); err != nil {
			t.Fatal(err)
		}
		identityTargets = append(identityTargets, f.seed(ip))
		serviceTargets = append(serviceTargets, netip.AddrPortFrom(ip, f.servicePort).String())
	}
	lbIdentity := seedtest.NewProxy(f.identityLns[lb], identityTargets...)
	defer lbIdentity.Close()
	lbService := seedtest.NewProxy(f.serviceLns[lb], serviceTargets...)
	defer lbService.Close()

	var log traceLog
	c, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{f.seed(lb)}, TendInterval: 100 * time.Millisecond, Trace: log.add})
	if err != nil {
		t.Fatal(err)
	}
	info := c.Seeded()
	if !info.Balancer || info.Dialled != netip.MustParseAddrPort(f.seed(lb)) || info.Via != "identity" {
		t.Errorf("seeded %+v, want a balancer detected at %s", info, f.seed(lb))
	}
	got := c.Nodes()
	if !slices.Equal(ids(got), []string{"db-a", "db-b", "db-c"}) {
		t.Fatalf("nodes %v, want db-a db-b db-c, each once", got)
	}
	for i, n := range got {
		want := netip.AddrPortFrom(ips[i], f.servicePort)
		if n.Addr != want || n.Access != want {
			t.Errorf("node %s at %v (access %v), want %v: its own address, not the balancer's", n.ID, n.Addr, n.Access, want)
		}
	}
	const dials = 30
	for i := 0; i < dials; i++ {
		conn, err := c.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ap := netip.MustParseAddrPort(conn.RemoteAddr().String()); ap.Addr() == lb {
			t.Errorf("dial %d went through the balancer", i)
		}
		conn.Close()
	}
	waitFor(t, 5*time.Second, "every connection accepted", func() bool {
		var sum int64
		for _, n := range nodes {
			sum += n.svc.Accepted.Load()
		}
		return sum == dials
	})
	for _, n := range nodes {
		if got := n.svc.Accepted.Load(); got != dials/3 {
			t.Errorf("node %s got %d connections, want %d (load spread over the three)", n.id, got, dials/3)
		}
	}
	// Tend rounds go on, and only to the nodes: the balancer saw the one
	// identity request of the seeding and no service connection.
	waitFor(t, 5*time.Second, "3 tend rounds", func() bool { return len(log.of(seed.EventTend)) >= 3 })
	if got := lbIdentity.Accepted.Load(); got != 1 {
		t.Errorf("balancer's identity port got %d connections, want 1 (the seeding)", got)
	}
	if got := lbService.Accepted.Load(); got != 0 {
		t.Errorf("balancer's service port got %d connections, want 0", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	noSeedGoroutines(t)
}

// A node killed is gone from Nodes() within 2 tend rounds, even while the
// other nodes still list it as a peer; Watch reports it.
func TestClusterNodeKilled(t *testing.T) {
	leakCheck(t)
	ips := seedtest.Loopbacks(21, 11, 3)
	f := newFleet(t, ips)
	var peers []api.Node
	for i, ip := range ips {
		peers = append(peers, f.apiNode(fmt.Sprintf("db-%c", 'a'+i), ip))
	}
	var nodes []*testNode
	for i, ip := range ips {
		nodes = append(nodes, f.start(t, fmt.Sprintf("db-%c", 'a'+i), ip, seedtest.StaticPeers(peers...)))
	}
	ctx := ctxT(t, 30*time.Second)
	var log traceLog
	const interval = 200 * time.Millisecond
	// The trace function may call the cluster back (no lock is held).
	var cp atomic.Pointer[seed.Cluster]
	trace := func(e seed.Event) {
		log.add(e)
		if c := cp.Load(); c != nil {
			c.Nodes()
		}
	}
	// Tend rounds start when the test says: it counts rounds, not time.
	ticks := make(chan time.Time)
	cfg := seed.Config{Seeds: []string{f.seed(ips[0])}, TendInterval: interval, Trace: trace}
	seed.TendOnTicks(&cfg, ticks)
	c, err := seed.NewCluster(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cp.Store(c)
	defer c.Close()
	if info := c.Seeded(); info.Balancer {
		t.Errorf("seeded %+v, want no balancer (the seed is a node's own address)", info)
	}
	w := c.Watch()
	first := <-w
	if !slices.Equal(ids(first.Added), []string{"db-a", "db-b", "db-c"}) {
		t.Fatalf("first change added %v, want all three", ids(first.Added))
	}

	roundAt := func() int {
		rounds := log.of(seed.EventTend)
		if len(rounds) == 0 {
			return 0
		}
		return rounds[len(rounds)-1].Round
	}
	// tend runs one round and waits (with a generous real-time bound, only
	// against a hang) until it is traced.
	tend := func() {
		t.Helper()
		before := roundAt()
		ticks <- time.Now()
		for deadline := time.Now().Add(10 * time.Second); roundAt() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a tend round did not finish within 10s")
			}
		}
	}
	killedRound := roundAt()
	nodes[1].stop()
	var ch seed.Change
	rounds := 0
	for got := false; !got; {
		if rounds == 2 {
			t.Fatalf("killed node still there after %d tend rounds, want gone within 2", rounds)
		}
		tend()
		rounds++
		select {
		case ch = <-w:
			got = true
		default:
		}
	}
	if !slices.Equal(ids(ch.Removed), []string{"db-b"}) || !slices.Equal(ids(ch.Nodes), []string{"db-a", "db-c"}) {
		t.Fatalf("change %+v, want db-b removed, db-a and db-c left", ch)
	}
	if got := ids(c.Nodes()); !slices.Equal(got, []string{"db-a", "db-c"}) {
		t.Errorf("nodes %v, want db-a db-c", got)
	}
	t.Logf("killed node gone after %d tend rounds (traced %d)", rounds, roundAt()-killedRound)
	c.Close()
	if _, ok := <-w; ok {
		t.Error("watch channel still open after Close")
	}
	if _, err := c.Dial(ctx); !errors.Is(err, seed.ErrClosed) {
		t.Errorf("dial after close: got %v, want ErrClosed", err)
	}
}

// A node that joins is added by the next tend rounds, learned from its
// peers' answers, without going back to the seeds.
func TestClusterAddsNewNode(t *testing.T) {
	leakCheck(t)
	ips := seedtest.Loopbacks(29, 11, 3)
	f := newFleet(t, ips)
	var peers atomic.Pointer[[]api.Node]
	peersNow := func(context.Context) ([]api.Node, int64, error) { return *peers.Load(), 0, nil }
	two := []api.Node{f.apiNode("db-a", ips[0]), f.apiNode("db-b", ips[1])}
	peers.Store(&two)
	f.start(t, "db-a", ips[0], peersNow)
	f.start(t, "db-b", ips[1], peersNow)
	var log traceLog
	c, err := seed.NewCluster(ctxT(t, 30*time.Second), seed.Config{Seeds: []string{f.seed(ips[0])}, TendInterval: 100 * time.Millisecond, Trace: log.add})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ids(c.Nodes()); !slices.Equal(got, []string{"db-a", "db-b"}) {
		t.Fatalf("nodes %v, want db-a db-b", got)
	}
	f.start(t, "db-c", ips[2], peersNow)
	three := append(slices.Clone(two), f.apiNode("db-c", ips[2]))
	peers.Store(&three)
	waitFor(t, 5*time.Second, "db-c added", func() bool { return slices.Equal(ids(c.Nodes()), []string{"db-a", "db-b", "db-c"}) })
	if added := log.of(seed.EventNodeAdded); len(added) != 3 || added[2].Node != "db-c" {
		t.Errorf("added events %v, want db-a and db-b at seeding, then db-c", added)
	}
	if n := len(log.of(seed.EventReseed)); n != 0 {
		t.Errorf("%d reseeds, want none", n)
	}
}

// All nodes replaced by new ones at new addresses: the map empties and the
// client finds the cluster again through the name, resolved through
// seamark's own DNS server.
func TestClusterReseedsThroughName(t *testing.T) {
	srv, apic := startSeamark(t)
	old, fresh := seedtest.Loopbacks(22, 11, 3), seedtest.Loopbacks(22, 21, 3)
	f := newFleet(t, append(slices.Clone(old), fresh...))
	ctx := ctxT(t, 60*time.Second)
	var oldNodes []*testNode
	for i, ip := range old {
		id := fmt.Sprintf("old-%d", i)
		oldNodes = append(oldNodes, f.start(t, id, ip, seedtest.APIPeers(apic, "db")))
		if _, err := apic.Register(ctx, f.apiNode(id, ip)); err != nil {
			t.Fatal(err)
		}
	}
	var log traceLog
	name := fmt.Sprintf("db.cluster.test:%d", f.identityPort)
	c, err := seed.NewCluster(ctx, seed.Config{
		Seeds:        []string{name},
		TendInterval: 100 * time.Millisecond,
		DialOptions:  []seed.Option{seed.WithDNSServer(srv.DNSAddr().String())},
		Trace:        log.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ids(c.Nodes()); !slices.Equal(got, []string{"old-0", "old-1", "old-2"}) {
		t.Fatalf("nodes %v, want old-0..2", got)
	}
	// Replace every node: the old ones stop and leave the registry, new
	// ones on new addresses register.
	for i, n := range oldNodes {
		n.stop()
		if _, err := apic.Deregister(ctx, "db", fmt.Sprintf("old-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, ip := range fresh {
		id := fmt.Sprintf("new-%d", i)
		f.start(t, id, ip, seedtest.APIPeers(apic, "db"))
		if _, err := apic.Register(ctx, f.apiNode(id, ip)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the new nodes in the map", func() bool {
		return slices.Equal(ids(c.Nodes()), []string{"new-0", "new-1", "new-2"})
	})
	var reseeded bool
	for _, e := range log.of(seed.EventReseed) {
		reseeded = reseeded || e.Err == nil
	}
	if !reseeded {
		t.Error("no successful reseed traced; want the cluster found again through the name")
	}
	var resolvedAgain int
	for _, e := range log.of(seed.EventResolved) {
		if e.Host == "db.cluster.test" && slices.ContainsFunc(e.Addrs, func(a netip.AddrPort) bool { return slices.Contains(fresh, a.Addr()) }) {
			resolvedAgain++
		}
	}
	if resolvedAgain == 0 {
		t.Errorf("the name never resolved to the new addresses: %v", log.of(seed.EventResolved))
	}
	for _, n := range c.Nodes() {
		if !slices.Contains(fresh, n.Addr.Addr()) {
			t.Errorf("node %v not at a new address", n)
		}
	}
	c.Close()
	noSeedGoroutines(t)
}

// With only the seamark API (no identity endpoints) the map is the API's
// healthy nodes; a node deregistered leaves it.
func TestClusterFromAPI(t *testing.T) {
	srv, apic := startSeamark(t)
	ips := seedtest.Loopbacks(23, 11, 2)
	f := newFleet(t, ips)
	ctx := ctxT(t, 30*time.Second)
	var svcs []*seedtest.Service
	for i, ip := range ips {
		svcs = append(svcs, seedtest.NewService(f.serviceLns[ip]))
		defer svcs[i].Close()
		if _, err := apic.Register(ctx, f.apiNode(fmt.Sprintf("db-%d", i), ip)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := seed.NewCluster(ctx, seed.Config{
		Servers: []string{"http://" + srv.HTTPAddr().String()}, Service: "db", TendInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info := c.Seeded(); info.Via != "api" {
		t.Errorf("seeded via %q, want api", info.Via)
	}
	if got := ids(c.Nodes()); !slices.Equal(got, []string{"db-0", "db-1"}) {
		t.Fatalf("nodes %v, want db-0 db-1", got)
	}
	for i := 0; i < 4; i++ {
		conn, err := c.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	waitFor(t, 5*time.Second, "2 connections to each node", func() bool {
		return svcs[0].Accepted.Load() == 2 && svcs[1].Accepted.Load() == 2
	})
	if _, err := apic.Deregister(ctx, "db", "db-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "db-1 gone", func() bool { return slices.Equal(ids(c.Nodes()), []string{"db-0"}) })
	c.Close()
	noSeedGoroutines(t)
}

// Alternate addresses: nodes whose access addresses cannot be reached from
// here are reached at their "public" alternates; UseAlternate switches.
func TestClusterUseAlternate(t *testing.T) {
	leakCheck(t)
	public := seedtest.Loopbacks(24, 11, 3)
	f := newFleet(t, public)
	var peers []api.Node
	for i, ip := range public {
		private := netip.AddrFrom4([4]byte{127, 0, 25, byte(11 + i)}) // nothing listens there
		peers = append(peers, api.Node{ID: fmt.Sprintf("db-%d", i), Service: "db", Address: private,
			Alternates: []api.AltAddress{{Label: "public", Address: ip}}, Port: int(f.servicePort)})
	}
	for i, ip := range public {
		f.startAs(t, peers[i].ID, ip, peers[i].Address, seedtest.StaticPeers(peers...), peers[i].Alternates...)
	}
	ctx := ctxT(t, 30*time.Second)
	c, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{f.seed(public[0])}, Alternate: "public",
		TendInterval: time.Hour, FailRounds: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info := c.Seeded(); info.Balancer {
		t.Errorf("seeded %+v: a node's alternate address is its own, want no balancer", info)
	}
	nodes := c.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("nodes %v, want 3", nodes)
	}
	for i, n := range nodes {
		if n.Addr.Addr() != public[i] || n.Access.Addr() != peers[i].Address {
			t.Errorf("node %v: want addr %v, access %v", n, public[i], peers[i].Address)
		}
	}
	w := c.Watch()
	<-w
	conn, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	c.UseAlternate("")
	ch := <-w
	if len(ch.Moved) != 3 || ch.Moved[0].Addr.Addr() != peers[0].Address {
		t.Errorf("after UseAlternate(\"\"): change %+v, want all three moved to their access addresses", ch)
	}
	if _, err := c.Dial(ctx); err == nil {
		t.Error("dial at the unreachable access addresses succeeded")
	}
	c.UseAlternate("public")
	<-w
	conn, err = c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// A seed that answers but whose nodes are unreachable at their own
// addresses gives an error that says so.
func TestClusterBalancerButNodesUnreachable(t *testing.T) {
	lb := netip.MustParseAddr("127.0.26.1")
	node := netip.MustParseAddr("127.0.26.11")
	f := newFleet(t, []netip.Addr{lb, node})
	// The node's own address, 127.0.27.11, cannot be reached from here.
	f.startAs(t, "db-a", node, netip.MustParseAddr("127.0.27.11"), nil)
	p := seedtest.NewProxy(f.identityLns[lb], f.seed(node))
	defer p.Close()
	_, err := seed.NewCluster(ctxT(t, 10*time.Second), seed.Config{Seeds: []string{f.seed(lb)}, IdentityPort: int(f.identityPort)})
	if err == nil || !strings.Contains(err.Error(), "a load balancer or NAT") || !strings.Contains(err.Error(), "Alternate") {
		t.Errorf("got %v, want an error saying a balancer was found but no node answered at its own address", err)
	}
}

func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  seed.Config
		want []string
	}{
		{"nothing", seed.Config{}, []string{"Seeds: give at least one"}},
		{"bad seed", seed.Config{Seeds: []string{"db.example.com"}}, []string{"Seeds[0]:", "not host:port"}},
		{"servers without service", seed.Config{Servers: []string{"http://127.0.0.1:9400"}}, []string{"Service: name the service"}},
		{"several", seed.Config{Seeds: []string{"a:1", "b:x"}, IdentityPort: 70000, FailRounds: -1},
			[]string{"Seeds[1]:", "IdentityPort: 70000", "FailRounds: -1"}},
		{"bad dial option", seed.Config{Seeds: []string{"a:1"}, DialOptions: []seed.Option{seed.WithMaxConcurrent(0)}}, []string{"DialOptions:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := seed.NewCluster(context.Background(), tc.cfg)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want an error saying %q", err, w)
				}
			}
		})
	}
}

// NewCluster with seeds nobody answers at fails within its timeout, naming
// the seeds' errors.
func TestClusterNoSeedAnswers(t *testing.T) {
	leakCheck(t)
	port, err := seedtest.FreePort(seedtest.Loopbacks(28, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	_, err = seed.NewCluster(ctxT(t, 10*time.Second), seed.Config{Seeds: []string{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.28.1"), port).String(),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.28.2"), port).String(),
	}})
	if err == nil || !strings.Contains(err.Error(), "no seed answered") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got %v, want no seed answered, connection refused", err)
	}
}

// The identity endpoint can be any HTTP server speaking the contract;
// something else on the port gives a clear error.
func TestClusterSeedNotAnIdentityEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 1024)
				c.Read(buf)
				io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	_, err = seed.NewCluster(ctxT(t, 10*time.Second), seed.Config{Seeds: []string{ln.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "identity endpoint") {
		t.Errorf("got %v, want an error naming the 404 and the identity endpoint", err)
	}
}
