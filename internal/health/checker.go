package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Store is what the checker writes through.
type Store interface {
	GrantLease(ctx context.Context, ttl time.Duration) (*store.Lease, error)
	PutChecker(ctx context.Context, c api.Checker, lease *store.Lease) error
	PutVerdicts(ctx context.Context, checker string, ws []store.VerdictWrite, lease *store.Lease) error
	AppendEvents(ctx context.Context, es []api.Event, origin string) error
}

// Snapshots is what the checker reads its targets from.
type Snapshots interface {
	Current() *registry.Snapshot
	Next(s *registry.Snapshot) <-chan struct{}
}

// probeStarter is a Prober that can also run a probe without a goroutine
// of its own (NetProber's tcp probes on Linux). StartProbe starts a probe
// of t bounded by t.Check.Timeout and returns at once, or reports false and
// starts nothing when it cannot run t that way (then Probe runs it). done is
// called exactly once with the result, from another goroutine or before
// StartProbe returns; it must not block.
type probeStarter interface {
	StartProbe(t Target, done func(Result)) bool
}

var (
	_ Store        = (*store.Store)(nil)
	_ Snapshots    = (*registry.Watcher)(nil)
	_ probeStarter = (*NetProber)(nil)
)

// checkerMetrics are a Checker's Prometheus metrics, registered with
// Options.Registerer (never the global registry).
type checkerMetrics struct {
	probes       *prometheus.CounterVec
	probeSeconds *prometheus.HistogramVec
	lateness     prometheus.Histogram
	targets      *prometheus.GaugeVec
	localErrors  prometheus.Counter
	degraded     prometheus.Gauge
	grants       *prometheus.CounterVec
	owned        prometheus.Gauge
	handoff      prometheus.Gauge
}

func newCheckerMetrics(reg prometheus.Registerer) *checkerMetrics {
	m := &checkerMetrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_health_probes_total", Help: "Health probes by kind and result.",
		}, []string{"kind", "result"}),
		probeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "seamark_health_probe_seconds", Help: "Health probe latency by kind.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
		}, []string{"kind"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seamark_health_probe_lateness_seconds", Help: "How late probes start after they were due.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "seamark_health_targets", Help: "Targets this checker probes, by its own verdict (healthy, unhealthy, unknown).",
		}, []string{"state"}),
		localErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "seamark_health_local_errors_total", Help: "Probes that failed for this machine's trouble (no descriptor, local port, buffer): not counted as votes.",
		}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_health_checker_degraded", Help: "1 while the checker keeps its verdicts because its own probes fail for local reasons.",
		}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_health_lease_grants_total", Help: "Attempts of the checker to grant its lease again after it was lost, by result.",
		}, []string{"result"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_health_targets_owned", Help: "Targets this checker owns (is one of the check.replicas checkers placed on) and probes.",
		}),
		handoff: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_health_targets_handoff", Help: "Targets this checker no longer owns but still probes until their new owners have written a verdict.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.probes, m.probeSeconds, m.lateness, m.targets, m.localErrors, m.degraded, m.grants, m.owned, m.handoff)
	}
	return m
}

// launchTick is the shortest time between two rounds of probe starts:
// probes that come due within it start together, at most that late, so
// that 10 000 targets a second wake the checker a thousand times, not ten
// thousand.
const launchTick = time.Millisecond

// Options configure a Checker.
type Options struct {
	// ID names this checker in verdicts and events; unique per running server.
	ID        string
	Version   string
	Store     Store
	Snapshots Snapshots
	// Prober runs probes; default a NetProber.
	Prober Prober
	// Clock; default the wall clock.
	Clock Clock
	// Hooks runs services' on_change hooks; nil runs none.
	Hooks  *Hooks
	Logger *slog.Logger
	// Registerer, when set, gets the checker's metrics.
	Registerer prometheus.Registerer
	// LeaseTTL of the checker's lease: a checker that dies stops counting
	// after it. Default 3s.
	LeaseTTL time.Duration
}

