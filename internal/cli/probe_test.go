package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/seedtest"
)

// probeWorld is a name that lists five blackholed addresses and a load
// balancer, which forwards the service port and the identity port to three
// nodes.
type probeWorld struct {
	dns                       *seedtest.DNS
	servicePort, identityPort uint16
	lb                        netip.Addr
	nodes                     []netip.Addr
}

func newProbeWorld(t *testing.T) *probeWorld {
	t.Helper()
	w := &probeWorld{lb: netip.MustParseAddr("127.0.40.1"), nodes: seedtest.Loopbacks(40, 11, 3)}
	dead := seedtest.Loopbacks(40, 2, 5)
	ips := append([]netip.Addr{w.lb}, w.nodes...)
	listen := func() ([]net.Listener, uint16) {
		lns, port, err := seedtest.ListenSamePort(append(ips, dead...))
		if err != nil {
			t.Fatal(err)
		}
		for _, ln := range lns[len(ips):] {
			ln.Close()
		}
		return lns[:len(ips)], port
	}
	svcLns, svcPort := listen()
	idLns, idPort := listen()
	w.servicePort, w.identityPort = svcPort, idPort
	bh, err := seedtest.NewBlackhole(dead, svcPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bh.Close() })

	var peers []api.Node
	for i, ip := range w.nodes {
		peers = append(peers, api.Node{ID: fmt.Sprintf("db-%c", 'a'+i), Service: "db", Address: ip, Port: int(svcPort)})
	}
	var svcTargets, idTargets []string
	for i, ip := range w.nodes {
		svc := seedtest.NewService(svcLns[i+1])
		t.Cleanup(func() { svc.Close() })
		id := seedtest.NewIdentity(idLns[i+1], api.Identity{ID: peers[i].ID, Service: "db", Address: ip, Port: int(svcPort)}, seedtest.StaticPeers(peers...))
		t.Cleanup(func() { id.Close() })
		svcTargets = append(svcTargets, netip.AddrPortFrom(ip, svcPort).String())
		idTargets = append(idTargets, netip.AddrPortFrom(ip, idPort).String())
	}
	p1 := seedtest.NewProxy(svcLns[0], svcTargets...)
	t.Cleanup(func() { p1.Close() })
	p2 := seedtest.NewProxy(idLns[0], idTargets...)
	t.Cleanup(func() { p2.Close() })

	if w.dns, err = seedtest.NewDNS(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.dns.Close() })
	w.dns.Set("db.cluster.test", append(dead, w.lb))
	return w
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestProbeShowsAttemptsBalancerAndNodes(t *testing.T) {
	w := newProbeWorld(t)
	target := fmt.Sprintf("db.cluster.test:%d", w.servicePort)
	code, out, errs := runCLI("probe", target, "--dns-server", w.dns.Addr(), "--identity-port", fmt.Sprint(w.identityPort))
	t.Logf("seamark probe %s:\n%s", target, out)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	lb := netip.AddrPortFrom(w.lb, w.servicePort).String()
	for _, want := range []string{
		"resolve db.cluster.test through " + w.dns.Addr() + ": 6 addresses",
		"START", "cancelled", "connected",
		"connected to " + lb,
		"(6 of 6 addresses tried)",
		"balancer: detected: " + netip.AddrPortFrom(w.lb, w.identityPort).String() + " answered as node db-",
		"nodes (3):",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out, "cancelled"); n != 5 {
		t.Errorf("%d cancelled attempts shown, want the 5 blackholed ones", n)
	}
	for i, ip := range w.nodes {
		line := fmt.Sprintf("db-%c  %s", 'a'+i, netip.AddrPortFrom(ip, w.servicePort))
		if !strings.Contains(out, line) {
			t.Errorf("output lacks node line %q", line)
		}
	}
}

func TestProbeJSON(t *testing.T) {
	w := newProbeWorld(t)
	code, out, errs := runCLI("probe", fmt.Sprintf("db.cluster.test:%d", w.servicePort), "--dns-server", w.dns.Addr(),
		"--identity-port", fmt.Sprint(w.identityPort), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	var r probeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(r.Resolved) != 6 || len(r.Attempts) != 6 || r.Connected.Addr() != w.lb {
		t.Errorf("resolved %v, %d attempts, connected %v; want 6, 6, the balancer", r.Resolved, len(r.Attempts), r.Connected)
	}
	if r.Seed == nil || !r.Seed.Balancer || len(r.Nodes) != 3 {
		t.Errorf("seed %+v, nodes %v; want a balancer and 3 nodes", r.Seed, r.Nodes)
	}
}

func TestProbeFailures(t *testing.T) {
	port, err := seedtest.FreePort([]netip.Addr{netip.MustParseAddr("127.0.41.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"not host:port", []string{"probe", "db.cluster.test"}, 1, "", "is not host:port"},
		{"refused", []string{"probe", fmt.Sprintf("127.0.41.1:%d", port)}, 1, "connection refused", ""},
		{"bad identity port", []string{"probe", "127.0.41.1:1", "--identity-port", "70000"}, 1, "", "--identity-port: 70000 is not a port"},
		{"bad output", []string{"probe", "127.0.41.1:1", "-o", "yaml"}, 1, "", `-o: "yaml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs+out, tc.err) {
				t.Errorf("exit %d, out %q, err %q; want exit %d, out with %q, message with %q", code, out, errs, tc.code, tc.out, tc.err)
			}
		})
	}
}
