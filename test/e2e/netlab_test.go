package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"

	"github.com/seamark/seamark/internal/testenv"
)

// netLab is a set of hosts made of Linux network namespaces, each with one
// address on a shared bridge (itself in a namespace of its own), so tests
// can run processes on separate hosts and cut a host's link. Everything is
// removed when the test ends.
type netLab struct {
	t      *testing.T
	prefix string
	sw     string
	hosts  []*labHost
	// etcd members by host number: their process and the command that
	// starts them again on the same data.
	etcd     map[int]*proc
	etcdArgs map[int][]string
	// etcdOnTmpfs keeps the etcd members' data in /dev/shm: their fsyncs
	// then cost nothing, so a test times seamark rather than a shared disk.
	etcdOnTmpfs bool
}

// labHost is one namespace with address 10.77.0.<n>/24 (or the lab's own
// network) on eth0.
type labHost struct {
	lab  *netLab
	n    int
	ns   string
	addr netip.Addr
	port string // the bridge-side end of its link
}

var labSeq atomic.Int32

// newNetLab makes n hosts, or skips the test when it cannot (not root, no
// ip command, no netns support).
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	return newNetLabIn(t, n, fmt.Sprintf("sm%d%d", os.Getpid()%1000, labSeq.Add(1)), 77)
}

// newNetLabIn is newNetLab with the namespaces' name prefix and the second
// octet of the hosts' addresses (10.<net>.0.<n>) chosen by the test.
func newNetLabIn(t *testing.T, n int, prefix string, net byte) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "network namespaces need root (CI runs as root)")
	}
	testenv.LookPath(t, "ip", "iproute2")
	lab := &netLab{t: t, prefix: prefix}
	lab.sw = lab.prefix + "sw"
	t.Cleanup(lab.remove)
	if err := lab.ip("netns", "add", lab.sw); err != nil {
		testenv.Skip(t, "cannot create a network namespace: %v", err)
	}
	lab.must("-n", lab.sw, "link", "add", "br0", "type", "bridge")
	lab.must("-n", lab.sw, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		h := &labHost{lab: lab, n: i, ns: fmt.Sprintf("%sh%d", lab.prefix, i), addr: netip.AddrFrom4([4]byte{10, net, 0, byte(i)})}
		h.port = fmt.Sprintf("%sp%d", lab.prefix, i)
		inner := fmt.Sprintf("%si%d", lab.prefix, i)
		lab.must("netns", "add", h.ns)
		lab.must("link", "add", inner, "type", "veth", "peer", "name", h.port)
		lab.must("link", "set", inner, "netns", h.ns)
		lab.must("link", "set", h.port, "netns", lab.sw)
		lab.must("-n", lab.sw, "link", "set", h.port, "master", "br0", "up")
		lab.must("-n", h.ns, "link", "set", inner, "name", "eth0")
		lab.must("-n", h.ns, "addr", "add", h.addr.String()+"/24", "dev", "eth0")
		lab.must("-n", h.ns, "link", "set", "eth0", "up")
		lab.must("-n", h.ns, "link", "set", "lo", "up")
		lab.hosts = append(lab.hosts, h)
	}
	return lab
}

func (lab *netLab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (lab *netLab) must(args ...string) {
	lab.t.Helper()
	if err := lab.ip(args...); err != nil {
		lab.t.Fatal(err)
	}
}

func (lab *netLab) remove() {
	for _, h := range lab.hosts {
		lab.ip("netns", "del", h.ns)
	}
	lab.ip("netns", "del", lab.sw)
}

// cut takes the host's link down at the bridge: it can reach no other host.
func (h *labHost) cut() { h.lab.must("-n", h.lab.sw, "link", "set", h.port, "down") }

// heal brings the link back.
func (h *labHost) heal() { h.lab.must("-n", h.lab.sw, "link", "set", h.port, "up") }

// start runs bin inside the host's namespace, owned by the test.
func (h *labHost) start(name, bin string, args ...string) *proc {
	return startProc(h.lab.t, name, "ip", append([]string{"netns", "exec", h.ns, bin}, args...)...)
}

// dial opens a connection from inside the host's namespace: the socket is
// made on a thread switched into it (the thread is discarded afterwards).
func (h *labHost) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/var/run/netns/" + h.ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", h.ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// client is an API client whose connections start inside the host.
func (h *labHost) client(url string) *api.Client {
	tr := &http.Transport{DialContext: h.dial, DisableKeepAlives: true}
	c, err := api.NewClient([]string{url}, api.WithHTTPClient(&http.Client{Transport: tr, Timeout: 2 * time.Second}))
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return c
}

// startEtcdCluster runs one Debian etcd member on each host.
func (lab *netLab) startEtcdCluster(hosts []*labHost) []string {
	lab.t.Helper()
	bin := testenv.LookPath(lab.t, "etcd", "etcd-server")
	var peers, clients []string
	for _, h := range hosts {
		peers = append(peers, fmt.Sprintf("e%d=http://%s:2380", h.n, h.addr))
		clients = append(clients, fmt.Sprintf("http://%s:2379", h.addr))
	}
	lab.etcd, lab.etcdArgs = map[int]*proc{}, map[int][]string{}
	for i, h := range hosts {
		data := lab.t.TempDir()
		if lab.etcdOnTmpfs {
			d, err := os.MkdirTemp("/dev/shm", lab.prefix+"-etcd-")
			if err != nil {
				lab.t.Fatalf("etcd data on tmpfs: %v", err)
			}
			lab.t.Cleanup(func() { os.RemoveAll(d) })
			data = d
		}
		args := []string{bin,
			"--name", fmt.Sprintf("e%d", h.n), "--data-dir", data,
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", fmt.Sprintf("http://%s:2380", h.addr), "--initial-advertise-peer-urls", fmt.Sprintf("http://%s:2380", h.addr),
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--heartbeat-interval", "20", "--election-timeout", "100",
			// As operations.md advises (etcd 3.5's default): a member cut off
			// and healed does not force a second election.
			"--pre-vote"}
		lab.etcdArgs[h.n] = args
		lab.etcd[h.n] = h.start(fmt.Sprintf("etcd-%d", h.n), args[0], args[1:]...)
	}
	return clients
}

// restartEtcd starts host h's etcd member again on its data.
func (lab *netLab) restartEtcd(h *labHost) {
	args := lab.etcdArgs[h.n]
	lab.etcd[h.n] = h.start(fmt.Sprintf("etcd-%d-again", h.n), args[0], args[1:]...)
}

// etcdLeader returns the host whose etcd member leads, asking the members
// in turn from inside their hosts.
func (lab *netLab) etcdLeader(hosts []*labHost) *labHost {
	lab.t.Helper()
	type status struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	ids := map[string]*labHost{}
	var leader string
	for _, h := range hosts {
		tr := &http.Transport{DialContext: h.dial, DisableKeepAlives: true}
		hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		resp, err := hc.Post(fmt.Sprintf("http://%s:2379/v3/maintenance/status", h.addr), "application/json", strings.NewReader("{}"))
		if err != nil {
			continue
		}
		var st status
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		ids[st.Header.MemberID] = h
		if st.Leader != "" {
			leader = st.Leader
		}
	}
	if h := ids[leader]; h != nil {
		return h
	}
	lab.t.Fatalf("no etcd leader found among %d members (%v)", len(hosts), leader)
	return nil
}

var anyHTTPAddrRE = regexpMust(`seamark server running.* http=(\d+\.\d+\.\d+\.\d+:\d+)`)
