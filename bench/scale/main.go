// Command scale measures what one change costs as the registry grows: for
// each size it starts a fresh seamark server (a child process, so its memory
// is its own), registers N nodes (check none, addresses in 127.50.0.0/16:
// nothing probes them) with 64 clients, runs 100 changes/s of background
// churn (re-registrations at new addresses), and prints one row:
//
//   - write→DNS p50/p99: a new node registered through the API, then its
//     <id>.node.<zone> name polled over UDP until it answers; beside it
//     the p99 of its two parts: the API write (answered once the server's
//     snapshot shows it) and from that answer until DNS answers; and the
//     embedded etcd's WAL fsyncs meanwhile (p99 and max, bucket bounds of
//     its own histogram), which is where a write's tail comes from on a
//     shared disk;
//
//   - registrations/s with 64 clients (while the N nodes are registered);
//
//   - RSS per node: the server's resident memory above the empty server,
//     divided by N;
//
//   - snapshot build: the mean of the registry's and the DNS table's build
//     times during the churn (the servers' own histograms);
//
//   - DNS QPS: 8 UDP clients asking node names one after the other;
//
//   - restart: the server stopped and started again on the same data:
//     the time until DNS answers for all N nodes;
//
//   - SIGTERM → exit: how long the server took to stop (after the churn,
//     with the N nodes registered).
//
//     go run ./bench/scale [-sizes 1000,10000,100000] [-samples 200]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/bench/internal/procstat"
)

const zone = "scale.test."

func main() {
	sizes := flag.String("sizes", "1000,10000,100000", "registry sizes, comma-separated")
	samples := flag.Int("samples", 200, "write→DNS samples per size")
	churn := flag.Int("churn", 100, "background changes per second")
	clients := flag.Int("c", 64, "concurrent registration clients")
	bin := flag.String("bin", "", "seamark binary (default: built from this tree)")
	keep := flag.Bool("keep", false, "keep the servers' data directories (printed) for a look at restarts")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "seamark-scale-")
	if err != nil {
		log.Fatal(err)
	}
	if *keep {
		fmt.Println("data under", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if *bin == "" {
		*bin = filepath.Join(tmp, "seamark")
		out, err := exec.Command("go", "build", "-o", *bin, "./cmd/seamark").CombinedOutput()
		if err != nil {
			log.Fatalf("go build: %v\n%s", err, out)
		}
	}
	fmt.Printf("seamark scale benchmark, %s, %s/%s, %d cores, %d registration clients, %d changes/s churn\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *clients, *churn)
	fmt.Println("| nodes | write→DNS p50 | write→DNS p99 | p99 of API write / answer→DNS | etcd WAL fsync p99 / max | registrations/s | RSS/node | snapshot build (registry + DNS) | DNS QPS | restart → DNS answers all | SIGTERM → exit |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("size %q: %v", f, err)
		}
		r, err := runSize(*bin, filepath.Join(tmp, f), n, *samples, *churn, *clients)
		if err != nil {
			log.Fatalf("%d nodes: %v", n, err)
		}
		fmt.Println(r)
	}
}

// server is one seamark child process.
type server struct {
	cmd       *exec.Cmd
	http, dns string
	etcd      atomic.Value // the embedded etcd's client URL, a string
	done      chan struct{}
}

var (
	running    = regexp.MustCompile(`seamark server running.*http=(\S+) dns=(\S+)`)
	storeReady = regexp.MustCompile(`store ready.*endpoints=(\S+)`)
)

func start(bin, dir string) (*server, error) {
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg, []byte("zones: ["+zone+"]\ndns: {rate_limit: {disabled: true}}\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "server", "--config", cfg, "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0")
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	found := make(chan []string, 1)
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := storeReady.FindStringSubmatch(sc.Text()); m != nil {
				s.etcd.Store(strings.Trim(m[1], `"`))
			}
			if m := running.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	select {
	case m := <-found:
		s.http, s.dns = strings.Trim(m[1], `"`), strings.Trim(m[2], `"`)
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("seamark exited before it ran")
	case <-time.After(120 * time.Second):
		s.stop()
		return nil, fmt.Errorf("seamark did not start in 120 s")
	}
}

// stop sends SIGTERM and waits (SIGQUIT after 20 s, then SIGKILL); it returns
// how long the server took to exit, or 0 when it had to be killed.
func (s *server) stop() time.Duration {
	t0 := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return time.Since(t0)
	case <-time.After(20 * time.Second):
		// SIGQUIT makes the Go runtime print every goroutine (to the
		// server.log beside its data) and exit.
		log.Printf("seamark (pid %d) did not exit within 20 s of SIGTERM: SIGQUIT, stacks in server.log", s.cmd.Process.Pid)
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.done:
			return 0
		case <-time.After(5 * time.Second):
		}
		s.cmd.Process.Kill()
		<-s.done
		return 0
	}
}

