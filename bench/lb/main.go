// Command lb measures seamark's TCP load balancer side by side with Debian's
// HAProxy (nbthread 2, splicing, roundrobin) in one run, in front of the same
// backends on loopback, and prints a markdown table with the ratios.
//
//	go run ./bench/lb [-d 10s] [-rounds 2] [-idle 5000] [-listeners 10000] [-cpuprofile lb.cpu] [-iperf-affinity 0,1]
//
// Needs Debian's haproxy, nginx, iperf3 and wrk (apt-get install -y haproxy
// nginx iperf3 wrk). Every process it runs is its own child, stopped by PID;
// all traffic stays on 127.0.0.0/8.
//
// What runs: seamark as `seamark server` (internal/server.Start, this binary
// run again as a child, from a generated YAML config: the store, registry,
// idle checker, DNS, API and the balancer) and HAProxy, each with the same
// listeners on 127.0.0.1 to the same backends: iperf3 -s (throughput), nginx
// with one worker answering 200 "ok" on 127.0.0.2 and 127.0.0.3 (new
// connections/s with wrk and `Connection: close`, and request latency), and a
// hold server in this process (idle connections). CPU is each balancer
// process's utime+stime from /proc/<pid>/stat over a run (all its threads;
// seamark's includes its idle store and API), memory its VmRSS; each load
// run also prints the machine's idle time (/proc/stat), the cores' time the
// run left unused.
//
// Phases, one load at a time: idle connections held through each balancer
// (RSS and descriptors per connection), throughput (iperf3 -P 1 and -P 4)
// and new connections/s (wrk) in rounds that alternate which balancer goes
// first, each round also measuring the backends directly, request latency
// (one request at a time, direct and through each balancer, interleaved), and
// 10 000 listeners (a fresh process of each with a port range, RSS and
// descriptors per listener; and the time a running seamark takes to open
// them on a config reload).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		serveSeamark(os.Args[2:])
		return
	}
	var o options
	flag.DurationVar(&o.d, "d", 10*time.Second, "length of each load run (iperf3, wrk) and of each latency loop")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the throughput and connection-rate runs (alternating which balancer goes first)")
	flag.IntVar(&o.idle, "idle", 5000, "idle connections held through each balancer")
	flag.IntVar(&o.listeners, "listeners", 10000, "ports of the many-listeners phase (at most 10000, seamark's range limit)")
	flag.IntVar(&o.wrkConns, "c", 50, "wrk connections")
	flag.StringVar(&o.iperfAffinity, "iperf-affinity", "", "pin the iperf3 client and server to these cores (iperf3 -A, e.g. 0,1), so that the rounds compare the balancers rather than where the scheduler put the two single-threaded iperf3 processes (default: not pinned)")
	flag.IntVar(&o.nginxWorkers, "nginx-workers", 1, "nginx worker processes")
	flag.StringVar(&o.splice, "haproxy-splice", "always", "HAProxy splicing: auto (option splice-auto), always (splice-request and splice-response) or off")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the seamark server process (its whole life: every phase but the listeners one) here")
	flag.DurationVar(&o.inspect, "inspect", 0, "after starting everything, print the processes and addresses and wait this long (at most 1h) before measuring, for looking at them with other tools")
	flag.StringVar(&o.manyAddr, "many-addr", "127.0.0.1", "loopback address of the many-listeners phase's port range (another one when 127.0.0.1 has no free range)")
	flag.StringVar(&o.only, "only", "", "run only these phases, comma-separated: idle, throughput, conns, latency, listeners (default: all)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench/lb: ")
	if err := o.check(); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

type options struct {
	d                      time.Duration
	rounds, idle           int
	listeners, wrkConns    int
	nginxWorkers           int
	splice, cpuprofile     string
	iperfAffinity          string
	only                   string
	manyAddr               string
	inspect                time.Duration
	phases                 map[string]bool
	haproxyPath, nginxPath string
	iperfPath, wrkPath     string
}

