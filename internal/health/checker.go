package health

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

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

var (
	_ Store     = (*store.Store)(nil)
	_ Snapshots = (*registry.Watcher)(nil)
)

var (
	metricProbes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "seamark_health_probes_total", Help: "Health probes by kind and result.",
	}, []string{"kind", "result"})
	metricProbeSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "seamark_health_probe_seconds", Help: "Health probe latency by kind.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
	}, []string{"kind"})
	metricLateness = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "seamark_health_probe_lateness_seconds", Help: "How late probes start after they were due.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	metricTargets = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "seamark_health_targets", Help: "Targets this checker probes, by its own verdict (healthy, unhealthy, unknown).",
	}, []string{"state"})
)

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
	// LeaseTTL of the checker's lease: a checker that dies stops counting
	// after it. Default 3s.
	LeaseTTL time.Duration
}

// Checker probes every target of the snapshot and writes its verdicts.
type Checker struct {
	o   Options
	log *slog.Logger

	passive chan string // target keys reported by the balancer
	// Fields below are owned by the Run goroutine.
	targets  map[string]*target
	bySvc    map[string]map[string]*target // service -> key -> target
	svcIndex map[string]int64              // service -> ServiceView.Index last synced
	services map[string]api.Service
	cands    map[string]candCache
	counts   map[api.NodeState]int // targets by written verdict
	queue    dueQueue
	results  chan probeDone
	w        *writer
	inflight sync.WaitGroup
}

type candCache struct {
	key   string
	addrs []netip.Addr
}

// target is one probed thing and this checker's belief about it.
type target struct {
	Target
	onChange string
	state    api.NodeState // healthy or unhealthy
	written  api.NodeState // last verdict written, "" for none
	passes   int           // consecutive passes
	fails    int           // consecutive failures
	due      time.Time
	index    int  // in the due queue, -1 when not queued
	running  bool // a probe is in flight
	gone     bool // removed while a probe was in flight
	hurry    bool // passive failure reported: probe at once, then fast
	since    time.Time
	last     Result
}

type probeDone struct {
	t      *target
	res    Result
	start  time.Time
	lateBy time.Duration
}

// New returns a Checker; Run starts it.
func New(o Options) *Checker {
	if o.Prober == nil {
		o.Prober = &NetProber{}
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
	return &Checker{
		o:        o,
		log:      o.Logger.With("component", "health", "checker", o.ID),
		passive:  make(chan string, 1024),
		targets:  map[string]*target{},
		bySvc:    map[string]map[string]*target{},
		svcIndex: map[string]int64{},
		services: map[string]api.Service{},
		cands:    map[string]candCache{},
		counts:   map[api.NodeState]int{},
		results:  make(chan probeDone, 256),
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
	c.w = newWriter(c.o.Store, c.o.ID, c.log)
	if err := c.w.register(ctx, c.o.LeaseTTL, api.Checker{ID: c.o.ID, Started: time.Now().UTC(), Version: c.o.Version}); err != nil {
		return err
	}
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.w.run(wctx) }()
	defer func() {
		c.inflight.Wait()
		stopWriter()
		<-writerDone
		c.w.close()
	}()

	timer := c.o.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	snap := c.o.Snapshots.Current()
	if snap != nil {
		c.sync(snap)
	}
	c.rearm(timer)
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
		case d := <-c.results:
			c.handle(d)
		case key := <-c.passive:
			if t := c.targets[key]; t != nil && !t.gone {
				t.hurry = true
				if !t.running {
					c.schedule(t, c.o.Clock.Now())
				}
			}
		case <-c.w.lost():
			c.log.Warn("checker lease lost; registering again and rewriting verdicts")
			if err := c.w.reregister(ctx, c.o.LeaseTTL); err != nil {
				c.log.Error("register checker", "err", err)
				continue
			}
			for _, t := range c.targets {
				if t.written != "" {
					c.w.verdict(t, t.written)
				}
			}
		}
		c.rearm(timer)
	}
}

func (c *Checker) rearm(timer Timer) {
	timer.Stop()
	if len(c.queue) == 0 {
		timer.Reset(time.Hour)
		return
	}
	timer.Reset(max(c.queue[0].due.Sub(c.o.Clock.Now()), 0))
}

// schedule puts t in the due queue at when.
func (c *Checker) schedule(t *target, when time.Time) {
	t.due = when
	if t.index >= 0 {
		heap.Fix(&c.queue, t.index)
		return
	}
	heap.Push(&c.queue, t)
}