func (s *server) rss() uint64 { return procstat.RSS(strconv.Itoa(s.cmd.Process.Pid)) }

// addr is node i's address: 127.50.0.0/16, repeating past 65 536 nodes
// (check none: nothing probes them, and nothing has to be unique).
func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 50, byte(i >> 8), byte(i)}) }

func nodeName(id string) string { return id + ".node." + zone }

// resolves asks name A over UDP until it answers want (or any address when
// want is invalid), or until the deadline.
func resolves(c *dns.Client, conn *dns.Conn, name string, want netip.Addr, deadline time.Time) bool {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	for time.Now().Before(deadline) {
		q.Id = dns.Id()
		r, _, err := c.ExchangeWithConn(q, conn)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					got, _ := netip.AddrFromSlice(a.A)
					if !want.IsValid() || got.Unmap() == want {
						return true
					}
				}
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	return false
}

func dial(addr string) (*dns.Client, *dns.Conn, error) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(addr)
	return c, conn, err
}

func runSize(bin, dir string, n, samples, churn, clients int) (string, error) {
	ctx := context.Background()
	s, err := start(bin, dir)
	if err != nil {
		return "", err
	}
	restarted := false
	defer func() {
		if s == nil {
			return
		}
		d := s.stop()
		if restarted {
			log.Printf("%d nodes: the restarted server stopped in %s after SIGTERM (0: killed)", n, fmtD(d))
		}
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	c, err := api.NewClient([]string{"http://" + s.http}, api.WithHTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}))
	if err != nil {
		return "", err
	}
	if _, err := c.CreateService(ctx, api.Service{Name: "web", Port: 80, Check: api.Check{Type: api.CheckNone}}); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second)
	empty := s.rss()

	// Register N nodes with the clients.
	var next atomic.Int64
	var errs, retries atomic.Int64
	var lastErr atomic.Value
	t0 := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := register(ctx, c, api.Node{ID: fmt.Sprintf("n%06d", i), Service: "web", Address: addr(i)}, &retries); err != nil {
					errs.Add(1)
					lastErr.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	regRate := float64(n) / time.Since(t0).Seconds()
	if e := errs.Load(); e > 0 {
		return "", fmt.Errorf("%d registrations failed after 5 tries each; the last: %v", e, lastErr.Load())
	}
	if r := retries.Load(); r > 0 {
		log.Printf("%d nodes: %d registrations were tried again (503 while the store was slow)", n, r)
	}
	dc, conn, err := dial(s.dns)
	if err != nil {
		return "", err
	}
	if !resolves(dc, conn, nodeName(fmt.Sprintf("n%06d", n-1)), addr(n-1), time.Now().Add(30*time.Second)) {
		return "", fmt.Errorf("the last node never answered")
	}

	// Background churn.
	cctx, stopChurn := context.WithCancel(ctx)
	defer stopChurn()
	var churnWG sync.WaitGroup
	churnWG.Add(1)
	go func() {
		defer churnWG.Done()
		tick := time.NewTicker(time.Second / time.Duration(churn))
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-cctx.Done():
				return
			case <-tick.C:
			}
			i := rand.IntN(n)
			go c.Register(cctx, api.Node{ID: fmt.Sprintf("n%06d", i), Service: "web", Address: addr(i + k + 1)})
		}
	}()
	time.Sleep(time.Second)
	reg0, dns0 := buildTimes(s)

	// write → DNS: a new node each time, 20 per second.
	// Each sample is split in two: the API write (answered once the
	// server's snapshot shows it) and from its answer to DNS answering.
	var lat, write, toDNS []time.Duration
	fsync0 := s.etcdHist("etcd_disk_wal_fsync_duration_seconds")
	for k := range samples {
		id := fmt.Sprintf("w%06d", k)
		a := addr(k + 7)
		t := time.Now()
		if _, err := c.Register(ctx, api.Node{ID: id, Service: "web", Address: a}); err != nil {
			continue // a 503 under load: not a sample of write→DNS
		}
		tw := time.Now()
		if !resolves(dc, conn, nodeName(id), a, time.Now().Add(5*time.Second)) {
			return "", fmt.Errorf("%s never answered", id)
		}
		lat = append(lat, time.Since(t))
		write, toDNS = append(write, tw.Sub(t)), append(toDNS, time.Since(tw))
		time.Sleep(50 * time.Millisecond)
	}
	split := fmt.Sprintf("%s / %s", fmtD(pctl(write, 0.99)), fmtD(pctl(toDNS, 0.99)))
	fsync := "-"
	if fs := s.etcdHist("etcd_disk_wal_fsync_duration_seconds").since(fsync0); fs.n > 0 {
		fsync = fmt.Sprintf("%s / %s", fmtD(fs.q(0.99)), fmtD(fs.q(1)))
	}
	reg1, dns1 := buildTimes(s)
	qps := dnsQPS(s.dns, n, 3*time.Second)
	stopChurn()
	churnWG.Wait()
	time.Sleep(3 * time.Second)
	full := s.rss()
	perNode := (float64(full) - float64(empty)) / float64(n)
	conn.Close()

	// Restart on the same data: until DNS answers for all of them (one
	// snapshot holds them all; 200 random ones are asked to check).
	stopped := "killed after 20 s"
	if d := s.stop(); d > 0 {
		stopped = fmtD(d)
	}
	t1 := time.Now()
	s2, err := start(bin, dir)
	if err != nil {
		s = nil
		return "", err
	}
	s, restarted = s2, true
	dc, conn, err = dial(s.dns)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	restart := "-"
	if resolves(dc, conn, nodeName(fmt.Sprintf("n%06d", n-1)), netip.Addr{}, time.Now().Add(60*time.Second)) {
		ok := true
		for range 200 {
			if !resolves(dc, conn, nodeName(fmt.Sprintf("n%06d", rand.IntN(n))), netip.Addr{}, time.Now().Add(5*time.Second)) {
				ok = false
			}
		}
		if ok {
			restart = fmtD(time.Since(t1))
		}
	}

	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*q))] }
	build := fmt.Sprintf("%s + %s", fmtMean(reg0, reg1), fmtMean(dns0, dns1))
	return fmt.Sprintf("| %d | %s | %s | %s | %s | %.0f | %.0f B | %s | %.0f | %s | %s |", n, fmtD(p(0.5)), fmtD(p(0.99)), split, fsync, regRate, perNode, build, qps, restart, stopped), nil
}