// Checker probes the targets of the snapshot it owns (shard.go) and writes
// its verdicts.
type Checker struct {
	o   Options
	log *slog.Logger

	passive chan string  // target keys reported by the balancer
	starter probeStarter // o.Prober, when it can start probes without a goroutine
	owned   *NetProber   // the prober New made, closed when Run ends

	// Results of probes, from the probers' goroutines: appended under rmu.
	// Run takes them before it waits again, and ready has a token whenever
	// some came in while it sleeps for longer than launchTick (until
	// sleepUntil, mono ns; with the real clock only).
	rmu        sync.Mutex
	done       []probeDone
	ready      chan struct{}
	sleepUntil int64
	realTime   bool

	// synced is the revision of the last snapshot synced whole, for other
	// goroutines (tests wait on it rather than on time).
	synced atomic.Int64

	// Fields below are owned by the Run goroutine.
	targets    map[string]*target
	bySvc      map[string]map[string]*target // service -> key -> target
	svcIndex   map[string]int64              // service -> ServiceView.Index last synced
	syncedRev  int64                         // revision of the last snapshot synced
	services   map[string]api.Service
	cands      map[string]candCache
	counts     map[api.NodeState]int // targets by written verdict
	queue      dueQueue
	epoch      time.Time     // due times are kept in the queue as durations since epoch
	lastLaunch time.Duration // since epoch
	spare      []probeDone
	kinds      map[string]*kindMetrics
	m          *checkerMetrics
	w          *writer
	inflight   sync.WaitGroup // probes running in goroutines
	// degraded says why probes are not trusted now; lastLocal is the last
	// local failure. It clears degradedHold after the last one.
	degraded  string
	lastLocal time.Time
	// place ranks the live checkers, this one among them (shard.go);
	// handoffs are the targets it probes only until their new owners write.
	place    *registry.Placement
	handoffs map[string]*target
	// moving: the live checkers changed in this sync; targets taken over
	// are probed sooner (firstProbe).
	moving bool
}

// degradedHold is how long after its last local failure a checker stays
// degraded: long enough that a flood of refused sockets does not toggle it
// with every probe that happens to get a descriptor.
const degradedHold = 10 * time.Second

// kindMetrics are the metrics of one probe kind, looked up once.
type kindMetrics struct {
	ok, failed prometheus.Counter
	seconds    prometheus.Observer
}

type candCache struct {
	key   string
	addrs []netip.Addr
}

// target is one probed thing and this checker's belief about it.
type target struct {
	Target
	onChange string
	owner    api.Source    // the service's owner: hooks run only for config
	state    api.NodeState // healthy or unhealthy
	written  api.NodeState // last verdict written, "" for none
	passes   int           // consecutive passes
	fails    int           // consecutive failures
	due      time.Time
	queued   bool   // an entry of the due queue stands for the next probe
	qgen     uint32 // generation of that entry; older entries are stale
	running  bool   // a probe is in flight
	gone     bool   // removed while a probe was in flight
	hurry    bool   // passive failure reported: probe at once, then fast
	paused   bool   // the node is in maint: not probed, its verdict kept (maint.go)
	said     bool   // a verdict of this checker is written (or on its way)
	handoff  bool   // no longer owned: probed until the owners have written (shard.go)
	// adopted is the state verdicts had decided when this checker took the
	// node over ("" when none had): a first verdict that agrees is no
	// change of the node, so no event and no hook.
	adopted api.NodeState
	since   time.Time
	last    Result
	done    func(Result) // delivers this target's results to the checker
}

type probeDone struct {
	t   *target
	res Result
}