// launchDue starts a probe, each in its own goroutine, for every target that
// is due: one slow target never delays another.
func (c *Checker) launchDue(ctx context.Context) {
	now := c.o.Clock.Now()
	for len(c.queue) > 0 && !c.queue[0].due.After(now) {
		t := heap.Pop(&c.queue).(*target)
		t.running = true
		lateBy := now.Sub(t.due)
		c.inflight.Add(1)
		go func() {
			defer c.inflight.Done()
			start := time.Now()
			pctx, cancel := context.WithTimeout(ctx, t.Check.Timeout.D())
			res := c.o.Prober.Probe(pctx, t.Target)
			cancel()
			select {
			case c.results <- probeDone{t: t, res: res, start: start, lateBy: lateBy}:
			case <-ctx.Done():
			}
		}()
	}
}

// handle applies one probe result: HAProxy's rise/fall counting, then the
// next probe's time (interval, fast_interval while changing, down_interval
// while down).
func (c *Checker) handle(d probeDone) {
	t := d.t
	t.running = false
	kind := t.Check.Type
	result := "ok"
	if !d.res.OK {
		result = "failed"
	}
	metricProbes.WithLabelValues(kind, result).Inc()
	metricProbeSeconds.WithLabelValues(kind).Observe(d.res.Latency.Seconds())
	metricLateness.Observe(d.lateBy.Seconds())
	if t.gone {
		return
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
	now := c.o.Clock.Now()
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
		c.o.Hooks.Fire(t.onChange, e)
	}
	c.countTargets()
}

// countTargets publishes the targets by this checker's verdict; the counts
// are kept as targets come, go and change.
func (c *Checker) countTargets() {
	metricTargets.WithLabelValues("healthy").Set(float64(c.counts[api.StateHealthy]))
	metricTargets.WithLabelValues("unhealthy").Set(float64(c.counts[api.StateUnhealthy]))
	metricTargets.WithLabelValues("unknown").Set(float64(c.counts[""]))
}

// sync brings the targets in line with the snapshot: services whose view
// changed are diffed; the others are left alone (their targets keep their
// schedule and counters).
func (c *Checker) sync(s *registry.Snapshot) {
	seen := map[string]bool{}
	for _, v := range s.Services() {
		name := v.Service.Name
		seen[name] = true
		if idx, ok := c.svcIndex[name]; ok && idx == v.SpecIndex {
			continue // only verdicts changed: nothing to probe differently
		}
		c.svcIndex[name] = v.SpecIndex
		c.services[name] = v.Service
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
	c.countTargets()
}

func (c *Checker) syncService(v *registry.ServiceView) {
	svc := v.Service
	want := map[string]Target{}
	consensus := map[string]bool{}
	if svc.Check.Type != api.CheckNone {
		for _, n := range v.Nodes {
			consensus[n.ID] = n.Healthy
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
	have := c.bySvc[svc.Name]
	if have == nil {
		have = map[string]*target{}
		c.bySvc[svc.Name] = have
	}
	for key, t := range have {
		w, ok := want[key]
		if !ok || w.Addr != t.Addr || w.Candidate != t.Candidate {
			c.remove(t)
			delete(have, key)
			continue
		}
		t.onChange = svc.OnChange
		if w.Check != t.Check {
			t.Check = w.Check
			if !t.running {
				c.schedule(t, c.o.Clock.Now().Add(jitter(t.Check.Interval.D())))
			}
		}
	}
	now := c.o.Clock.Now()
	for key, w := range want {
		if _, ok := have[key]; ok {
			continue
		}
		t := &target{Target: w, onChange: svc.OnChange, index: -1, state: api.StateUnhealthy, since: now}
		// Take over the current consensus, so a checker that starts next to
		// running ones (or restarts) does not flap a healthy node: it writes
		// its own verdict after its first probe agrees.
		if consensus[w.Node] {
			t.state = api.StateHealthy
		}
		if w.Candidate && !consensus[w.Node] {
			t.written = api.StateUnhealthy // absence means unhealthy for candidates: nothing to write until one passes
		}
		have[key] = t
		c.targets[key] = t
		c.counts[t.written]++
		c.schedule(t, now.Add(jitter(w.Check.Interval.D())))
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
	if t.index >= 0 {
		heap.Remove(&c.queue, t.index)
	}
	t.gone = true
	delete(c.targets, t.Key())
	c.counts[t.written]--
	if t.written != "" && !(t.Candidate && t.written == api.StateUnhealthy) {
		c.w.forget(t)
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

// dueQueue is a min-heap of targets by due time.
type dueQueue []*target

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *dueQueue) Push(x any) {
	t := x.(*target)
	t.index = len(*q)
	*q = append(*q, t)
}
func (q *dueQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*q = old[:len(old)-1]
	return t
}

var _ heap.Interface = (*dueQueue)(nil)