// pctl returns the q-quantile of ds (sorting it).
func pctl(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*q))]
}

// register registers n, trying again (up to 5 times) when the server
// answers 503 or does not answer, as a client should.
func register(ctx context.Context, c *api.Client, n api.Node, retries *atomic.Int64) error {
	var err error
	for try := range 5 {
		if try > 0 {
			retries.Add(1)
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		if _, err = c.Register(ctx, n); err == nil {
			return nil
		}
	}
	return err
}

// buckets is a Prometheus histogram: cumulative counts by upper bound.
type buckets struct {
	le []float64
	c  []float64
	n  float64
}

// etcdHist reads histogram name from the embedded etcd's /metrics.
func (s *server) etcdHist(name string) buckets {
	var b buckets
	u, _ := s.etcd.Load().(string)
	if u == "" {
		return b
	}
	resp, err := http.Get(u + "/metrics")
	if err != nil {
		return b
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{le=\"") {
			continue
		}
		rest := strings.TrimPrefix(line, name+"_bucket{le=\"")
		le, count, ok := strings.Cut(rest, "\"} ")
		if !ok {
			continue
		}
		l, err1 := strconv.ParseFloat(le, 64)
		c, err2 := strconv.ParseFloat(count, 64)
		if err1 == nil && err2 == nil {
			b.le, b.c = append(b.le, l), append(b.c, c)
			b.n = c
		}
	}
	return b
}

// since is b minus an earlier reading a.
func (b buckets) since(a buckets) buckets {
	if len(a.c) != len(b.c) {
		return b
	}
	out := buckets{le: b.le, c: make([]float64, len(b.c)), n: b.n - a.n}
	for i := range b.c {
		out.c[i] = b.c[i] - a.c[i]
	}
	return out
}

// q is the upper bound of the bucket holding quantile p.
func (b buckets) q(p float64) time.Duration {
	for i, c := range b.c {
		if c >= p*b.n {
			if math.IsInf(b.le[i], 1) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(b.le[i] * float64(time.Second))
		}
	}
	return 0
}

// hist is a histogram's sum and count.
type hist struct{ sum, count float64 }

func fmtMean(a, b hist) string {
	if b.count <= a.count {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", (b.sum-a.sum)/(b.count-a.count)*1000)
}

// buildTimes reads the server's snapshot and DNS table build histograms.
func buildTimes(s *server) (reg, dnsT hist) {
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "seamark_snapshot_build_seconds_sum":
			reg.sum = v
		case "seamark_snapshot_build_seconds_count":
			reg.count = v
		case "seamark_dns_table_build_seconds_sum":
			dnsT.sum = v
		case "seamark_dns_table_build_seconds_count":
			dnsT.count = v
		}
	}
	return
}

// dnsQPS runs 8 UDP clients asking random node names, one query in flight
// each, for d, and returns answers per second.
func dnsQPS(addr string, n int, d time.Duration) float64 {
	var total atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, conn, err := dial(addr)
			if err != nil {
				return
			}
			defer conn.Close()
			q := new(dns.Msg)
			for time.Now().Before(deadline) {
				q.SetQuestion(nodeName(fmt.Sprintf("n%06d", rand.IntN(n))), dns.TypeA)
				if r, _, err := c.ExchangeWithConn(q, conn); err == nil && r.Rcode == dns.RcodeSuccess {
					total.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(total.Load()) / d.Seconds()
}

func fmtD(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