// New returns a Checker; Run starts it.
func New(o Options) *Checker {
	var owned *NetProber
	if o.Prober == nil {
		owned = &NetProber{}
		o.Prober = owned
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 3 * time.Second
	}
	starter, _ := o.Prober.(probeStarter)
	_, realTime := o.Clock.(RealClock)
	return &Checker{
		o:        o,
		log:      o.Logger.With("component", "health", "checker", o.ID),
		passive:  make(chan string, 1024),
		starter:  starter,
		realTime: realTime,
		owned:    owned,
		ready:    make(chan struct{}, 1),
		kinds:    map[string]*kindMetrics{},
		m:        newCheckerMetrics(o.Registerer),
		targets:  map[string]*target{},
		handoffs: map[string]*target{},
		bySvc:    map[string]map[string]*target{},
		svcIndex: map[string]int64{},
		services: map[string]api.Service{},
		cands:    map[string]candCache{},
		counts:   map[api.NodeState]int{},
	}
}

// ConnectFailed tells the checker that a connection to a node just failed
// (the balancer's passive check): the node is probed at once and then at the
// fast interval until its state settles. It never blocks.
func (c *Checker) ConnectFailed(service, node string) {
	select {
	case c.passive <- service + "/" + node:
	default:
	}
}

// Run probes until ctx ends. On the way out it revokes its lease, so its
// verdicts stop counting at once rather than after the lease's ttl.
func (c *Checker) Run(ctx context.Context) error {
	c.w = newWriter(c.o.Store, c.o.ID, c.log, c.o.Clock, c.o.LeaseTTL, c.m.grants)
	// The first registration is retried like a lost lease's (each attempt
	// bounded, backoff with jitter): a store slow at start does not stop
	// the checker for good.
	info := api.Checker{ID: c.o.ID, Started: time.Now().UTC(), Version: c.o.Version}
	for backoff := retryFirst; ; backoff = min(backoff*2, retryMax) {
		err := c.w.register(ctx, info)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Error("register checker; trying again", "err", err, "next_in", backoff)
		if !c.w.sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			return nil
		}
	}
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.w.run(wctx) }()
	defer func() {
		c.inflight.Wait()
		if c.owned != nil {
			c.owned.Close() // ends the probes it still runs
		}
		stopWriter()
		<-writerDone
		c.w.close()
	}()

	c.epoch = c.o.Clock.Now()
	timer := c.o.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	snap := c.o.Snapshots.Current()
	if snap != nil {
		c.sync(snap)
	}
	c.settle(timer)
	for {
		var next <-chan struct{}
		next = c.o.Snapshots.Next(snap)
		select {
		case <-ctx.Done():
			return nil
		case <-next:
			snap = c.o.Snapshots.Current()
			c.sync(snap)
		case <-timer.C():
			c.launchDue(ctx)
		case <-c.ready:
			// settle takes the results.
		case key := <-c.passive:
			if t := c.targets[key]; t != nil && !t.gone && !t.paused {
				t.hurry = true
				if !t.running {
					c.schedule(t, c.o.Clock.Now())
				}
			}
		}
		c.settle(timer)
	}
}

// settle handles the results that came in, then arms the timer for the
// next probe start, before the Run goroutine waits again.
func (c *Checker) settle(timer Timer) {
	for {
		c.rmu.Lock()
		batch := c.done
		if len(batch) == 0 {
			c.rearm(timer)
			c.rmu.Unlock()
			return
		}
		c.done = c.spare[:0] // batch and spare are the two buffers
		c.rmu.Unlock()
		for _, d := range batch {
			c.handle(d)
		}
		clear(batch)
		c.spare = batch[:0]
	}
}

// rearm arms the timer for the next probe start: when it is due, but not
// within launchTick of the last round of starts. Called with c.rmu held.
func (c *Checker) rearm(timer Timer) {
	timer.Stop()
	for len(c.queue) > 0 && c.queue.stale(0) {
		c.queue.pop()
	}
	d := time.Hour
	if len(c.queue) > 0 {
		now := c.o.Clock.Now().Sub(c.epoch)
		d = max(time.Duration(c.queue[0].key)-now, c.lastLaunch+launchTick-now, 0)
	}
	timer.Reset(d)
	if c.realTime {
		c.sleepUntil = mono() + int64(d)
	}
}

