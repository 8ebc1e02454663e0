package ha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// ObserverStore is what an Observer writes through (a *store.Store).
type ObserverStore interface {
	GrantLease(ctx context.Context, ttl time.Duration) (*store.Lease, error)
	PutObservation(ctx context.Context, o api.Observation, lease *store.Lease) error
	DeleteObservation(ctx context.Context, group, observer string) error
	RevokeHolder(ctx context.Context, group, member string, fencing, lease int64) (bool, error)
	AppendEvent(ctx context.Context, e api.Event, origin string) (int64, error)
}

var _ ObserverStore = (*store.Store)(nil)

// ObserverOptions configure an Observer.
type ObserverOptions struct {
	// Name is this seamark server's name: the observer's name in the store.
	Name string
	// Registerer gets the observer's metrics (the server's own registry).
	Registerer prometheus.Registerer
	// Locality is Locality(): a loopback endpoint is probed only from the
	// same host and network namespace.
	Locality  string
	Store     ObserverStore
	Snapshots Snapshots
	Logger    *slog.Logger
	// Probe asks endpoint (host:port) whether its process runs, by ctx's
	// deadline; nil error: it answered. Default: an HTTP GET of api.AlivePath.
	Probe func(ctx context.Context, endpoint string) error
}

// Observer is the fast failover path of balancer groups. Every seamark
// server runs one: it probes the active member of every group that uses
// fast failover (unless this server campaigns for that member), writes its
// view to the store, and ends the member's lease once a majority of the
// observers of that same claim say down.
type Observer struct {
	o           ObserverOptions
	log         *slog.Logger
	revocations *prometheus.CounterVec
	late        *prometheus.CounterVec
}

// NewObserver returns an Observer; Run starts it.
func NewObserver(o ObserverOptions) *Observer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Probe == nil {
		o.Probe = httpAlive()
	}
	ob := &Observer{o: o, log: o.Logger.With("component", "ha-observer", "observer", o.Name),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_group_revocations_total",
			Help: "Active balancer members whose lease this server's observer ended (fast failover), by group and member.",
		}, []string{"group", "member"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_group_observer_late_probes_total",
			Help: "Failed probes of an active member this server's observer did not count because it was itself late (the probe took longer than its timeout plus slack: local trouble, not a vote), by group and member.",
		}, []string{"group", "member"})}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{ob.revocations, ob.late} {
			if err := o.Registerer.Register(c); err != nil {
				ob.log.Warn("observer metrics not registered", "err", err)
			}
		}
	}
	return ob
}

// Run watches the snapshot and keeps one watch per group's active member
// until ctx ends.
func (ob *Observer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	type running struct {
		h    holder
		stop context.CancelFunc
		done chan struct{}
	}
	watches := map[string]running{}
	// ended are the watches stopped but maybe not finished, by group: the
	// next watch of a group waits for the last one, whose deletion of this
	// observer's view must not land after the new view.
	ended := map[string]chan struct{}{}
	defer func() {
		for _, w := range watches {
			w.stop()
		}
		wg.Wait()
	}()
	lease := &observerLease{st: ob.o.Store}
	defer lease.close()
	snap := ob.o.Snapshots.Current()
	for {
		want := map[string]holder{}
		for _, g := range snap.Groups() {
			if g.Mode == api.ModeActiveActive || !g.FastFailoverOn() {
				continue
			}
			if h, ok := ob.target(snap.Role(g.Name), snap.Candidates(g.Name)); ok {
				want[g.Name] = h
			}
		}
		for name, w := range watches {
			if h, ok := want[name]; !ok || h != w.h {
				w.stop()
				delete(watches, name)
				ended[name] = w.done
			}
		}
		for name, h := range want {
			if _, ok := watches[name]; ok {
				continue
			}
			wctx, stop := context.WithCancel(ctx)
			prev, done := ended[name], make(chan struct{})
			delete(ended, name)
			watches[name] = running{h: h, stop: stop, done: done}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(done)
				if prev != nil {
					<-prev
				}
				ob.watch(wctx, h, lease)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-ob.o.Snapshots.Next(snap):
			snap = ob.o.Snapshots.Current()
		}
	}
}

// target returns the holder to watch in a group: the role record's member,
// on the same lease as its candidacy, with an endpoint this server may
// probe, and not campaigned for by this server.
func (ob *Observer) target(role *api.Role, cands []*api.Candidacy) (holder, bool) {
	if role == nil {
		return holder{}, false
	}
	for _, c := range cands {
		if c.Member != role.Member || c.Lease != role.Lease {
			continue
		}
		if c.Server == ob.o.Name || !mayProbe(c, ob.o.Locality) {
			return holder{}, false
		}
		return holder{group: role.Group, member: role.Member, endpoint: c.Endpoint, lease: role.Lease, fencing: role.Fencing}, true
	}
	return holder{}, false
}

// mayProbe reports whether probing the candidacy's endpoint tells anything:
// a loopback endpoint only from the same locality.
func mayProbe(c *api.Candidacy, locality string) bool {
	ap, err := netip.ParseAddrPort(c.Endpoint)
	if err != nil || ap.Addr().IsUnspecified() {
		return false
	}
	if ap.Addr().IsLoopback() {
		return c.Locality != "" && c.Locality == locality
	}
	return true
}

