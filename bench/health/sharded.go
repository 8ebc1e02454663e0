package main

// -servers N: sharded checks (issue 18). N real `seamark server` processes
// (built from this module) on one external etcd (Debian's etcd-server) share
// the n targets: each probes the ones rendezvous hashing places on it
// (check.replicas owners per node). The bench measures each server's CPU
// and probes over -d, then kills one with SIGKILL and reports how long until
// every node it probed has a verdict of a new owner, whether any node left
// the healthy set on the way (this process follows every snapshot) and how
// many health events were logged.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
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

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// benchServer is one `seamark server` child.
type benchServer struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

var httpRE = regexp.MustCompile(`seamark server running.* http=(127\.0\.0\.1:\d+)`)

func startBenchServer(bin, name, etcd string, leaseTTL time.Duration) (*benchServer, error) {
	cmd := exec.Command(bin, "server", "--etcd-endpoints", etcd, "--name", name, "--balancer=false",
		"--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--checker-lease-ttl", leaseTTL.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &benchServer{name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := httpRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case a := <-addr:
		s.url = "http://" + a
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("server %s exited at start", name)
	case <-time.After(60 * time.Second):
		s.kill()
		return nil, fmt.Errorf("server %s did not report its address within 60s", name)
	}
}

func (s *benchServer) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// metric reads one unlabelled metric, or the sum of a labelled one's series.
func (s *benchServer) metric(name string) float64 { return s.metricWith(name, "") }

// metricWith is metric over the series whose line contains label.
func (s *benchServer) metricWith(name, label string) float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') || !strings.Contains(line, label) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// startBenchEtcd runs Debian's etcd with fast ticks (a 1 s lease is
// honoured) in dir.
func startBenchEtcd(dir string) (url string, stop func(), err error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return "", nil, errors.New("etcd is not installed (apt-get install -y etcd-server)")
	}
	client, peer := freePort(), freePort()
	url = fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(bin, "--name", "bench", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "bench="+pu, "--heartbeat-interval", "20", "--election-timeout", "100",
		"--quota-backend-bytes", strconv.Itoa(4<<30))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done }
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, stop, nil
			}
		}
	}
	stop()
	b, _ := os.ReadFile(logf.Name())
	return "", nil, fmt.Errorf("etcd not healthy within 20s:\n%s", tailLines(string(b), 10))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// wildTargets serves every target address with one listener on 0.0.0.0,
// which on lo answers any 127/8 address: targets beyond the open-file
// limit. Only inside a network namespace whose one interface is lo (run
// under `unshare -n`), so the port is open to nothing but this machine's
// own namespace.
type wildTargets struct {
	l    net.Listener
	port int
}

func startWildTargets() (*wildTargets, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return nil, fmt.Errorf("-wildcard listens on 0.0.0.0: run it in a network namespace with lo alone (unshare -n sh -c 'ip link set lo up; go run ./bench/health ...'); this one has %s", i.Name)
		}
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
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
	return &wildTargets{l: l, port: l.Addr().(*net.TCPAddr).Port}, nil
}

// wideAddr is target i's address with -wildcard: 127.1.x.y, then 127.2.x.y.
func wideAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + i/maxTargets), byte(i % maxTargets / 254), byte(i%254 + 1)})
}