// schedule makes when the time of t's next probe.
func (c *Checker) schedule(t *target, when time.Time) {
	t.due = when
	t.qgen++ // an entry already queued for t is stale now
	t.queued = true
	c.queue.push(dueEntry{key: int64(when.Sub(c.epoch)), t: t, gen: t.qgen})
	if len(c.queue) > 2*len(c.targets)+1024 {
		c.queue.compact()
	}
}

// unschedule drops t's next probe.
func (c *Checker) unschedule(t *target) {
	t.qgen++
	t.queued = false
}

// launchDue starts a probe for every target that is due: on the prober's
// own loop when it can (tcp on Linux), else each in a goroutine. One slow
// target never delays another.
func (c *Checker) launchDue(ctx context.Context) {
	now := c.o.Clock.Now()
	c.lastLaunch = now.Sub(c.epoch)
	nowKey := int64(c.lastLaunch)
	for len(c.queue) > 0 && c.queue[0].key <= nowKey {
		e := c.queue.pop()
		t := e.t
		if e.gen != t.qgen || !t.queued {
			continue // rescheduled or removed since
		}
		t.queued = false
		t.running = true
		c.m.lateness.Observe(now.Sub(t.due).Seconds())
		if c.starter != nil && c.starter.StartProbe(t.Target, t.done) {
			continue
		}
		c.inflight.Add(1)
		tg, done := t.Target, t.done // t is Run's: a new check may replace t.Check meanwhile
		go func() {
			defer c.inflight.Done()
			pctx, cancel := context.WithTimeout(ctx, tg.Check.Timeout.D())
			res := c.o.Prober.Probe(pctx, tg)
			cancel()
			done(res)
		}()
	}
}

// deliver queues a probe's result for the Run goroutine. It never blocks.
// It wakes Run only when Run would otherwise sleep longer than launchTick:
// at 10 000 probes a second Run wakes for the next round of starts within a
// millisecond anyway, and takes the results then, rather than once for each
// probe that ends through the prober's loop.
func (c *Checker) deliver(t *target, res Result) {
	c.rmu.Lock()
	c.done = append(c.done, probeDone{t: t, res: res})
	wake := len(c.done) == 1 && (!c.realTime || c.sleepUntil-mono() > int64(launchTick))
	c.rmu.Unlock()
	if wake {
		select {
		case c.ready <- struct{}{}:
		default: // a token is waiting already
		}
	}
}

// metricsOf returns the metrics of a probe kind.
func (c *Checker) metricsOf(kind string) *kindMetrics {
	m := c.kinds[kind]
	if m == nil {
		m = &kindMetrics{
			ok:      c.m.probes.WithLabelValues(kind, "ok"),
			failed:  c.m.probes.WithLabelValues(kind, "failed"),
			seconds: c.m.probeSeconds.WithLabelValues(kind),
		}
		c.kinds[kind] = m
	}
	return m
}