type probeResult struct {
	seq int64
	err error
	at  time.Time
}

// watch probes h every ProbeInterval until ctx ends (the role moved, or the
// server stops), writes this observer's view when it changes, and ends h's
// lease once the observers' majority says down.
func (ob *Observer) watch(ctx context.Context, h holder, lease *observerLease) {
	log := ob.log.With("group", h.group, "member", h.member, "lease", fmt.Sprintf("%x", h.lease))
	results := make(chan probeResult, 64)
	var probes sync.WaitGroup
	defer probes.Wait()
	probes.Add(1)
	go func() {
		defer probes.Done()
		tick := time.NewTicker(ProbeInterval)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			probes.Add(1)
			go func() {
				defer probes.Done()
				start := time.Now()
				pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
				err := ob.o.Probe(pctx, h.endpoint)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if took := time.Since(start); late(err, took) {
					ob.late.WithLabelValues(h.group, h.member).Inc()
					return
				}
				select {
				case results <- probeResult{seq, err, time.Now()}:
				default:
				}
			}()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() {
		// No longer watching this holder: our view of it goes away.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		ob.o.Store.DeleteObservation(dctx, h.group, ob.o.Name)
		cancel()
	}()
	var det detector
	stored := false       // the store holds our current view
	writeFailing := false // the last write failed (logged once)
	snap := ob.o.Snapshots.Current()
	own := func() api.Observation {
		return api.Observation{Group: h.group, Observer: ob.o.Name, Member: h.member, Lease: h.lease, Fencing: h.fencing,
			Down: det.down(), Reason: det.reason, Since: det.since}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-results:
			if det.add(r.seq, r.err, r.at) || (det.seen && !stored) {
				stored = false
				if det.down() {
					log.Warn("the active member's endpoint failed twice in a row", "endpoint", h.endpoint, "err", det.reason)
				}
			}
		case <-ob.o.Snapshots.Next(snap):
			snap = ob.o.Snapshots.Current()
		}
		if !det.seen {
			continue // never saw it answer: no vote (it may be unreachable from here)
		}
		// The observer whose view completes a majority acts at once; the
		// others write their view for it to count.
		var down, of int
		majority := false
		if det.down() {
			down, of, majority = tally(snap.Observations(h.group), h, own())
		}
		if !stored && !majority {
			l, err := lease.get(ctx)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				err = ob.o.Store.PutObservation(wctx, own(), l)
				cancel()
			}
			if err != nil {
				if !writeFailing { // once per outage, not per probe
					log.Warn("write observation (retrying with every probe)", "err", err)
				}
				writeFailing = true
				continue
			}
			stored, writeFailing = true, false
		}
		if !majority {
			continue
		}
		why := fmt.Sprintf("%d of %d observers found %s's endpoint %s dead (two probes in a row failed; here: %s)", down, of, h.member, h.endpoint, det.reason)
		// Not ctx: the revoke itself ends this watch (the role record goes),
		// and its outcome must still be counted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		revoked, err := ob.o.Store.RevokeHolder(rctx, h.group, h.member, h.fencing, h.lease)
		cancel()
		switch {
		case !revoked && err != nil:
			log.Warn("end the dead member's lease", "err", err)
			continue
		case !revoked:
			log.Info("the claim already moved on: nothing to revoke", "fencing", h.fencing)
		default:
			if err != nil {
				log.Warn("took the role from the dead member; its lease lingers until it expires", "err", err)
			}
			log.Warn("ended the active member's lease", "fencing", h.fencing, "reason", why)
			ob.revocations.WithLabelValues(h.group, h.member).Inc()
			e := api.Event{Time: time.Now(), Kind: "revoke", Group: h.group, Member: h.member, Fencing: h.fencing,
				Address: h.endpoint, Checker: ob.o.Name, Reason: why}
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			ob.o.Store.AppendEvent(ectx, e, ob.o.Name+"-revoke-"+h.group)
			cancel()
		}
		<-ctx.Done() // this claim is over: the snapshot brings the next holder
		return
	}
}

// observerLease is the lease an observer's views live on, granted when
// first needed and again when lost.
type observerLease struct {
	st ObserverStore
	mu sync.Mutex
	l  *store.Lease
}

func (o *observerLease) get(ctx context.Context) (*store.Lease, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.l != nil {
		select {
		case <-o.l.Done():
			o.l = nil
		default:
			return o.l, nil
		}
	}
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	l, err := o.st.GrantLease(gctx, time.Second)
	if err != nil {
		return nil, err
	}
	o.l = l
	return l, nil
}

func (o *observerLease) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.l != nil {
		o.l.Close()
		o.l = nil
	}
}

// httpAlive probes an endpoint with an HTTP GET of api.AlivePath over kept-alive
// connections. Any answer counts: the process ran the request.
func httpAlive() func(ctx context.Context, endpoint string) error {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{KeepAlive: -1}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       10 * time.Second,
		ResponseHeaderTimeout: ProbeTimeout,
		DisableCompression:    true,
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(ctx context.Context, endpoint string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+api.AlivePath, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				return errors.New("connection refused")
			case errors.Is(err, context.DeadlineExceeded):
				return fmt.Errorf("no answer within %v", ProbeTimeout)
			}
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil
	}
}