func runSharded(ctx context.Context, n, servers, replicas int, dur, leaseTTL time.Duration, wildcard bool) error {
	soft, hard, err := raiseNoFile()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "seamark-bench-sharded-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("## Sharded health checks: %d TCP targets at 1 s on %d servers, replicas %d\n\n", n, servers, replicas)
	fmt.Printf("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("- machine: %d cores, kernel %s; open-file limit soft %d hard %d\n", runtimeCores(), kernel(), soft, hard)
	fmt.Printf("- check: tcp, interval 1s, timeout 1s, rise 2, fall 2, replicas %d; checker lease %v\n", replicas, leaseTTL)

	log.Printf("building seamark")
	bin := filepath.Join(dir, "seamark")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/seamark").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/seamark (run from the module root): %v\n%s", err, out)
	}
	etcd, stopEtcd, err := startBenchEtcd(dir)
	if err != nil {
		return err
	}
	defer stopEtcd()
	var port int
	addr := targetAddr
	if wildcard {
		wt, err := startWildTargets()
		if err != nil {
			return err
		}
		defer wt.l.Close()
		port, addr = wt.port, wideAddr
		fmt.Printf("- targets: %d addresses 127.1.0.1–%s port %d, one listener on 0.0.0.0 in this network namespace (lo only)\n", n, wideAddr(n-1), port)
	} else {
		log.Printf("starting %d targets", n)
		tg, err := startTargets(n, 2*time.Minute)
		if err != nil {
			return err
		}
		defer tg.close()
		port = tg.port
		fmt.Printf("- targets: %d listeners %s–%s port %d, in a child process\n", n, targetAddr(0), targetAddr(n-1), port)
	}

	st, err := store.Open(ctx, store.Options{Endpoints: []string{etcd}})
	if err != nil {
		return err
	}
	defer st.Close()
	w := registry.NewWatcher(st, nil)
	wctx, stopWatcher := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() { defer close(watcherDone); w.Run(wctx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	<-w.Ready()

	svc := api.Service{Name: serviceName, Port: port, Source: api.SourceAPI,
		Check: api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(time.Second), Rise: 2, Fall: 2, Replicas: replicas}}
	svc.SetDefaults()
	if _, err := st.PutService(ctx, svc, false); err != nil {
		return err
	}
	log.Printf("writing %d nodes", n)
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 32 {
				nd := api.Node{ID: fmt.Sprintf("n%05d", i), Service: svc.Name, Address: addr(i), Source: api.SourceAPI}
				nd.SetDefaults()
				if _, _, err := st.PutNode(ctx, nd, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if _, err := waitSnapshot(ctx, w, 2*time.Minute, func(v *registry.ServiceView) bool { return v.NodeCount() == n }); err != nil {
		return err
	}
	log.Printf("%d nodes written in %v; starting %d servers", n, time.Since(t0).Round(time.Millisecond), servers)

	var srvs []*benchServer
	var names []string
	defer func() {
		for _, s := range srvs {
			select {
			case <-s.done:
			default:
				s.kill()
			}
		}
	}()
	tStart := time.Now()
	for i := range servers {
		s, err := startBenchServer(bin, fmt.Sprintf("s%d", i+1), etcd, leaseTTL)
		if err != nil {
			return err
		}
		srvs, names = append(srvs, s), append(names, s.name)
	}
	upNote := ""
	if _, err := waitSnapshot(ctx, w, 5*time.Minute, func(v *registry.ServiceView) bool { return v.HealthyCount() == n }); err != nil {
		// Measure anyway: what the machine can do is the finding.
		upNote = fmt.Sprintf(" NOT ALL: %v", err)
		log.Printf("not all healthy: %v; measuring anyway", err)
	}
	upTook := time.Since(tStart)
	if upNote == "" {
		if err := waitQuiet(ctx, w, 3*time.Second, 5*time.Minute); err != nil {
			return err
		}
	}
	k := min(replicas, servers)
	log.Printf("all %d healthy after %v; measuring %v", n, upTook.Round(time.Millisecond), dur)

	type sample struct {
		cpu            cpuTime
		probes, failed float64
	}
	take := func() []sample {
		var out []sample
		for _, s := range srvs {
			out = append(out, sample{procCPU(s.cmd.Process.Pid), s.metric("seamark_health_probes_total"), s.metricWith("seamark_health_probes_total", `result="failed"`)})
		}
		return out
	}
	s0, busy0, w0 := take(), machineBusy(), time.Now()
	if err := sleep(ctx, dur); err != nil {
		return err
	}
	s1, busy1 := take(), machineBusy()
	wall := time.Since(w0)
	fmt.Printf("- %d nodes healthy %s after the servers started (rise 2, every owner's verdict written)%s\n\n", n, fmtSec(upTook), upNote)
	fmt.Println("| server | targets owned | probes/s | failed probes/s | share of all probes | CPU, % of one core | CPU per probe | RSS |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	var total float64
	for i := range srvs {
		total += s1[i].probes - s0[i].probes
	}
	var ours float64
	for i, s := range srvs {
		pr := s1[i].probes - s0[i].probes
		cpu := cpuPct(s1[i].cpu.total()-s0[i].cpu.total(), wall)
		ours += cpu
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.1f %% | %.1f %% | %s | %s |\n", s.name, s.metric("seamark_health_targets_owned"),
			pr/wall.Seconds(), (s1[i].failed-s0[i].failed)/wall.Seconds(), 100*pr/total, cpu, fmtUs(perCheck(cpu, wall, uint64(pr))), fmtMB(procRSS(strconv.Itoa(s.cmd.Process.Pid))))
	}
	fmt.Printf("\n- all servers: %.0f probes/s (%d targets × %d owners = %d expected); machine during the phase: %s\n",
		total/wall.Seconds(), n, k, n*k, others(busy0, busy1, wall, ours))

	// Kill the last server; follow every snapshot.
	victim := srvs[len(srvs)-1]
	var cs []api.Checker
	for _, nm := range names {
		cs = append(cs, api.Checker{ID: nm})
	}
	place := registry.NewPlacement(cs)
	orphans := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("n%05d", i)
		if place.Owns(victim.name, registry.NodeKey(serviceName, id), k) {
			orphans[id] = true
		}
	}
	before := w.Current()
	var lastEvent int64
	for _, e := range before.Events() {
		lastEvent = max(lastEvent, e.Revision)
	}
	// Every SYN to the targets from here on: the first probe of each
	// after the kill (kernel timestamps).
	firstSYN := make([]atomic.Int64, n)
	synFD, synErr := synSocket(port)
	killed := time.Now()
	if synErr == nil {
		from := killed.Add(100 * time.Millisecond).UnixNano()
		go func() {
			buf, oob := make([]byte, 128), make([]byte, 128)
			for {
				dst, ts, ok, err := readSYN(synFD, buf, oob)
				if err != nil && err != syscall.EINTR {
					return
				}
				if !ok || dst[0] != 127 || dst[1] < 1 || dst[3] == 0 || dst[3] == 255 || ts < from {
					continue
				}
				if i := int(dst[1]-1)*maxTargets + int(dst[2])*254 + int(dst[3]) - 1; i < n {
					firstSYN[i].CompareAndSwap(0, ts)
				}
			}
		}()
	} else {
		log.Printf("no SYN capture (%v): only verdicts are timed", synErr)
	}
	log.Printf("killing %s (owner of %d targets)", victim.name, len(orphans))
	killed = time.Now()
	victim.kill()
	var expired, covered time.Time
	falls := map[string]bool{}
	s := before
	for covered.IsZero() {
		select {
		case <-w.Next(s):
		case <-time.After(30 * time.Second):
			return fmt.Errorf("no snapshot for 30s after the kill")
		case <-ctx.Done():
			return ctx.Err()
		}
		s = w.Current()
		if expired.IsZero() && !slices.ContainsFunc(s.Checkers(), func(c api.Checker) bool { return c.ID == victim.name }) {
			expired = time.Now()
		}
		v, _ := s.Service(serviceName)
		left := 0
		for _, nd := range v.Nodes() {
			if !nd.Healthy {
				if len(falls) == 0 {
					var live []string
					for _, c := range s.Checkers() {
						live = append(live, c.ID)
					}
					log.Printf("first node out at revision %d, %v after the kill: %s checks %+v held %v; live checkers %v; %d of %d nodes healthy",
						s.Revision, time.Since(killed).Round(time.Millisecond), nd.ID, nd.Checks, nd.Held, live, v.HealthyCount(), v.NodeCount())
				}
				falls[nd.ID] = true
			}
			if orphans[nd.ID] && (nd.Held || len(nd.Checks) < min(k, servers-1)) {
				left++
			}
		}
		if !expired.IsZero() && left == 0 {
			covered = time.Now()
		}
		if time.Since(killed) > 2*time.Minute {
			return fmt.Errorf("%d of %s's targets still without a new owner's verdict 2 min after the kill", left, victim.name)
		}
	}
	if err := waitQuiet(ctx, w, 2*time.Second, time.Minute); err != nil {
		return err
	}
	probedRow := "no SYN capture: " + fmt.Sprint(synErr)
	if synErr == nil {
		syscall.Close(synFD)
		var last int64
		unseen := 0
		for i := range n {
			if !orphans[fmt.Sprintf("n%05d", i)] {
				continue
			}
			ts := firstSYN[i].Load()
			if ts == 0 {
				unseen++
			}
			last = max(last, ts)
		}
		at := time.Unix(0, last)
		probedRow = fmt.Sprintf("%s after the kill, **%s after the lease expired** (%d never seen: capture drops)", fmtMs(at.Sub(killed)), fmtMs(at.Sub(expired)), unseen)
	}
	events := 0
	for _, e := range w.Current().Events() {
		if e.Revision > lastEvent && e.Kind == api.EventHealth {
			events++
		}
	}
	fmt.Printf("\n| kill -9 of %s (owner of %d targets) | |\n|---|---|\n", victim.name, len(orphans))
	fmt.Printf("| its checker gone from the snapshot (lease %v expired) | %s after the kill |\n", leaseTTL, fmtMs(expired.Sub(killed)))
	fmt.Printf("| every one of its targets probed again (first SYN on lo, kernel time) | %s |\n", probedRow)
	fmt.Printf("| every one of its targets has a verdict from a new owner (probed, written, in the snapshot) | %s after the kill, %s after the lease expired |\n",
		fmtMs(covered.Sub(killed)), fmtMs(covered.Sub(expired)))
	fmt.Printf("| nodes seen out of the healthy set in any snapshot | %d |\n", len(falls))
	fmt.Printf("| health events logged after the kill | %d |\n", events)
	var after []string
	for _, sv := range srvs[:len(srvs)-1] {
		after = append(after, fmt.Sprintf("%s %.0f", sv.name, sv.metric("seamark_health_targets_owned")))
	}
	fmt.Printf("| targets owned after | %s |\n", strings.Join(after, ", "))
	return nil
}

func runtimeCores() int { return runtime.NumCPU() }