// handle applies one probe result: HAProxy's rise/fall counting, then the
// next probe's time (interval, fast_interval while changing, down_interval
// while down).
func (c *Checker) handle(d probeDone) {
	t := d.t
	t.running = false
	m := c.metricsOf(t.Check.Type)
	if d.res.OK {
		m.ok.Inc()
	} else {
		m.failed.Inc()
	}
	m.seconds.Observe(d.res.Latency.Seconds())
	if t.gone || t.paused {
		return // a probe that ended after its node went into maint counts for nothing
	}
	now := c.o.Clock.Now()
	if !d.res.OK && d.res.Local {
		// This machine's trouble, not the node's: not a vote. The verdict
		// and the rise/fall counters stand; try again at the fast interval.
		c.m.localErrors.Inc()
		c.lastLocal = now
		if c.degraded == "" {
			c.degraded = "probes fail on this machine: " + d.res.Reason
			c.m.degraded.Set(1)
			c.log.Warn("checker degraded: its probes fail for local reasons, verdicts kept", "reason", d.res.Reason)
			c.w.setDegraded(c.degraded)
		}
		c.schedule(t, now.Add(t.Check.FastInterval.D()))
		return
	}
	if c.degraded != "" && now.Sub(c.lastLocal) >= degradedHold {
		c.log.Info("checker recovered: no local probe failure for 10s", "was", c.degraded)
		c.degraded = ""
		c.m.degraded.Set(0)
		c.w.setDegraded("")
	}
	t.last = d.res
	if d.res.OK {
		t.passes, t.fails = t.passes+1, 0
	} else {
		t.passes, t.fails = 0, t.fails+1
	}
	old := t.state
	switch {
	case t.state == api.StateHealthy && t.fails >= t.Check.Fall:
		t.state = api.StateUnhealthy
	case t.state == api.StateUnhealthy && t.passes >= t.Check.Rise:
		t.state = api.StateHealthy
	}
	if t.state != old {
		t.since = c.o.Clock.Now()
	}
	// A verdict is written once this checker is sure: on a transition, on
	// the first pass of a node it took over as healthy, or after fall
	// failures of one it never saw up.
	sure := t.state != old || (t.state == api.StateHealthy && t.passes > 0) || (t.state == api.StateUnhealthy && t.fails >= t.Check.Fall)
	if sure && t.state != t.written {
		c.transition(t, t.written, d.res)
	}
	changing := (t.state == api.StateHealthy && t.fails > 0) || (t.state == api.StateUnhealthy && t.passes > 0)
	every := t.Check.Interval.D()
	switch {
	case changing || t.hurry:
		every = t.Check.FastInterval.D()
	case t.state == api.StateUnhealthy:
		every = t.Check.DownInterval.D()
	}
	if t.state == t.written && !changing {
		t.hurry = false
	}
	now = c.o.Clock.Now()
	// The next probe is due one interval after this one was due, not after
	// it ended: a probe's own duration and any wait for this goroutine never
	// stretch the schedule. A checker that fell more than an interval behind
	// starts again from now, spread so the stragglers do not fire together.
	next := t.due.Add(every)
	if next.Before(now) {
		next = now.Add(jitter(every / 4))
	}
	c.schedule(t, next)
}

// transition records this checker's new verdict on t: the store, the event
// log and the service's hook.
func (c *Checker) transition(t *target, old api.NodeState, res Result) {
	reason := res.Reason
	if t.state == api.StateHealthy {
		reason = fmt.Sprintf("%d of %d probes passed (%s)", t.passes, t.Check.Rise, res.Reason)
	}
	c.counts[t.written]--
	t.written = t.state
	c.counts[t.written]++
	c.w.verdict(t, t.state)
	t.said = true
	if old == "" && t.adopted != "" {
		adopted := t.adopted
		t.adopted = ""
		if t.state == adopted {
			// A new owner agreeing with what its predecessors said: no
			// change of the node.
			c.log.Debug("took over node", "service", t.Service, "node", t.Node, "state", t.state)
			c.countTargets()
			return
		}
	}
	from := old
	if from == "" {
		from = "unchecked"
	}
	c.log.Info("node changed state", "service", t.Service, "node", t.Node, "address", t.Addr.String(), "old", from, "new", t.state, "reason", reason)
	e := api.Event{
		Time: time.Now().UTC(), Kind: api.EventHealth, Service: t.Service, Node: t.Node, Address: t.Addr.String(),
		Old: from, New: t.state, Reason: reason, Checker: c.o.ID,
	}
	c.w.event(e)
	if c.o.Hooks != nil && t.onChange != "" {
		c.o.Hooks.FireFor(t.owner, t.onChange, e)
	}
	c.countTargets()
}

