// Command health measures what seamark's health checker costs with thousands
// of TCP targets at a 1 s interval (CPU, probe spacing and lateness, memory),
// side by side with HAProxy checking the same targets with the same settings,
// and prints the ratio.
//
//	go run ./bench/health [-n 10000] [-d 30s] [-cpuprofile cpu.out] [-dialer ...]
//	go run ./bench/health -servers 3 [-replicas 1] [-n 10000] [-d 30s]
//	unshare -n -- sh -c 'ip link set lo up && go run ./bench/health -servers 3 -n 100000 -wildcard'
//
// With -servers, sharded checks (sharded.go): real `seamark server`
// processes share the targets; each one's CPU is measured, then one is
// killed with SIGKILL. -wildcard serves every target with one listener on
// 0.0.0.0, for more targets than descriptors, in a network namespace only.
//
// The targets are n listeners on 127.1.x.y with one common port, served by a
// child process (this binary run again), so their CPU and descriptors count
// for neither side. The child also watches every SYN to that port on lo (a
// packet socket with a BPF filter, kernel timestamps), which shows how evenly
// each checker spaces its probes, measured the same way for both. The phases
// run one after the other, so the two checkers never compete for the cores: a
// baseline (embedded store and registry watcher holding the n nodes, no
// checker), the seamark checker (health.Checker with the real NetProber, in
// this process), then HAProxy (nbthread 2, one backend of the n servers, no
// frontend traffic).
//
// -dialer is an experiment, not a benchmark of seamark as shipped: it gives
// NetProber another dialer to show what the probe's socket options cost.
// -epoll-only is one too: on loopback a connect's handshake is over when
// connect returns, and seamark (like HAProxy) asks so at once; with it every
// probe waits for its connect through seamark's epoll loop instead, the
// path a probe across a network takes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/bench/internal/procstat"
	"github.com/seamark/seamark/internal/health"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

const serviceName = "bench"

func main() {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		serveTargets(os.Args[2:])
		return
	}
	n := flag.Int("n", 10000, "number of TCP targets")
	dur := flag.Duration("d", 30*time.Second, "measuring time of each checker")
	base := flag.Duration("baseline", 5*time.Second, "measuring time of the baseline (store and watcher, no checker)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the seamark measuring phase here")
	dialer := flag.String("dialer", "", "experiment: give NetProber another dialer, options comma-separated: keepalive-off, quickack-off (as HAProxy: the target never sees the connection), no-ctx (deadline instead of a context, so no watcher goroutine); empty: NetProber as shipped")
	servers := flag.Int("servers", 0, "sharded mode (issue 18): run this many `seamark server` processes on one etcd (Debian's etcd-server) sharing the targets, measure each one's CPU, then kill -9 one (no HAProxy phase)")
	replicas := flag.Int("replicas", 1, "with -servers: check.replicas, the owners of each target")
	leaseTTL := flag.Duration("lease", time.Second, "with -servers: the servers' checker lease (--checker-lease-ttl)")
	wildcard := flag.Bool("wildcard", false, "with -servers: serve every target with one listener on 0.0.0.0 (any 127/8 address), for more targets than descriptors; only in a network namespace with lo alone (unshare -n)")
	epollOnly := flag.Bool("epoll-only", false, "experiment: every seamark probe ends its connect through the epoll loop (health.NetProber.EpollOnly), as a probe across a network does, instead of asking right after connect")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench/health: ")
	if limit := map[bool]int{false: maxTargets, true: 2 * maxTargets}[*wildcard]; *n < 1 || *n > limit {
		log.Fatalf("-n %d: want 1..%d (addresses 127.1.x.y, with -wildcard 127.2.x.y too)", *n, limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	dial, err := experimentalDial(*dialer)
	if err != nil {
		log.Fatal(err)
	}
	if *servers > 0 {
		err = runSharded(ctx, *n, *servers, *replicas, *dur, *leaseTTL, *wildcard)
	} else {
		err = run(ctx, *n, *dur, *base, *cpuprofile, dial, *dialer, *epollOnly)
	}
	stop()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// experimentalDial builds the dialer of the -dialer experiment, or nil.
func experimentalDial(opts string) (dialFunc, error) {
	if opts == "" {
		return nil, nil
	}
	var d net.Dialer
	noCtx := false
	for _, o := range strings.Split(opts, ",") {
		switch strings.TrimSpace(o) {
		case "keepalive-off":
			d.KeepAlive = -1
		case "quickack-off":
			d.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
				})
				return errors.Join(err, serr)
			}
		case "no-ctx":
			noCtx = true
		default:
			return nil, fmt.Errorf("-dialer: unknown option %q (want keepalive-off, quickack-off, no-ctx)", o)
		}
	}
	if !noCtx {
		return d.DialContext, nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dd := d
		if dl, ok := ctx.Deadline(); ok {
			dd.Deadline = dl
		}
		return dd.DialContext(context.Background(), network, addr)
	}, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

