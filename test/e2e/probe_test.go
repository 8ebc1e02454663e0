package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/seedtest"
)

// `seamark probe` run as an operator would, against a real server whose DNS
// name still lists a dead node: it shows the three addresses, the dead one's
// attempt cancelled, the connection to a live one, and the API's node map.
func TestProbeAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dead := netip.MustParseAddr("127.0.60.2")
	live := seedtest.Loopbacks(60, 11, 2)
	lns, port, err := seedtest.ListenSamePort(append([]netip.Addr{dead}, live...))
	if err != nil {
		t.Fatal(err)
	}
	lns[0].Close()
	bh, err := seedtest.NewBlackhole([]netip.Addr{dead}, port)
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	for _, ln := range lns[1:] {
		svc := seedtest.NewService(ln)
		defer svc.Close()
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	yaml := fmt.Sprintf("zones: [cluster.test]\nservices:\n  - name: db\n    port: %d\n    check: {type: none}\n", port)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	dnsAddr := s.waitOutput(dnsAddrRE, 5*time.Second)
	ctx := ctxTimeout(t, 30*time.Second)
	for i, ip := range append([]netip.Addr{dead}, live...) {
		if _, err := s.client.Register(ctx, api.Node{ID: fmt.Sprintf("db-%d", i), Service: "db", Address: ip}); err != nil {
			t.Fatal(err)
		}
	}
	target := net.JoinHostPort("db.cluster.test", fmt.Sprint(port))
	out, err := exec.CommandContext(ctx, seamarkBin, "probe", target, "--dns-server", dnsAddr,
		"--service", "db", "--server", s.url).CombinedOutput()
	t.Logf("seamark probe %s:\n%s", target, out)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	for _, want := range []string{"3 addresses", "connected to 127.0.60.1", "nodes (3):", "db-0", "db-1", "db-2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