// countTargets publishes the targets by this checker's verdict; the counts
// are kept as targets come, go and change.
func (c *Checker) countTargets() {
	c.m.targets.WithLabelValues("healthy").Set(float64(c.counts[api.StateHealthy]))
	c.m.targets.WithLabelValues("unhealthy").Set(float64(c.counts[api.StateUnhealthy]))
	c.m.targets.WithLabelValues("unknown").Set(float64(c.counts[""]))
	c.m.owned.Set(float64(len(c.targets) - len(c.handoffs)))
	c.m.handoff.Set(float64(len(c.handoffs)))
}

// sync brings the targets in line with the snapshot: services whose view
// changed are diffed; the others are left alone (their targets keep their
// schedule and counters).
func (c *Checker) sync(s *registry.Snapshot) {
	seen := map[string]bool{}
	// What changed since the last snapshot synced: a service whose
	// definition is the same gets only its changed nodes diffed, so one
	// registration costs the same in a service of 10 nodes or 100 000.
	var d *registry.Delta
	if c.syncedRev != 0 {
		d = s.DeltaSince(c.syncedRev)
	}
	c.syncedRev = s.Revision
	// A change of the live checkers moves targets: every service is
	// synced whole against the new placement.
	replaced := c.replace(s)
	c.moving = replaced
	for _, v := range s.Services() {
		name := v.Service.Name
		seen[name] = true
		idx, ok := c.svcIndex[name]
		if ok && idx == v.SpecIndex && !replaced {
			continue // only verdicts changed: nothing to probe differently
		}
		c.svcIndex[name] = v.SpecIndex
		c.services[name] = v.Service
		if sd, changed := d.ServiceOf(name); ok && changed && !sd.Whole && !replaced && len(v.Service.Candidates) == 0 {
			c.syncNodes(v, sd.Nodes)
			continue
		}
		if ok && idx == v.SpecIndex && replaced && len(v.Service.Candidates) == 0 {
			c.syncMoved(v)
			continue
		}
		c.syncService(v)
	}
	for name := range c.svcIndex {
		if !seen[name] {
			delete(c.svcIndex, name)
			delete(c.services, name)
			delete(c.cands, name)
			for _, t := range c.bySvc[name] {
				c.remove(t)
			}
			delete(c.bySvc, name)
		}
	}
	c.reviewHandoffs(s, d, replaced)
	c.countTargets()
	c.synced.Store(s.Revision)
}

func (c *Checker) syncService(v *registry.ServiceView) {
	svc := v.Service
	want := map[string]Target{}
	consensus := map[string]bool{}
	decided := map[string]bool{}
	maint := map[string]bool{}
	if svc.Check.Type != api.CheckNone {
		for _, n := range v.Nodes() {
			consensus[n.ID] = n.Healthy
			if len(n.Checks) > 0 || n.Held {
				decided[n.ID] = true
			}
			if n.Admin.Maint() {
				maint[n.ID] = true
			}
			if n.Source == api.SourceCandidate {
				continue
			}
			t := Target{Service: svc.Name, Node: n.ID, Addr: netip.AddrPortFrom(n.Address, uint16(n.PortOf(svc))), Check: svc.Check}
			want[t.Key()] = t
		}
		for _, a := range c.candidates(svc) {
			t := Target{Service: svc.Name, Node: api.CandidateID(a), Addr: netip.AddrPortFrom(a, uint16(svc.Port)), Check: svc.Check, Candidate: true}
			if _, registered := want[t.Key()]; !registered {
				want[t.Key()] = t
			}
		}
	}
	have := c.targetsOf(svc.Name)
	for key, t := range have {
		w, ok := want[key]
		if !ok || w.Addr != t.Addr || w.Candidate != t.Candidate {
			c.remove(t)
			delete(have, key)
			continue
		}
		t.onChange, t.owner = svc.OnChange, svc.Source
		c.setPaused(t, maint[w.Node])
		if !c.owns(w) {
			if !c.disown(t, v) {
				delete(have, key)
				continue
			}
		} else if t.handoff {
			c.reown(t)
		}
		if w.Check != t.Check {
			t.Check = w.Check
			if !t.running && !t.paused {
				c.schedule(t, c.o.Clock.Now().Add(jitter(t.Check.Interval.D())))
			}
		}
	}
	now := c.o.Clock.Now()
	for key, w := range want {
		if _, ok := have[key]; ok || !c.owns(w) {
			continue
		}
		t := &target{Target: w, onChange: svc.OnChange, owner: svc.Source, state: api.StateUnhealthy, since: now}
		t.done = func(r Result) { c.deliver(t, r) }
		// Take over the current consensus, so a checker that starts next to
		// running ones (or restarts) does not flap a healthy node: it writes
		// its own verdict after its first probe agrees.
		if consensus[w.Node] {
			t.state = api.StateHealthy
		}
		if decided[w.Node] {
			t.adopted = t.state
		}
		if w.Candidate && !consensus[w.Node] {
			t.written = api.StateUnhealthy // absence means unhealthy for candidates: nothing to write until one passes
		}
		have[key] = t
		c.targets[key] = t
		c.counts[t.written]++
		if t.paused = maint[w.Node]; !t.paused {
			c.schedule(t, now.Add(c.firstProbe(w.Check)))
		}
	}
}

