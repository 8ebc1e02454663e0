package e2e

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/seed"
)

// TestSeedThroughSeamarkListener: the seed a client is given is a seamark
// balancer port in front of three nodes' identity endpoints (target_port),
// each node a real agent beside an echo service. The client detects the
// balancer, learns the three nodes at their own addresses, each once, and
// from then on connects to them directly.
func TestSeedThroughSeamarkListener(t *testing.T) {
	svcPort, idPort, lbPort := freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
zones: [cluster.test]
services:
  - {name: db, port: %d, check: {type: tcp, interval: 200ms, timeout: 200ms, rise: 1, fall: 2}}
listeners:
  - {name: db_seeds, port: %d, bind: 127.0.0.1, service: db, target_port: %d}
`, svcPort, lbPort, idPort)), 0o644)
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	echo := buildTool(t, "./echosvc")
	var addrs []netip.Addr
	for i := range 3 {
		ip := netip.AddrFrom4([4]byte{127, 0, 31, byte(11 + i)})
		addrs = append(addrs, ip)
		startProc(t, fmt.Sprintf("echosvc-%d", i), echo, "-listen", netip.AddrPortFrom(ip, uint16(svcPort)).String())
		startProc(t, fmt.Sprintf("agent-%d", i), seamarkBin, "agent", "--server", s.url, "--service", "db",
			"--port", fmt.Sprint(svcPort), "--id", fmt.Sprintf("db-%c", 'a'+i), "--address", ip.String(), "--state-file", "none",
			"--ttl", "3s", "--identity-addr", netip.AddrPortFrom(ip, uint16(idPort)).String())
	}
	ctx := ctxTimeout(t, 30*time.Second)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		nodes, _, err := s.client.Nodes(ctx, "db", &api.QueryOptions{HealthyOnly: true})
		if err == nil && len(nodes) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("three healthy nodes: %v %v", nodes, err)
		}
	}

	seedAddr := fmt.Sprintf("127.0.0.1:%d", lbPort)
	c, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{seedAddr}, IdentityPort: idPort, TendInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info := c.Seeded()
	if !info.Balancer || info.Dialled.String() != seedAddr {
		t.Errorf("seeded %+v: want the seamark listener %s detected as a balancer", info, seedAddr)
	}
	var ids []string
	for _, n := range c.Nodes() {
		ids = append(ids, n.ID)
		if !slices.Contains(addrs, n.Addr.Addr()) || n.Addr.Port() != uint16(svcPort) {
			t.Errorf("node %s at %v: want its own address and the service port", n.ID, n.Addr)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"db-a", "db-b", "db-c"}) {
		t.Fatalf("nodes %v, want db-a db-b db-c, each once", ids)
	}
	seen := map[string]int{}
	for i := range 30 {
		conn, err := c.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ra := netip.MustParseAddrPort(conn.RemoteAddr().String())
		if ra.Port() == uint16(lbPort) {
			t.Errorf("dial %d went through the balancer", i)
		}
		seen[ra.Addr().String()]++
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "hello %d\n", i)
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("echo through %v: %q %v", ra, line, err)
		}
		conn.Close()
	}
	if len(seen) != 3 {
		t.Errorf("30 dials reached %v, want all three nodes directly", seen)
	}
	// The balancer carried only the seeding.
	stats, err := s.client.BalancerStats(ctx, "db_seeds")
	if err != nil || len(stats) != 1 || stats[0].Total == 0 || stats[0].Total > 3 {
		t.Errorf("balancer port: %+v %v, want the seeding connection(s) only", stats, err)
	}
}