func run(ctx context.Context, n int, dur, baseDur time.Duration, cpuprofile string, dial dialFunc, dialDesc string, epollOnly bool) error {
	soft, hard, err := raiseNoFile()
	if err != nil {
		return err
	}
	hpath, hversion, herr := haproxyVersion()
	if herr != nil {
		hversion = "skipped: " + herr.Error()
	}
	fmt.Printf("## Health checks: %d TCP targets at 1 s, seamark vs HAProxy\n\n", n)
	fmt.Printf("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("- machine: %s/%s, %d cores (GOMAXPROCS %d), kernel %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), kernel())
	fmt.Printf("- Go: %s\n", runtime.Version())
	fmt.Printf("- peer: %s\n", hversion)
	fmt.Printf("- open-file limit: soft %d, hard %d (raised soft to hard in every process)\n", soft, hard)
	if need := uint64(n) + 200; hard < need {
		fmt.Printf("- WARNING: %d targets need about %d descriptors in the targets process; the hard limit is %d\n", n, need, hard)
	}

	dir, err := os.MkdirTemp("", "seamark-bench-health-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	log.Printf("starting %d targets", n)
	tg, err := startTargets(n, 2*time.Minute)
	if err != nil {
		return err
	}
	defer tg.close()
	fmt.Printf("- check: tcp connect, interval 1s, timeout 1s, rise 2, fall 2, on both sides\n")
	switch {
	case dial != nil:
		fmt.Printf("- seamark prober: health.NetProber with an EXPERIMENTAL dialer: %s\n", dialDesc)
	case epollOnly:
		fmt.Printf("- seamark prober: health.NetProber, EXPERIMENT -epoll-only: every connect ends through the epoll loop, as across a network\n")
	default:
		fmt.Printf("- seamark prober: health.NetProber as shipped\n")
	}
	fmt.Printf("- targets: %d listeners %s–%s port %d, in a child process (pid %d) whose CPU counts for neither side\n",
		n, targetAddr(0), targetAddr(n-1), tg.port, tg.pid())
	fmt.Printf("- phases one after the other, so the checkers never share the cores: baseline %v (store + watcher, no checker), seamark %v, HAProxy %v\n\n", baseDur, dur, dur)

	// The store, the n nodes and the watcher.
	st, err := store.Open(ctx, store.Options{DataDir: filepath.Join(dir, "store"), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer st.Close()
	w := registry.NewWatcher(st, nil)
	wctx, stopWatcher := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() { defer close(watcherDone); w.Run(wctx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	select {
	case <-w.Ready():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("registry watcher: no snapshot after 30s")
	case <-ctx.Done():
		return ctx.Err()
	}

	svc := api.Service{Name: serviceName, Port: tg.port, Source: api.SourceConfig,
		Check: api.Check{Type: api.CheckTCP, Interval: api.Duration(time.Second), Timeout: api.Duration(time.Second), Rise: 2, Fall: 2}}
	svc.SetDefaults()
	desired := store.Desired{store.ServiceKey(svc.Name): &svc}
	for i := range n {
		nd := api.Node{ID: fmt.Sprintf("n%05d", i), Service: svc.Name, Address: targetAddr(i), Source: api.SourceConfig}
		nd.SetDefaults()
		desired[store.NodeKey(svc.Name, nd.ID)] = &nd
	}
	log.Printf("writing %d nodes", n)
	t0 := time.Now()
	if _, err := st.Reconcile(ctx, desired); err != nil {
		return err
	}
	if _, err := waitSnapshot(ctx, w, 2*time.Minute, func(v *registry.ServiceView) bool { return len(v.Nodes()) == n }); err != nil {
		return fmt.Errorf("nodes written but not all in the snapshot: %w", err)
	}
	writeTook := time.Since(t0)

	// Baseline: everything but the checker.
	log.Printf("baseline %v", baseDur)
	baseline, err := measureSelf(ctx, baseDur)
	if err != nil {
		return err
	}

	// seamark.
	np := &health.NetProber{Dial: dial, EpollOnly: epollOnly}
	defer np.Close()
	prober := newRecProber(np, n)
	checker := health.New(health.Options{ID: "bench", Version: "bench", Store: st, Snapshots: w, Prober: prober, Registerer: benchMetrics})
	cctx, stopChecker := context.WithCancel(ctx)
	checkerDone := make(chan error, 1)
	tc := time.Now()
	go func() { checkerDone <- checker.Run(cctx) }()
	stopped := false
	stopCheckerWait := func() {
		if stopped {
			return
		}
		stopped = true
		stopChecker()
		select {
		case <-checkerDone:
		case <-time.After(15 * time.Second):
			log.Print("checker did not stop within 15s")
		}
	}
	defer stopCheckerWait()
	log.Printf("seamark checker started; waiting for %d healthy", n)
	healthyTimeout := time.Minute + time.Duration(n)*10*time.Millisecond
	if _, err := waitSnapshot(ctx, w, healthyTimeout, func(v *registry.ServiceView) bool { return len(v.Healthy()) == n }); err != nil {
		return fmt.Errorf("seamark: not all %d targets healthy within %v: %w", n, healthyTimeout, err)
	}
	seamarkUpTook := time.Since(tc)
	// The checker writes a verdict and an event per node, one after the
	// other; measure only once the store has been quiet for 3 s.
	log.Printf("all healthy; waiting for the checker's writes to finish")
	if err := waitQuiet(ctx, w, 3*time.Second, 5*time.Minute); err != nil {
		return err
	}
	seamarkQuietTook := time.Since(tc) - 3*time.Second

	log.Printf("measuring seamark %v", dur)
	if err := tg.reset(); err != nil {
		return err
	}
	m0, err := gather()
	if err != nil {
		return err
	}
	prober.start()
	var sm selfSample
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	childCPU0, busy0 := procCPU(tg.pid()), machineBusy()
	sm, err = measureSelf(ctx, dur)
	childCPU1, busy1 := procCPU(tg.pid()), machineBusy()
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	prober.stop()
	m1, err := gather()
	if err != nil {
		return err
	}
	seamarkTargets, err := tg.stats()
	if err != nil {
		return err
	}
	healthyEnd := 0
	if v, ok := w.Current().Service(serviceName); ok {
		healthyEnd = len(v.Healthy())
	}
	seamarkChild := cpuPct(childCPU1.total()-childCPU0.total(), sm.wall)
	seamarkOthers := others(busy0, busy1, sm.wall, sm.cpuPct+seamarkChild)
	stopCheckerWait()
	// Its lease is revoked on the way out, which deletes every verdict: let
	// the store and the watcher finish that before HAProxy is measured.
	if err := waitQuiet(ctx, w, 3*time.Second, 5*time.Minute); err != nil {
		return err
	}

	// HAProxy.
	var hp *peerResult
	if herr == nil {
		log.Printf("starting HAProxy with %d servers", n)
		hp, err = runHAProxy(ctx, hpath, dir, n, tg, dur)
		if err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
	}

	// Report.
	fmt.Println("| setup | time |")
	fmt.Println("|---|---|")
	fmt.Printf("| seamark: write %d nodes (Reconcile) until all are in the snapshot | %s |\n", n, fmtSec(writeTook))
	fmt.Printf("| seamark: checker start until all %d healthy in the snapshot (rise 2, verdicts written) | %s |\n", n, fmtSec(seamarkUpTook))
	fmt.Printf("| seamark: checker start until its last write (a verdict and an event per node, in batched transactions) | %s |\n", fmtSec(seamarkQuietTook))
	if hp != nil {
		fmt.Printf("| HAProxy: start until all %d servers' last check is L4OK | %s |\n", n, fmtSec(hp.upTook))
	}
	fmt.Println()

	probes := m1.probes - m0.probes
	failed := m1.failed - m0.failed
	lat50, lat99 := m1.lateness.delta(m0.lateness).quantiles()
	own := sm.cpuPct - baseline.cpuPct
	rssOwn := int64(sm.rss) - int64(baseline.rss)
	heapOwn := int64(sm.heap) - int64(baseline.heap)
	sp50, sp99, spMean, spN := prober.sp.dev.quantile(0.5), prober.sp.dev.quantile(0.99), prober.sp.mean(), prober.sp.dev.count()
	tgt := seamarkTargets

	// HAProxy's column, and the ratios.
	h := map[string]string{}
	ratio := func(a, b float64) string {
		if hp == nil || b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	var hpUser, hpSys float64
	if hp != nil {
		hpUser, hpSys = hp.cpuPct-hp.sysPct, hp.sysPct
	}
	cpuRatio, cpuOwnRatio, memRatio, memOwnRatio, perCheckRatio := "-", "-", "-", "-", "-"
	if hp != nil {
		ht := hp.targets
		h["cpu"] = fmt.Sprintf("%.1f %%", hp.cpuPct)
		h["sys"] = fmt.Sprintf("%.1f %% / %.1f %%", hp.cpuPct-hp.sysPct, hp.sysPct)
		h["rate"] = fmt.Sprintf("%.0f (SYNs seen)", float64(ht.SYNs)/hp.wall.Seconds())
		h["failed"] = strconv.FormatUint(hp.chkfail, 10)
		h["up"] = fmt.Sprintf("%d / %d (%d L4OK)", hp.end.up, hp.end.servers, hp.end.checked)
		h["mean"] = fmtMs(ht.Mean)
		h["p50"], h["p99"] = fmtMs(ht.P50), fmtMs(ht.P99)
		h["rss"] = fmtMB(hp.rss)
		h["pertarget"] = fmtKB(float64(hp.rss) / float64(n))
		h["child"] = fmt.Sprintf("%.1f %%", hp.childCPU)
		h["others"] = hp.others
		h["bursts"] = fmtBursts(ht.Bursts)
		h["percheck"] = fmtUs(perCheck(hp.cpuPct, hp.wall, ht.SYNs))
		if pc := perCheck(hp.cpuPct, hp.wall, ht.SYNs); pc > 0 {
			perCheckRatio = fmt.Sprintf("%.2f", float64(perCheck(own, sm.wall, probes))/float64(pc))
		}
		h["accepts"] = fmt.Sprintf("%.0f", float64(ht.Accepts)/hp.wall.Seconds())
		if ht.Source != "syn" {
			h["rate"], h["mean"], h["p50"], h["p99"], h["bursts"] = "not seen (no SYN capture)", "-", "-", "-", "-"
		}
		cpuRatio, cpuOwnRatio = ratio(sm.cpuPct, hp.cpuPct), ratio(own, hp.cpuPct)
		memRatio, memOwnRatio = ratio(float64(sm.rss), float64(hp.rss)), ratio(float64(rssOwn), float64(hp.rss))
	}
	hcol := func(k string) string {
		if hp == nil {
			return "skipped"
		}
		if v, ok := h[k]; ok {
			return v
		}
		return "n/a"
	}
	row := func(what, seamark, haproxy, ratio string) {
		fmt.Printf("| %s | %s | %s | %s |\n", what, seamark, haproxy, ratio)
	}
	side := "target side: kernel timestamps of SYNs"
	if tgt.Source != "syn" {
		side = "target side: accepted connections"
	}
	fmt.Printf("| %d targets, %v each | seamark | HAProxy | seamark / HAProxy |\n", n, dur)
	fmt.Println("|---|---|---|---|")
	row("CPU, % of one core, whole process", fmt.Sprintf("%.1f %%", sm.cpuPct), hcol("cpu"), cpuRatio)
	row(fmt.Sprintf("CPU, %% of one core, checker only (minus baseline %.1f %%)", baseline.cpuPct), fmt.Sprintf("%.1f %%", own), hcol("cpu"), cpuOwnRatio)
	row("CPU user / system (whole process; on lo the kernel's work for both ends of a connection is charged to the sender)",
		fmt.Sprintf("%.1f %% / %.1f %%", sm.cpuPct-sm.sysPct, sm.sysPct), hcol("sys"), ratio(sm.cpuPct-sm.sysPct, hpUser)+" / "+ratio(sm.sysPct, hpSys))
	row("CPU time per check (checker only for seamark; the ratio that holds when the two do not run the same number of checks)",
		fmtUs(perCheck(own, sm.wall, probes)), hcol("percheck"), perCheckRatio)
	row("checks/s", fmt.Sprintf("%.0f (own count), %.0f (SYNs seen)", float64(probes)/sm.wall.Seconds(), float64(tgt.SYNs)/sm.wall.Seconds()), hcol("rate"), "-")
	row("connections the targets' accept() returned /s (HAProxy resets before the handshake's last ACK)", fmt.Sprintf("%.0f", float64(tgt.Accepts)/sm.wall.Seconds()), hcol("accepts"), "-")
	row("failed checks during the run", strconv.FormatUint(failed, 10), hcol("failed"), "-")
	row("targets up at the end", fmt.Sprintf("%d / %d", healthyEnd, n), hcol("up"), "-")
	row(fmt.Sprintf("mean interval between two checks of a target (%s)", side), fmtMs(tgt.Mean), hcol("mean"), "-")
	row("\\|interval − 1 s\\| p50 (same, 10 µs buckets)", fmtMs(tgt.P50), hcol("p50"), "-")
	row("\\|interval − 1 s\\| p99 (same)", fmtMs(tgt.P99), hcol("p99"), "-")
	row(fmt.Sprintf("\\|interval − 1 s\\| p50 / p99 (probe starts in the checker, 10 µs buckets, %d intervals)", spN),
		fmt.Sprintf("%s / %s (mean interval %s)", fmtMs(sp50), fmtMs(sp99), fmtMs(spMean)), "n/a", "-")
	row(fmt.Sprintf("probe starts per 10 ms: mean / p99 / max (even spread: %.0f; %s)", float64(n)/100, side), fmtBursts(tgt.Bursts), hcol("bursts"), "-")
	row("probe starts per 10 ms: mean / p99 / max (in the checker)", fmtBursts(prober.bu.summary()), "n/a", "-")
	row("probe lateness after due p50 / p99 (seamark_health_probe_lateness_seconds, bucket ≤)", fmt.Sprintf("%s / %s", fmtMs(lat50), fmtMs(lat99)), "n/a", "-")
	row("probe duration p50 / p99 (connect + close, 10 µs buckets)", fmt.Sprintf("%s / %s", fmtMs(prober.dur.quantile(0.5)), fmtMs(prober.dur.quantile(0.99))), "n/a", "-")
	row("RSS, whole process", fmtMB(sm.rss), hcol("rss"), memRatio)
	row(fmt.Sprintf("RSS, checker only (minus baseline %s)", fmtMB(baseline.rss)), fmtMBs(rssOwn), hcol("rss"), memOwnRatio)
	row("memory per target (seamark: checker only; HAProxy: whole process)", fmtKB(float64(rssOwn)/float64(n)), hcol("pertarget"), "-")
	row(fmt.Sprintf("Go heap in use after GC (minus baseline %s)", fmtMB(baseline.heap)), fmt.Sprintf("%s (%s per target)", fmtMBs(heapOwn), fmtKB(float64(heapOwn)/float64(n))), "n/a", "-")
	row("targets process CPU (counted for neither side)", fmt.Sprintf("%.1f %%", seamarkChild), hcol("child"), "-")
	row("rest of the machine during the phase, % of one core (another load here skews the comparison)", seamarkOthers, hcol("others"), "-")
	fmt.Println()
	fmt.Println("- HAProxy counts a server UP from its start (it assumes so until checks fail); seamark advertises a node only once rise probes passed and its verdict is in the store.")
	fmt.Println("- seamark's lateness histogram compares a probe's start with its due time on a fixed grid (the previous due time + interval), so it includes any wait for the scheduler; the interval rows show the schedule as the target sees it.")
	verdict := "meets"
	if own >= 50 {
		verdict = "MISSES"
	}
	full := ""
	if pc := perCheck(own, sm.wall, probes); pc > 0 && float64(probes)/sm.wall.Seconds() < 0.98*float64(n) {
		full = fmt.Sprintf(", though it ran only %.0f of the %d checks/s due; at the full rate that is %.0f %%",
			float64(probes)/sm.wall.Seconds(), n, 100*pc.Seconds()*float64(n))
	}
	fmt.Printf("- seamark checker CPU (minus baseline): %.1f %% of one core: %s the target of < 50 %%%s\n", own, verdict, full)
	if hp != nil {
		fmt.Printf("- while HAProxy was measured, the bench process (store and watcher, checker stopped) used %.1f %% of one core\n", hp.selfPct)
		fmt.Printf("- ratio seamark / HAProxy: CPU %s (whole process), %s (checker only), %s per check; memory %s (whole process), %s (checker only)\n",
			cpuRatio, cpuOwnRatio, perCheckRatio, memRatio, memOwnRatio)
	} else {
		fmt.Printf("- peer skipped: %v\n", herr)
	}
	if cpuprofile != "" {
		fmt.Printf("- CPU profile of the seamark phase: %s\n", cpuprofile)
	}
	return nil
}

// peerResult is what the HAProxy phase measured.
type peerResult struct {
	upTook   time.Duration
	wall     time.Duration
	cpuPct   float64
	sysPct   float64
	rss      uint64
	chkfail  uint64
	end      serverStats
	targets  targetStats
	childCPU float64
	selfPct  float64 // the bench process (idle store, no checker) meanwhile
	others   string  // the rest of the machine meanwhile
}

func runHAProxy(ctx context.Context, path, dir string, n int, tg *targets, dur time.Duration) (*peerResult, error) {
	h, err := startHAProxy(path, dir, n, tg.port)
	if err != nil {
		return nil, err
	}
	defer h.stop()
	t0 := time.Now()
	res := &peerResult{}
	var s serverStats
	deadline := t0.Add(time.Minute + time.Duration(n)*10*time.Millisecond)
	for {
		if s, err = h.stat(); err != nil {
			return nil, err
		}
		if s.servers == n && s.checked == n && s.up == n {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d servers UP and %d L4OK after %v", s.up, n, s.checked, time.Since(t0).Round(time.Second))
		}
		select {
		case <-h.exited:
			return nil, fmt.Errorf("haproxy exited: %s", h.tail())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.upTook = time.Since(t0)
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	if s, err = h.stat(); err != nil {
		return nil, err
	}
	log.Printf("measuring HAProxy %v", dur)
	if err := tg.reset(); err != nil {
		return nil, err
	}
	cpu0, child0, self0, busy0, w0 := procCPU(h.pid()), procCPU(tg.pid()), selfCPU(), machineBusy(), time.Now()
	if err := sleep(ctx, dur); err != nil {
		return nil, err
	}
	cpu1, child1, self1, busy1 := procCPU(h.pid()), procCPU(tg.pid()), selfCPU(), machineBusy()
	res.wall = time.Since(w0)
	res.selfPct = cpuPct(self1.total()-self0.total(), res.wall)
	res.rss = procRSS(strconv.Itoa(h.pid()))
	res.cpuPct = cpuPct(cpu1.total()-cpu0.total(), res.wall)
	res.sysPct = cpuPct(cpu1.sys-cpu0.sys, res.wall)
	res.childCPU = cpuPct(child1.total()-child0.total(), res.wall)
	res.others = others(busy0, busy1, res.wall, res.cpuPct+res.childCPU+res.selfPct)
	if res.targets, err = tg.stats(); err != nil {
		return nil, err
	}
	if res.end, err = h.stat(); err != nil {
		return nil, err
	}
	res.chkfail = res.end.chkfail - s.chkfail
	return res, nil
}

// waitSnapshot waits until the service's view satisfies ok.
func waitSnapshot(ctx context.Context, w *registry.Watcher, timeout time.Duration, ok func(*registry.ServiceView) bool) (*registry.Snapshot, error) {
	deadline := time.After(timeout)
	for {
		s := w.Current()
		var v *registry.ServiceView
		if s != nil {
			v, _ = s.Service(serviceName)
			if v != nil && ok(v) {
				return s, nil
			}
		}
		select {
		case <-w.Next(s):
		case <-deadline:
			if v != nil {
				return s, fmt.Errorf("timed out after %v with %d nodes, %d healthy", timeout, len(v.Nodes()), len(v.Healthy()))
			}
			return s, fmt.Errorf("timed out after %v", timeout)
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// waitQuiet waits until no snapshot has been published for quiet.
func waitQuiet(ctx context.Context, w *registry.Watcher, quiet, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		s := w.Current()
		select {
		case <-w.Next(s):
		case <-time.After(quiet):
			return nil
		case <-deadline:
			return fmt.Errorf("the store was still changing after %v (revision %d)", timeout, w.Current().Revision)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// selfSample is this process over a window.
type selfSample struct {
	wall   time.Duration
	cpuPct float64 // user+sys over wall, % of one core
	sysPct float64 // sys alone
	rss    uint64  // bytes, at the end
	heap   uint64  // HeapInuse after a GC at the end
}

func measureSelf(ctx context.Context, d time.Duration) (selfSample, error) {
	c0, w0 := selfCPU(), time.Now()
	if err := sleep(ctx, d); err != nil {
		return selfSample{}, err
	}
	c1 := selfCPU()
	s := selfSample{wall: time.Since(w0)}
	s.cpuPct = cpuPct(c1.total()-c0.total(), s.wall)
	s.sysPct = cpuPct(c1.sys-c0.sys, s.wall)
	s.rss = procRSS("self")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heap = ms.HeapInuse
	return s, nil
}

func cpuPct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

// machineTime is what all cores did so far, from /proc/stat.
type machineTime struct {
	procs time.Duration // user, nice, system: processes and the kernel on their behalf
	irq   time.Duration // irq and softirq (on lo, much of TCP's receive work)
	steal time.Duration // taken by the hypervisor for other machines
}

func machineBusy() machineTime {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTime{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTime{}
	}
	v := func(i int) time.Duration {
		x, _ := strconv.ParseUint(f[i], 10, 64)
		return time.Duration(x) * 10 * time.Millisecond
	}
	// cpu user nice system idle iowait irq softirq steal ...
	return machineTime{procs: v(1) + v(2) + v(3), irq: v(6) + v(7), steal: v(8)}
}

// others describes the machine over a phase: the share of processes other
// than ours (busy process time minus ours), irq and steal, in % of one core.
func others(m0, m1 machineTime, wall time.Duration, ours float64) string {
	procs := cpuPct(m1.procs-m0.procs, wall)
	return fmt.Sprintf("other processes %.0f %%, irq+softirq %.0f %%, steal %.0f %%",
		max(procs-ours, 0), cpuPct(m1.irq-m0.irq, wall), cpuPct(m1.steal-m0.steal, wall))
}

// cpuTime is a process's CPU time so far.
type cpuTime struct{ user, sys time.Duration }

func (c cpuTime) total() time.Duration { return c.user + c.sys }

// selfCPU is this process's CPU time (getrusage RUSAGE_SELF).
func selfCPU() cpuTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}
	}
	return cpuTime{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

// procCPU is a process's utime+stime.
func procCPU(pid int) cpuTime {
	u, st := procstat.CPU(strconv.Itoa(pid))
	return cpuTime{user: u, sys: st}
}

// procRSS is a process's resident memory in bytes ("self" works).
func procRSS(pid string) uint64 { return procstat.RSS(pid) }

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// metrics read from the process's Prometheus registry.
type metrics struct {
	probes, failed uint64
	lateness       hist
}

type hist struct {
	bounds []float64
	cum    []uint64
	count  uint64
}

func (h hist) delta(old hist) hist {
	d := hist{bounds: h.bounds, cum: slices.Clone(h.cum), count: h.count - old.count}
	for i := range d.cum {
		if i < len(old.cum) {
			d.cum[i] -= old.cum[i]
		}
	}
	return d
}

// quantiles returns the upper bounds of the buckets holding p50 and p99.
func (h hist) quantiles() (p50, p99 time.Duration) {
	q := func(p float64) time.Duration {
		for i, c := range h.cum {
			if float64(c) >= p*float64(h.count) {
				return time.Duration(h.bounds[i] * float64(time.Second))
			}
		}
		return -1 // beyond the last bucket
	}
	return q(0.5), q(0.99)
}

// benchMetrics is the checker's registry (never the global one).
var benchMetrics = prometheus.NewRegistry()

func gather() (metrics, error) {
	var m metrics
	mfs, err := benchMetrics.Gather()
	if err != nil {
		return m, err
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "seamark_health_probes_total":
			for _, x := range mf.GetMetric() {
				v := uint64(x.GetCounter().GetValue())
				m.probes += v
				for _, l := range x.GetLabel() {
					if l.GetName() == "result" && l.GetValue() != "ok" {
						m.failed += v
					}
				}
			}
		case "seamark_health_probe_lateness_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			m.lateness.count = h.GetSampleCount()
			for _, b := range h.GetBucket() {
				m.lateness.bounds = append(m.lateness.bounds, b.GetUpperBound())
				m.lateness.cum = append(m.lateness.cum, b.GetCumulativeCount())
			}
		}
	}
	return m, nil
}

// recProber wraps the real prober and records, while on, the exact time
// between the starts of two consecutive probes of the same target and each
// probe's duration, in fixed-size histograms (so the recorder adds next to
// nothing to the memory measured). It passes StartProbe on too, so the
// checker runs its probes the way it runs NetProber's (no goroutine each),
// with a wrapper per target made once: recording allocates nothing.
type recProber struct {
	inner health.Prober
	n     int
	origs []func(health.Result) // per target index: the checker's done
	wraps []func(health.Result) // per target index: records, then calls origs

	recording atomic.Bool
	mu        sync.Mutex
	last      []int64 // per target index: start of its last probe, ns
	sp        spacing
	dur       durHist
	bu        bursts
}

// starter is what the checker looks for in a prober that runs probes
// without a goroutine each (health.NetProber).
type starter interface {
	StartProbe(t health.Target, done func(health.Result)) bool
}

var (
	_ health.Prober = (*recProber)(nil)
	_ starter       = (*recProber)(nil)
	_ starter       = (*health.NetProber)(nil)
)

func newRecProber(inner health.Prober, n int) *recProber {
	p := &recProber{inner: inner, n: n, origs: make([]func(health.Result), n), wraps: make([]func(health.Result), n), last: make([]int64, n)}
	for i := range n {
		p.wraps[i] = func(r health.Result) {
			if p.recording.Load() {
				p.dur.add(r.Latency)
			}
			p.origs[i](r)
		}
	}
	return p
}

// index is the target's number, from its address 127.1.x.y, or -1.
func (p *recProber) index(t health.Target) int {
	a := t.Addr.Addr().As4()
	if i := int(a[2])*254 + int(a[3]) - 1; i >= 0 && i < p.n {
		return i
	}
	return -1
}

// started records the start of a probe of target i.
func (p *recProber) started(i int, start time.Time) {
	if !p.recording.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bu.add(start.UnixNano())
	if i >= 0 {
		if l := p.last[i]; l != 0 {
			p.sp.add(time.Duration(start.UnixNano() - l))
		}
		p.last[i] = start.UnixNano()
	}
}

func (p *recProber) Probe(ctx context.Context, t health.Target) health.Result {
	start := time.Now()
	p.started(p.index(t), start)
	res := p.inner.Probe(ctx, t)
	if p.recording.Load() {
		p.dur.add(time.Since(start))
	}
	return res
}

func (p *recProber) StartProbe(t health.Target, done func(health.Result)) bool {
	s, ok := p.inner.(starter)
	if !ok {
		return false
	}
	start := time.Now()
	i := p.index(t)
	if i < 0 {
		return s.StartProbe(t, done)
	}
	// One probe of a target at a time: origs[i] is not in use.
	p.origs[i] = done
	if !s.StartProbe(t, p.wraps[i]) {
		return false // the checker calls Probe, which records
	}
	p.started(i, start)
	return true
}

func (p *recProber) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.last)
	p.sp.reset()
	p.dur.reset()
	p.bu.reset()
	p.recording.Store(true)
}

func (p *recProber) stop() {
	p.recording.Store(false)
}
func fmtBursts(b burstStats) string {
	if b.Bins == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f / %d / %d", b.Mean, b.P99, b.Max)
}

// perCheck is the CPU time per check of a process that used pct % of one
// core over wall while running checks checks.
func perCheck(pct float64, wall time.Duration, checks uint64) time.Duration {
	if checks == 0 {
		return 0
	}
	return time.Duration(pct / 100 * float64(wall) / float64(checks))
}

func fmtUs(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func fmtSec(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func fmtMs(d time.Duration) string {
	if d < 0 {
		return "> last bucket"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtMB(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func fmtMBs(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func fmtKB(b float64) string { return fmt.Sprintf("%.2f KB", b/1024) }