// syncNodes is syncService for the nodes ids of a service whose definition
// did not change (and that has no candidate pool).
func (c *Checker) syncNodes(v *registry.ServiceView, ids []string) {
	svc := v.Service
	if svc.Check.Type == api.CheckNone {
		return
	}
	have := c.targetsOf(svc.Name)
	now := c.o.Clock.Now()
	for _, id := range ids {
		key := svc.Name + "/" + id
		t := have[key]
		n, ok := v.Node(id)
		if !ok || n.Source == api.SourceCandidate {
			if t != nil {
				c.remove(t)
				delete(have, key)
			}
			continue
		}
		c.syncNode(have, t, v, n, now)
	}
}

// syncNode brings this checker's target for node n of v's service (t, the
// one in have, or nil) in line with n and the placement: a new address
// replaces it, a node it no longer owns is handed off, one it now owns is
// adopted.
func (c *Checker) syncNode(have map[string]*target, t *target, v *registry.ServiceView, n *api.Node, now time.Time) {
	svc := v.Service
	w := Target{Service: svc.Name, Node: n.ID, Addr: netip.AddrPortFrom(n.Address, uint16(n.PortOf(svc))), Check: svc.Check}
	if t != nil && (w.Addr != t.Addr || t.Candidate) {
		c.remove(t)
		delete(have, t.Key())
		t = nil
	}
	owned := c.owns(w)
	if t == nil {
		if owned {
			c.adopt(have, w.Key(), w, svc, n, now)
		}
		return
	}
	t.onChange = svc.OnChange
	c.setPaused(t, n.Admin.Maint())
	if !owned {
		if !c.disown(t, v) {
			delete(have, t.Key())
		}
	} else if t.handoff {
		c.reown(t)
	}
}

// targetsOf is this checker's map of service's targets, made when missing.
func (c *Checker) targetsOf(service string) map[string]*target {
	have := c.bySvc[service]
	if have == nil {
		have = map[string]*target{}
		c.bySvc[service] = have
	}
	return have
}

// adopt starts probing w, the node n of svc that this checker owns and has
// no target for, under key in have.
func (c *Checker) adopt(have map[string]*target, key string, w Target, svc api.Service, n *api.Node, now time.Time) {
	t := &target{Target: w, onChange: svc.OnChange, owner: svc.Source, state: api.StateUnhealthy, since: now}
	t.done = func(r Result) { c.deliver(t, r) }
	if n.Healthy {
		t.state = api.StateHealthy // the consensus, as in syncService
	}
	if len(n.Checks) > 0 || n.Held {
		t.adopted = t.state
	}
	have[key] = t
	c.targets[key] = t
	c.counts[t.written]++
	if t.paused = n.Admin.Maint(); !t.paused {
		c.schedule(t, now.Add(c.firstProbe(w.Check)))
	}
}