func (o *options) check() error {
	var errs []string
	if o.d < time.Second {
		errs = append(errs, fmt.Sprintf("-d %v: want at least 1s", o.d))
	}
	if o.inspect < 0 || o.inspect > time.Hour {
		errs = append(errs, fmt.Sprintf("-inspect %v: want 0..1h", o.inspect))
	}
	if o.rounds < 1 || o.rounds > 10 {
		errs = append(errs, fmt.Sprintf("-rounds %d: want 1..10", o.rounds))
	}
	if o.idle < 1 || o.idle > 9000 {
		errs = append(errs, fmt.Sprintf("-idle %d: want 1..9000 (this process holds both ends: two descriptors per connection)", o.idle))
	}
	if o.listeners < 1 || o.listeners > 10000 {
		errs = append(errs, fmt.Sprintf("-listeners %d: want 1..10000", o.listeners))
	}
	if o.wrkConns < 2 || o.wrkConns > 1000 {
		errs = append(errs, fmt.Sprintf("-c %d: want 2..1000", o.wrkConns))
	}
	if o.nginxWorkers < 1 || o.nginxWorkers > 8 {
		errs = append(errs, fmt.Sprintf("-nginx-workers %d: want 1..8", o.nginxWorkers))
	}
	switch o.splice {
	case "auto", "always", "off":
	default:
		errs = append(errs, fmt.Sprintf("-haproxy-splice %q: want auto, always or off", o.splice))
	}
	all := []string{"idle", "throughput", "conns", "keepalive", "latency", "listeners"}
	o.phases = map[string]bool{}
	for _, p := range all {
		o.phases[p] = o.only == ""
	}
	if o.only != "" {
		for p := range strings.SplitSeq(o.only, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(all, p) {
				errs = append(errs, fmt.Sprintf("-only: unknown phase %q (want %s)", p, strings.Join(all, ", ")))
			}
			o.phases[p] = true
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// side is one way to reach the backends: a balancer, or none (direct).
type side struct {
	name string
	pid  int               // 0 for direct
	port map[string]string // listener name -> address
}

// loadRow is one load run.
type loadRow struct {
	test     string // "iperf3 -P 1", "iperf3 -P 4", "wrk"
	side     string
	round    int
	value    float64 // Gbit/s or connections/s
	count    int64   // wrk: requests
	errors   int64
	errText  string
	wall     time.Duration
	lbCPU    cpuTime // the balancer process
	toolCPU  cpuTime
	backCPU  cpuTime // the backend processes
	othersPc float64 // other processes, % of one core
	irqPc    float64 // irq and softirq, % of one core
	idlePc   float64 // the machine's idle time, % of one core
	retrans  int64
}

func (r loadRow) lbPct() float64 { return cpuPct(r.lbCPU.total(), r.wall) }

// env is everything a run has started.
type env struct {
	o        options
	dir      string
	nofile   uint64
	iperf    *proc
	nginx    *proc
	hold     *holdServer
	seamark  *seamarkProc
	haproxy  *proc
	smCfg    seamarkConfig
	hpCfg    haproxyConfig
	sides    []side // seamark, haproxy
	direct   side
	backPIDs []int
}

func run(ctx context.Context, o options) (err error) {
	tools, err := lookTools()
	if err != nil {
		return err
	}
	o.haproxyPath, o.nginxPath, o.iperfPath, o.wrkPath = tools["haproxy"], tools["nginx"], tools["iperf3"], tools["wrk"]
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur < rl.Max { // Go raises it at start; make sure
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("raise the open-file limit to %d: %w", rl.Max, err)
		}
	}
	e := &env{o: o, nofile: rl.Cur}
	e.dir, err = os.MkdirTemp("", "seamark-bench-lb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(e.dir)
	defer e.close()

	fmt.Printf("## TCP load balancer: seamark vs HAProxy\n\n")
	fmt.Printf("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("- machine: %s/%s, %d cores (%s), kernel %s, load average at start %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), kernel(), loadAvg())
	fmt.Printf("- Go: %s; peer: %s; backends and tools: %s, %s, %s\n", runtime.Version(),
		toolVersion(o.haproxyPath, "-v"), toolVersion(o.nginxPath, "-v"), toolVersion(o.iperfPath, "--version"), toolVersion(o.wrkPath, "-v"))
	fmt.Printf("- open-file limit: %d (soft raised to hard; HAProxy gets `ulimit-n %d` and the largest maxconn that fits)\n", rl.Cur, rl.Cur)
	fmt.Printf("- HAProxy: nbthread 2, mode tcp, balance roundrobin, splice %s, maxconn %d, no logs\n", o.splice, haproxyMaxconn(rl.Cur, 3))
	if o.iperfAffinity != "" {
		fmt.Printf("- iperf3 client and server pinned to cores %s (iperf3 -A); the balancers and the rest are not\n", o.iperfAffinity)
	}
	fmt.Printf("- seamark: `seamark server` (internal/server.Start in a child process: embedded store, registry, idle checker, DNS, API, balancer), listeners with check type none, round_robin\n")
	fmt.Printf("- CPU: /proc/<pid>/stat utime+stime of the balancer process (HAProxy: its one process, both threads; seamark: the whole server process)\n\n")

	if err := e.start(ctx); err != nil {
		return err
	}
	if o.inspect > 0 {
		for _, s := range append([]side{e.direct}, e.sides...) {
			fmt.Printf("- inspect: %s pid %d, listeners %v\n", s.name, s.pid, s.port)
		}
		fmt.Printf("- inspect: iperf3 -s pid %d, nginx pid %d; waiting %v\n", e.iperf.pid(), e.nginx.pid(), o.inspect)
		if err := sleep(ctx, o.inspect); err != nil {
			return err
		}
	}
	rep := &report{o: o}
	rep.idleCPU = map[string]float64{}
	rep.startRSS = map[string]uint64{}
	rep.startFDs = map[string]int{}
	log.Printf("idle: measuring both balancers for 3s")
	c0 := map[string]cpuTime{}
	for _, s := range e.sides {
		c0[s.name] = procCPU(s.pid)
	}
	w0 := time.Now()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	for _, s := range e.sides {
		rep.idleCPU[s.name] = cpuPct(procCPU(s.pid).sub(c0[s.name]).total(), time.Since(w0))
		rep.startRSS[s.name] = procRSS(s.pid)
		rep.startFDs[s.name] = fdCount(s.pid)
	}

	if o.phases["idle"] {
		if err := e.idlePhase(ctx, rep); err != nil {
			return err
		}
	}
	for r := range o.rounds {
		sides := slices.Clone(e.sides)
		if r%2 == 1 {
			slices.Reverse(sides)
		}
		if o.phases["throughput"] {
			for _, p := range []int{1, 4} {
				for _, s := range append([]side{e.direct}, sides...) {
					row, err := e.iperfRun(ctx, s, r, p)
					if err != nil {
						return err
					}
					rep.rows = append(rep.rows, row)
				}
			}
		}
		if o.phases["keepalive"] {
			for _, s := range append([]side{e.direct}, sides...) {
				row, err := e.wrkRun(ctx, s, r, false)
				if err != nil {
					return err
				}
				rep.rows = append(rep.rows, row)
			}
		}
		if o.phases["conns"] {
			for _, s := range append([]side{e.direct}, sides...) {
				row, err := e.wrkRun(ctx, s, r, true)
				if err != nil {
					return err
				}
				rep.rows = append(rep.rows, row)
			}
		}
	}
	if o.phases["latency"] {
		log.Printf("latency: %v of kept-alive requests, then %v of new connections, interleaved", o.d, o.d)
		targets := []latTarget{{"direct", e.direct.port["web"]}}
		for _, s := range e.sides {
			targets = append(targets, latTarget{s.name, s.port["web"]})
		}
		if rep.lat, err = measureLatency(ctx, targets, o.d, 200000); err != nil {
			return err
		}
	}
	if o.phases["listeners"] {
		if err := e.listenersPhase(ctx, rep); err != nil {
			return err
		}
	}
	e.stopBalancers()
	rep.print()
	if o.cpuprofile != "" {
		fmt.Printf("\n- CPU profile of the seamark server process: %s (`go tool pprof -top %s`)\n", o.cpuprofile, o.cpuprofile)
	}
	return nil
}

// start runs the backends and both balancers.
func (e *env) start(ctx context.Context) error {
	iperfPort, err := freePort()
	if err != nil {
		return err
	}
	webPort, err := freePort()
	if err != nil {
		return err
	}
	log.Printf("starting backends")
	if e.iperf, err = startIperf3(ctx, e.o.iperfPath, e.dir, iperfPort); err != nil {
		return err
	}
	webAddrs := []string{"127.0.0.2", "127.0.0.3"}
	if e.nginx, err = startNginx(ctx, e.o.nginxPath, e.dir, webAddrs, webPort, e.o.nginxWorkers); err != nil {
		return err
	}
	if e.hold, err = startHold(); err != nil {
		return err
	}
	e.backPIDs = []int{e.iperf.pid(), e.nginx.pid()}
	services := []benchService{
		{name: "iperf", port: iperfPort, backend: []string{"127.0.0.1"}},
		{name: "web", port: webPort, backend: webAddrs},
		{name: "hold", port: e.hold.port(), backend: []string{"127.0.0.1"}},
	}
	e.direct = side{name: "direct", port: map[string]string{
		"iperf": fmt.Sprintf("127.0.0.1:%d", iperfPort),
		"web":   fmt.Sprintf("127.0.0.2:%d", webPort),
		"hold":  fmt.Sprintf("127.0.0.1:%d", e.hold.port()),
	}}
	listeners := func() ([]benchListener, map[string]string, error) {
		var ls []benchListener
		m := map[string]string{}
		for _, s := range services {
			p, err := freePort()
			if err != nil {
				return nil, nil, err
			}
			ls = append(ls, benchListener{name: s.name, service: s.name, port: p})
			m[s.name] = fmt.Sprintf("127.0.0.1:%d", p)
		}
		return ls, m, nil
	}
	smL, smPorts, err := listeners()
	if err != nil {
		return err
	}
	hpL, hpPorts, err := listeners()
	if err != nil {
		return err
	}
	e.smCfg = seamarkConfig{dataDir: e.dir + "/seamark-data", services: services, listeners: smL}
	e.hpCfg = haproxyConfig{services: services, listeners: hpL, splice: e.o.splice}
	log.Printf("starting seamark")
	if e.seamark, err = startSeamark(ctx, e.dir, "seamark", e.smCfg, e.o.cpuprofile, false); err != nil {
		return err
	}
	log.Printf("starting haproxy")
	if e.haproxy, err = startHAProxy(ctx, e.o.haproxyPath, e.dir, "haproxy", e.hpCfg, e.nofile); err != nil {
		return err
	}
	e.sides = []side{
		{name: "seamark", pid: e.seamark.pid(), port: smPorts},
		{name: "HAProxy", pid: e.haproxy.pid(), port: hpPorts},
	}
	// Every path answers before anything is measured.
	for _, s := range append([]side{e.direct}, e.sides...) {
		if _, err := measureLatency(ctx, []latTarget{{s.name, s.port["web"]}}, time.Second, 10); err != nil {
			return fmt.Errorf("%s does not answer: %w", s.name, err)
		}
	}
	return nil
}

func (e *env) stopBalancers() {
	if e.seamark != nil {
		e.seamark.stop(syscall.SIGTERM)
		e.seamark = nil
	}
	if e.haproxy != nil {
		e.haproxy.stop(syscall.SIGTERM)
		e.haproxy = nil
	}
}

func (e *env) close() {
	e.stopBalancers()
	if e.nginx != nil {
		e.nginx.stop(syscall.SIGQUIT)
	}
	if e.iperf != nil {
		e.iperf.stop(syscall.SIGTERM)
	}
	if e.hold != nil {
		e.hold.close()
	}
}

// usage samples what every process of ours has used so far.
type usage struct {
	t     time.Time
	busy  machineTime
	self  cpuTime
	lbs   cpuTime // both balancers
	backs cpuTime
}

func (e *env) usage() usage {
	u := usage{t: time.Now(), busy: machineBusy(), self: selfCPU()}
	for _, s := range e.sides {
		c := procCPU(s.pid)
		u.lbs.user += c.user
		u.lbs.sys += c.sys
	}
	for _, p := range e.backPIDs {
		c := treeCPU(p)
		u.backs.user += c.user
		u.backs.sys += c.sys
	}
	return u
}

// others is the rest of the machine between u0 and u1 in % of one core:
// processes not ours, irq+softirq, and idle time.
func others(u0, u1 usage, tool cpuTime) (procs, irq, idle float64) {
	ours := u1.self.sub(u0.self).total() + u1.lbs.sub(u0.lbs).total() + u1.backs.sub(u0.backs).total() + tool.total()
	wall := u1.t.Sub(u0.t)
	return max(cpuPct(u1.busy.procs-u0.busy.procs-ours, wall), 0), cpuPct(u1.busy.irq-u0.busy.irq, wall), cpuPct(u1.busy.idle-u0.busy.idle, wall)
}

func (e *env) iperfRun(ctx context.Context, s side, round, parallel int) (loadRow, error) {
	log.Printf("round %d: iperf3 -P %d through %s", round+1, parallel, s.name)
	u0, c0 := e.usage(), procCPU(s.pid)
	res, err := runIperf3(ctx, e.o.iperfPath, portOf(s.port["iperf"]), e.o.d, parallel, e.o.iperfAffinity)
	c1, u1 := procCPU(s.pid), e.usage()
	if err != nil {
		return loadRow{}, fmt.Errorf("through %s: %w", s.name, err)
	}
	row := loadRow{test: fmt.Sprintf("iperf3 -P %d", parallel), side: s.name, round: round, value: res.bps / 1e9,
		wall: u1.t.Sub(u0.t), toolCPU: res.cpu, backCPU: u1.backs.sub(u0.backs), retrans: res.retrans}
	row.othersPc, row.irqPc, row.idlePc = others(u0, u1, res.cpu)
	if s.pid != 0 {
		row.lbCPU = c1.sub(c0)
	}
	return row, nil
}

func (e *env) wrkRun(ctx context.Context, s side, round int, closeEach bool) (loadRow, error) {
	test, how := "wrk-keepalive", "kept-alive"
	if closeEach {
		test, how = "wrk", "Connection: close"
	}
	log.Printf("round %d: wrk (%s) through %s", round+1, how, s.name)
	u0, c0 := e.usage(), procCPU(s.pid)
	res, err := runWrk(ctx, e.o.wrkPath, "http://"+s.port["web"]+"/", e.o.d, 2, e.o.wrkConns, closeEach)
	c1, u1 := procCPU(s.pid), e.usage()
	if err != nil {
		return loadRow{}, fmt.Errorf("through %s: %w", s.name, err)
	}
	row := loadRow{test: test, side: s.name, round: round, value: res.rps, count: res.requests,
		errors: res.errors, errText: res.errText, wall: u1.t.Sub(u0.t), toolCPU: res.cpu,
		backCPU: u1.backs.sub(u0.backs)}
	row.othersPc, row.irqPc, row.idlePc = others(u0, u1, res.cpu)
	if s.pid != 0 {
		row.lbCPU = c1.sub(c0)
	}
	// Let TIME_WAIT and the backends settle between runs.
	return row, sleep(ctx, time.Second)
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// idleResult is one balancer holding idle connections.
type idleResult struct {
	want, open, failed int
	firstErr           error
	rss0, rss1, rss2   uint64 // at start, 2 s and 12 s after opening
	fd0, fd1           int
}

func (e *env) idlePhase(ctx context.Context, rep *report) error {
	rep.idle = map[string]idleResult{}
	for _, s := range e.sides {
		log.Printf("idle: %d connections through %s", e.o.idle, s.name)
		r := idleResult{want: e.o.idle, rss0: procRSS(s.pid), fd0: fdCount(s.pid)}
		conns, failed, ferr := openIdle(ctx, s.port["hold"], e.o.idle)
		r.open, r.failed, r.firstErr = len(conns), failed, ferr
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		r.rss1, r.fd1 = procRSS(s.pid), fdCount(s.pid)
		// Measured again 10 s later: memory a burst of connections used
		// and freed goes back to the OS over a few seconds.
		if err := sleep(ctx, 10*time.Second); err != nil {
			return err
		}
		r.rss2 = procRSS(s.pid)
		for _, c := range conns {
			c.Close()
		}
		rep.idle[s.name] = r
		if err := e.hold.waitActive(ctx, 0, 30*time.Second); err != nil {
			return fmt.Errorf("after the idle connections through %s: %w", s.name, err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	return nil
}

// listenersResult is one balancer with many listening ports.
type listenersResult struct {
	n          int
	startTook  time.Duration // fresh process start until every port listens
	reloadTook time.Duration // seamark: config reload until every port listens
	rss        uint64
	fds        int
	idleCPU    float64
}

func (e *env) listenersPhase(ctx context.Context, rep *report) error {
	n := e.o.listeners
	base, err := freeRange(e.o.manyAddr, n)
	if err != nil {
		return err
	}
	many := benchListener{name: "many", service: "hold", port: base, last: base + n - 1, bind: e.o.manyAddr}
	rep.many = map[string]listenersResult{}
	rep.manyPorts = fmt.Sprintf("%s:%d-%d", e.o.manyAddr, base, base+n-1)

	// A running seamark opening n more ports on a config reload.
	if e.seamark != nil {
		log.Printf("listeners: seamark reload adding %d ports", n)
		cfg := e.smCfg
		cfg.listeners = append(slices.Clone(cfg.listeners), many)
		// Sockets only: idle splice pipes come and go with the GC.
		s0 := socketCount(e.seamark.pid())
		t0 := time.Now()
		if err := e.seamark.reload(cfg); err != nil {
			return err
		}
		deadline := t0.Add(2 * time.Minute)
		for socketCount(e.seamark.pid()) < s0+n {
			if time.Now().After(deadline) {
				return fmt.Errorf("seamark: %d ports not open 2m after a reload (%d sockets): %s", n, socketCount(e.seamark.pid()), e.seamark.tail())
			}
			if err := sleep(ctx, 5*time.Millisecond); err != nil {
				return err
			}
		}
		took := time.Since(t0)
		if err := e.seamark.waitListening(ctx, cfg.ports(), time.Minute); err != nil {
			return err
		}
		rep.reloadTook = took
	}
	e.stopBalancers()
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}

	settle := 3 * time.Second
	// Fresh seamark with the main listeners and the range.
	{
		log.Printf("listeners: fresh seamark with %d more ports", n)
		cfg := e.smCfg
		cfg.dataDir = e.dir + "/seamark-many-data"
		cfg.listeners = append(slices.Clone(cfg.listeners), many)
		t0 := time.Now()
		sm, err := startSeamark(ctx, e.dir, "seamark-many", cfg, "", true)
		if err != nil {
			return err
		}
		r := listenersResult{n: n, startTook: time.Since(t0)}
		if err := sleep(ctx, settle); err != nil {
			sm.stop(syscall.SIGTERM)
			return err
		}
		c0, w0 := procCPU(sm.pid()), time.Now()
		err = sleep(ctx, 5*time.Second)
		r.idleCPU = cpuPct(procCPU(sm.pid()).sub(c0).total(), time.Since(w0))
		r.rss, r.fds = procRSS(sm.pid()), fdCount(sm.pid())
		if err == nil { // measured: now check every port's state
			err = sm.waitListening(ctx, cfg.ports(), time.Minute)
		}
		sm.stop(syscall.SIGTERM)
		if err != nil {
			return err
		}
		rep.many["seamark"] = r
	}
	// Fresh HAProxy likewise.
	{
		log.Printf("listeners: fresh HAProxy with %d more ports", n)
		cfg := e.hpCfg
		cfg.listeners = append(slices.Clone(cfg.listeners), many)
		t0 := time.Now()
		hp, err := startHAProxy(ctx, e.o.haproxyPath, e.dir, "haproxy-many", cfg, e.nofile)
		if err != nil {
			return err
		}
		r := listenersResult{n: n}
		// The stats socket and the first port are up; wait for the last.
		err = hp.waitDial(ctx, net.JoinHostPort(e.o.manyAddr, strconv.Itoa(many.last)), time.Minute)
		r.startTook = time.Since(t0)
		if err == nil {
			err = sleep(ctx, settle)
		}
		if err != nil {
			hp.stop(syscall.SIGTERM)
			return err
		}
		c0, w0 := procCPU(hp.pid()), time.Now()
		err = sleep(ctx, 5*time.Second)
		r.idleCPU = cpuPct(procCPU(hp.pid()).sub(c0).total(), time.Since(w0))
		r.rss, r.fds = procRSS(hp.pid()), fdCount(hp.pid())
		hp.stop(syscall.SIGTERM)
		if err != nil {
			return err
		}
		rep.many["HAProxy"] = r
	}
	return nil
}

// report collects the results.
type report struct {
	o          options
	idleCPU    map[string]float64
	startRSS   map[string]uint64
	startFDs   map[string]int
	rows       []loadRow
	idle       map[string]idleResult
	lat        map[string]*latResult
	many       map[string]listenersResult
	manyPorts  string
	reloadTook time.Duration
}

// mean of a test's rows for a side, with each round's value.
func (r *report) mean(test, side string, f func(loadRow) float64) (float64, []float64) {
	var vs []float64
	for _, row := range r.rows {
		if row.test == test && row.side == side {
			vs = append(vs, f(row))
		}
	}
	if len(vs) == 0 {
		return 0, nil
	}
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s / float64(len(vs)), vs
}

func (r *report) values(test, side string, f func(loadRow) float64) []float64 {
	_, vs := r.mean(test, side, f)
	return vs
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func (r *report) print() {
	fmt.Println("| metric | seamark | HAProxy | seamark / HAProxy | direct (no balancer) |")
	fmt.Println("|---|---|---|---|---|")
	row := func(what, sm, hp, rt, direct string) {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", what, sm, hp, rt, direct)
	}
	value := func(x loadRow) float64 { return x.value }
	lbPct := func(x loadRow) float64 { return x.lbPct() }
	var goals []string
	for _, t := range []string{"iperf3 -P 1", "iperf3 -P 4"} {
		sm, smV := r.mean(t, "seamark", value)
		hp, hpV := r.mean(t, "HAProxy", value)
		d, _ := r.mean(t, "direct", value)
		if smV == nil {
			continue
		}
		row(fmt.Sprintf("throughput, %s -t %d (Gbit/s, mean of %d) **goal ≥ 1.0×**", t, int(r.o.d.Seconds()), len(smV)),
			fmt.Sprintf("%.2f", sm), fmt.Sprintf("%.2f", hp), "**"+ratio(sm, hp)+"**", fmt.Sprintf("%.2f", d))
		smC, _ := r.mean(t, "seamark", lbPct)
		hpC, _ := r.mean(t, "HAProxy", lbPct)
		row(fmt.Sprintf("balancer CPU during %s (%% of one core)", t), fmt.Sprintf("%.0f %%", smC), fmt.Sprintf("%.0f %%", hpC), ratio(smC, hpC), "-")
		row(fmt.Sprintf("balancer CPU per Gbit/s, %s (%% of one core)", t), fmt.Sprintf("%.1f %%", smC/sm), fmt.Sprintf("%.1f %%", hpC/hp), ratio(smC/sm, hpC/hp), "-")
		goals = append(goals, fmt.Sprintf("throughput %s, seamark / HAProxy: %s (each round: %s)", t, ratio(sm, hp), roundRatios(smV, hpV)))
	}
	if sm, smV := r.mean("wrk", "seamark", value); smV != nil {
		hp, hpV := r.mean("wrk", "HAProxy", value)
		d, _ := r.mean("wrk", "direct", value)
		row(fmt.Sprintf("new connections/s, wrk -t2 -c%d, `Connection: close` (mean of %d) **goal ≥ 1.0×**", r.o.wrkConns, len(smV)),
			fmt.Sprintf("%.0f", sm), fmt.Sprintf("%.0f", hp), "**"+ratio(sm, hp)+"**", fmt.Sprintf("%.0f", d))
		smC, _ := r.mean("wrk", "seamark", lbPct)
		hpC, _ := r.mean("wrk", "HAProxy", lbPct)
		row("balancer CPU during wrk (% of one core)", fmt.Sprintf("%.0f %%", smC), fmt.Sprintf("%.0f %%", hpC), ratio(smC, hpC), "-")
		idle := func(x loadRow) float64 { return x.idlePc }
		smI, _ := r.mean("wrk", "seamark", idle)
		hpI, _ := r.mean("wrk", "HAProxy", idle)
		dI, _ := r.mean("wrk", "direct", idle)
		row("machine idle during wrk (% of one core; the cores' time the run left unused)", fmt.Sprintf("%.0f %%", smI), fmt.Sprintf("%.0f %%", hpI), "-", fmt.Sprintf("%.0f %%", dI))
		perConn := func(x loadRow) float64 {
			if x.count == 0 {
				return 0
			}
			return float64(x.lbCPU.total()) / float64(x.count) / 1e3
		}
		smP, _ := r.mean("wrk", "seamark", perConn)
		hpP, _ := r.mean("wrk", "HAProxy", perConn)
		row("balancer CPU per connection (µs)", fmt.Sprintf("%.1f", smP), fmt.Sprintf("%.1f", hpP), ratio(smP, hpP), "-")
		errs := func(x loadRow) float64 { return float64(x.errors) }
		smE, _ := r.mean("wrk", "seamark", errs)
		hpE, _ := r.mean("wrk", "HAProxy", errs)
		dE, _ := r.mean("wrk", "direct", errs)
		row("wrk errors per run (socket errors and non-2xx)", fmt.Sprintf("%.0f", smE), fmt.Sprintf("%.0f", hpE), "-", fmt.Sprintf("%.0f", dE))
		goals = append(goals, fmt.Sprintf("new connections/s, seamark / HAProxy: %s (each round: %s)", ratio(sm, hp), roundRatios(smV, hpV)))
		smPV := r.values("wrk", "seamark", perConn)
		hpPV := r.values("wrk", "HAProxy", perConn)
		goals = append(goals, fmt.Sprintf("balancer CPU per connection, seamark / HAProxy (each round: %s)", roundRatios(smPV, hpPV)))
	}
	if sm, smV := r.mean("wrk-keepalive", "seamark", value); smV != nil {
		hp, hpV := r.mean("wrk-keepalive", "HAProxy", value)
		d, _ := r.mean("wrk-keepalive", "direct", value)
		row(fmt.Sprintf("keep-alive requests/s, wrk -t2 -c%d (mean of %d) **goal ≥ 1.0×**", r.o.wrkConns, len(smV)),
			fmt.Sprintf("%.0f", sm), fmt.Sprintf("%.0f", hp), "**"+ratio(sm, hp)+"**", fmt.Sprintf("%.0f", d))
		smC, _ := r.mean("wrk-keepalive", "seamark", lbPct)
		hpC, _ := r.mean("wrk-keepalive", "HAProxy", lbPct)
		row("balancer CPU during keep-alive wrk (% of one core)", fmt.Sprintf("%.0f %%", smC), fmt.Sprintf("%.0f %%", hpC), ratio(smC, hpC), "-")
		perReq := func(x loadRow) float64 {
			if x.count == 0 {
				return 0
			}
			return float64(x.lbCPU.total()) / float64(x.count) / 1e3
		}
		smR, _ := r.mean("wrk-keepalive", "seamark", perReq)
		hpR, _ := r.mean("wrk-keepalive", "HAProxy", perReq)
		row("balancer CPU per kept-alive request (µs)", fmt.Sprintf("%.1f", smR), fmt.Sprintf("%.1f", hpR), ratio(smR, hpR), "-")
		goals = append(goals, fmt.Sprintf("balancer CPU per kept-alive request, seamark / HAProxy (each round: %s)", roundRatios(r.values("wrk-keepalive", "seamark", perReq), r.values("wrk-keepalive", "HAProxy", perReq))))
		goals = append(goals, fmt.Sprintf("keep-alive requests/s, seamark / HAProxy: %s (each round: %s)", ratio(sm, hp), roundRatios(smV, hpV)))
	}
	if r.lat != nil {
		d, sm, hp := r.lat["direct"], r.lat["seamark"], r.lat["HAProxy"]
		for _, m := range []struct {
			name string
			get  func(*latResult) []time.Duration
		}{
			{"request on an open connection", func(l *latResult) []time.Duration { return l.keepAlive }},
			{"new connection + request", func(l *latResult) []time.Duration { return l.fresh }},
		} {
			for _, q := range []float64{0.5, 0.99} {
				dq, sq, hq := quantile(m.get(d), q), quantile(m.get(sm), q), quantile(m.get(hp), q)
				row(fmt.Sprintf("latency, %s, p%g (µs, %d / %d / %d samples)", m.name, q*100, len(m.get(sm)), len(m.get(hp)), len(m.get(d))),
					fmtUs(sq), fmtUs(hq), ratio(float64(sq), float64(hq)), fmtUs(dq))
				row(fmt.Sprintf("added latency, %s, p%g (µs, minus direct)", m.name, q*100),
					fmtUs(sq-dq), fmtUs(hq-dq), ratio(float64(sq-dq), float64(hq-dq)), "-")
			}
		}
	}
	row("idle CPU, main config (% of one core, 3 s)", fmt.Sprintf("%.1f %%", r.idleCPU["seamark"]), fmt.Sprintf("%.1f %%", r.idleCPU["HAProxy"]), "-", "-")
	row("RSS at start, main config (3 listeners)", fmtMB(r.startRSS["seamark"]), fmtMB(r.startRSS["HAProxy"]), ratio(float64(r.startRSS["seamark"]), float64(r.startRSS["HAProxy"])), "-")
	if r.idle != nil {
		sm, hp := r.idle["seamark"], r.idle["HAProxy"]
		row("idle connections open (one byte each way, then held)", fmt.Sprintf("%d / %d", sm.open, sm.want), fmt.Sprintf("%d / %d", hp.open, hp.want), "-", "-")
		per := func(x idleResult) float64 {
			if x.open == 0 {
				return 0
			}
			return (float64(x.rss1) - float64(x.rss0)) / float64(x.open)
		}
		per2 := func(x idleResult) float64 {
			if x.open == 0 {
				return 0
			}
			return (float64(x.rss2) - float64(x.rss0)) / float64(x.open)
		}
		row("RSS per idle connection, 2 s after opening (RSS delta / open)", fmtKB(per(sm)), fmtKB(per(hp)), ratio(per(sm), per(hp)), "-")
		row("RSS per idle connection, 12 s after opening **goal ≤ 3.5 KB**", fmtKB(per2(sm)), fmtKB(per2(hp)), ratio(per2(sm), per2(hp)), "-")
		fdPer := func(x idleResult) float64 {
			if x.open == 0 {
				return 0
			}
			return float64(x.fd1-x.fd0) / float64(x.open)
		}
		row("descriptors per idle connection", fmt.Sprintf("%.2f", fdPer(sm)), fmt.Sprintf("%.2f", fdPer(hp)), ratio(fdPer(sm), fdPer(hp)), "-")
		for _, s := range []struct {
			name string
			r    idleResult
		}{{"seamark", sm}, {"HAProxy", hp}} {
			if s.r.failed > 0 {
				goals = append(goals, fmt.Sprintf("idle connections through %s: %d failed, first error: %v", s.name, s.r.failed, s.r.firstErr))
			}
		}
	}
	if r.many != nil {
		sm, hp := r.many["seamark"], r.many["HAProxy"]
		n := float64(sm.n)
		row(fmt.Sprintf("%d more listeners (%s): fresh start until all listen", sm.n, r.manyPorts), fmtSec(sm.startTook), fmtSec(hp.startTook), ratio(float64(sm.startTook), float64(hp.startTook)), "-")
		row(fmt.Sprintf("%d more listeners added to a running balancer (config reload until all listen)", sm.n), fmtSec(r.reloadTook), "n/a (a reload starts a new process)", "-", "-")
		perL := func(rss, base uint64) float64 { return (float64(rss) - float64(base)) / n }
		smL, hpL := perL(sm.rss, r.startRSS["seamark"]), perL(hp.rss, r.startRSS["HAProxy"])
		row(fmt.Sprintf("RSS with %d more listeners", sm.n), fmtMB(sm.rss), fmtMB(hp.rss), ratio(float64(sm.rss), float64(hp.rss)), "-")
		row("RSS per listener (minus the main config's RSS at start)", fmtKB(smL), fmtKB(hpL), ratio(smL, hpL), "-")
		smF, hpF := float64(sm.fds-r.startFDs["seamark"])/n, float64(hp.fds-r.startFDs["HAProxy"])/n
		row("descriptors per listener", fmt.Sprintf("%.2f", smF), fmt.Sprintf("%.2f", hpF), ratio(smF, hpF), "-")
		row(fmt.Sprintf("idle CPU with %d more listeners (%% of one core, 5 s)", sm.n), fmt.Sprintf("%.1f %%", sm.idleCPU), fmt.Sprintf("%.1f %%", hp.idleCPU), "-", "-")
	}
	fmt.Println()
	for _, g := range goals {
		fmt.Printf("- %s\n", g)
	}
	if len(r.rows) > 0 {
		fmt.Println()
		fmt.Println("Every load run (balancer CPU: the balancer process; tool: iperf3 -c or wrk; backends: iperf3 -s and nginx; softirq: the whole machine's irq and softirq time, where much of loopback TCP's work is charged, to no process; other processes: the machine's process time minus all of these and this program, i.e. other people's work; idle: time no core had anything to run, which a run bounded by the cores' time alone would not leave):")
		fmt.Println()
		fmt.Println("| run | round | side | result | balancer CPU (user / sys) | tool CPU | backends CPU | softirq | other processes | idle | notes |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
		rows := slices.Clone(r.rows)
		slices.SortStableFunc(rows, func(a, b loadRow) int { return cmp.Compare(a.test, b.test) })
		for _, x := range rows {
			res := fmt.Sprintf("%.2f Gbit/s", x.value)
			note := fmt.Sprintf("retransmits %d", x.retrans)
			if x.test == "wrk" || x.test == "wrk-keepalive" {
				res = fmt.Sprintf("%.0f conn/s", x.value)
				if x.test == "wrk-keepalive" {
					res = fmt.Sprintf("%.0f req/s", x.value)
				}
				note = fmt.Sprintf("%d requests", x.count)
				if x.errText != "" {
					note += "; " + x.errText
				}
			}
			lb := "-"
			if x.side != "direct" {
				lb = fmt.Sprintf("%.0f %% (%.0f / %.0f)", x.lbPct(), cpuPct(x.lbCPU.user, x.wall), cpuPct(x.lbCPU.sys, x.wall))
			}
			fmt.Printf("| %s | %d | %s | %s | %s | %.0f %% | %.0f %% | %.0f %% | %.0f %% | %.0f %% | %s |\n", x.test, x.round+1, x.side, res, lb,
				cpuPct(x.toolCPU.total(), x.wall), cpuPct(x.backCPU.total(), x.wall), x.irqPc, x.othersPc, x.idlePc, note)
		}
	}
}

// roundRatios lists a[i]/b[i] for every round and their median.
func roundRatios(a, b []float64) string {
	var out []string
	var rs []float64
	for i := range min(len(a), len(b)) {
		out = append(out, ratio(a[i], b[i]))
		if b[i] != 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	slices.Sort(rs)
	med := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return fmt.Sprintf("%s; median %.2f", strings.Join(out, ", "), med)
}

func fmtUs(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func fmtSec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func fmtMB(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func fmtKB(b float64) string { return fmt.Sprintf("%.2f KB", b/1024) }
