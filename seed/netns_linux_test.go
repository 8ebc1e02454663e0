package seed_test

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/seamark/seamark/internal/seedtest"

	"github.com/seamark/seamark/internal/testenv"
)

const netnsChildEnv = "SEED_TEST_NETNS_CHILD"

// TestDialBlackholedNetns is the same test as TestDialBlackholedInEveryPosition
// with addresses whose packets are dropped by the kernel's routing rather
// than by a full accept queue: the test runs itself again in a network
// namespace of its own, where 127.0.12.0/24 is routed into a veth whose
// other end is down, so every SYN to it vanishes without an answer. It needs root (or user
// namespaces) and ip(8) from iproute2.
func TestDialBlackholedNetns(t *testing.T) {
	if os.Getenv(netnsChildEnv) == "" {
		runInNetns(t, "TestDialBlackholedNetns")
		return
	}
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("link", "set", "lo", "up")
	ip("link", "add", "seedbh0", "type", "veth", "peer", "name", "seedbh1")
	// No ARP: packets go straight into the veth and are dropped there (its
	// peer is down), never answered with "no route to host" as an address
	// whose neighbour lookup failed would be.
	ip("link", "set", "seedbh0", "arp", "off", "up")
	// route_localnet lets 127/8 leave through seedbh0 with source 127.0.0.1,
	// so the addresses look usable to the resolver's RFC 6724 sort (which
	// puts destinations without a source address last), as a dead machine's
	// address does.
	for _, dev := range []string{"all", "seedbh0"} {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/route_localnet", []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ip("route", "add", "127.0.12.0/24", "dev", "seedbh0", "src", "127.0.0.1", "table", "local")
	leakCheck(t)
	s := newLiveSet(t, netip.MustParseAddr("127.0.13.1"), seedtest.Loopbacks(12, 2, 20), false)
	testBlackholedPositions(t, s)
}

// runInNetns runs the test named test in a child process in a new network
// namespace (a user namespace too when not root), or skips saying what is
// missing.
func runInNetns(t *testing.T, test string) {
	t.Helper()
	testenv.LookPath(t, "ip", "iproute2")
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	args := []string{"-test.run=^" + test + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			testenv.Skip(t, "cannot start a process in a new network namespace (needs root or user namespaces): %v", err)
		}
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
	t.Logf("in a network namespace:\n%s", out)
}