// syncMoved is syncService after only the live checkers changed: the
// service's definition is the one last synced and it has no candidate pool.
// It is one pass over the nodes that computes each one's owners again and
// touches only the targets that move (taken over, handed off) or whose node
// changed in the same batch; it builds no map over the service, so a
// take-over at 100 000 nodes costs a pass, not a rebuild
// (BenchmarkTakeOver).
func (c *Checker) syncMoved(v *registry.ServiceView) {
	svc := v.Service
	if svc.Check.Type == api.CheckNone {
		return
	}
	have := c.targetsOf(svc.Name)
	had, matched := len(have), 0
	now := c.o.Clock.Now()
	var kb []byte
	for _, n := range v.Nodes() {
		if n.Source == api.SourceCandidate {
			continue
		}
		kb = append(append(append(kb[:0], svc.Name...), '/'), n.ID...)
		t := have[string(kb)]
		if t != nil {
			matched++
		}
		c.syncNode(have, t, v, n, now)
	}
	if matched == had {
		return
	}
	// Some targets' nodes are gone (removed in the same batch).
	for key, t := range have {
		if n, ok := v.Node(t.Node); !ok || n.Source == api.SourceCandidate {
			c.remove(t)
			delete(have, key)
		}
	}
}

// candidates expands a service's pool once per change of its candidate list.
func (c *Checker) candidates(svc api.Service) []netip.Addr {
	key := strings.Join(svc.Candidates, ",")
	if cc, ok := c.cands[svc.Name]; ok && cc.key == key {
		return cc.addrs
	}
	addrs := api.ExpandCandidates(svc.Candidates)
	c.cands[svc.Name] = candCache{key: key, addrs: addrs}
	return addrs
}

// remove stops probing t and withdraws its verdict.
func (c *Checker) remove(t *target) {
	c.unschedule(t)
	t.gone = true
	delete(c.targets, t.Key())
	delete(c.handoffs, t.Key())
	c.counts[t.written]--
	if t.said {
		c.w.forget(t)
		t.said = false
	}
}

// jitter spreads first probes over one interval so thousands of targets do
// not fire together.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// dueQueue is a min-heap of the targets' next probes by due time. The keys
// are kept in the entries, so ordering reads no target. A target that is
// rescheduled or removed leaves its old entry behind, stale (its gen no
// longer the target's), to be skipped when it comes up.
type dueQueue []dueEntry

type dueEntry struct {
	key int64 // due time, ns since the checker's epoch
	t   *target
	gen uint32
}

func (q dueQueue) stale(i int) bool { return q[i].gen != q[i].t.qgen || !q[i].t.queued }

func (q *dueQueue) push(e dueEntry) {
	*q = append(*q, e)
	h := *q
	j := len(h) - 1
	for j > 0 {
		p := (j - 1) / 2
		if h[p].key <= h[j].key {
			break
		}
		h[p], h[j] = h[j], h[p]
		j = p
	}
}

func (q *dueQueue) pop() dueEntry {
	h := *q
	e := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = dueEntry{}
	h = h[:last]
	*q = h
	h.down(0)
	return e
}

func (q dueQueue) down(j int) {
	for {
		l := 2*j + 1
		if l >= len(q) {
			return
		}
		m := l
		if r := l + 1; r < len(q) && q[r].key < q[l].key {
			m = r
		}
		if q[j].key <= q[m].key {
			return
		}
		q[j], q[m] = q[m], q[j]
		j = m
	}
}

// compact drops the stale entries.
func (q *dueQueue) compact() {
	h := *q
	n := 0
	for i := range h {
		if !h.stale(i) {
			h[n] = h[i]
			n++
		}
	}
	clear(h[n:])
	h = h[:n]
	for j := n/2 - 1; j >= 0; j-- {
		h.down(j)
	}
	*q = h
}
