package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// writer owns the checker's lease and writes verdicts and events to the store
// off the scheduler's goroutine, so a slow or unreachable store never delays a
// probe. Pending verdicts are kept per target, newest wins; a failed write is
// retried with backoff. A lost lease is granted again here too, each attempt
// bounded by grantTimeout and spaced by exponential backoff with jitter,
// while the scheduler goes on probing; once granted, every current verdict is
// written again on the new lease.
type writer struct {
	st    Store
	id    string
	log   *slog.Logger
	clock Clock
	ttl   time.Duration

	mu      sync.Mutex
	lease   *store.Lease
	info    api.Checker
	pending map[string]pendingVerdict // target key -> newest wanted
	current map[string]pendingVerdict // target key -> the verdict that stands
	events  []api.Event
	wake    chan struct{}
	// infoDirty: info changed (degraded or not) and is to be written again.
	infoDirty bool
}

type pendingVerdict struct {
	service, node string
	verdict       api.Verdict
	delete        bool
}

// maxPendingEvents bounds the events kept while the store is out of reach.
const maxPendingEvents = 1000

// Pacing of the writer's retries and lease grants.
const (
	grantTimeout = 2 * time.Second
	retryFirst   = 100 * time.Millisecond
	retryMax     = 5 * time.Second
)

var metricGrants = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "seamark_health_lease_grants_total", Help: "Attempts of the checker to grant its lease again after it was lost, by result.",
}, []string{"result"})

func newWriter(st Store, id string, log *slog.Logger, clock Clock, ttl time.Duration) *writer {
	return &writer{st: st, id: id, log: log, clock: clock, ttl: ttl,
		pending: map[string]pendingVerdict{}, current: map[string]pendingVerdict{}, wake: make(chan struct{}, 1)}
}

// register grants the checker's lease and announces the checker on it.
func (w *writer) register(ctx context.Context, info api.Checker) error {
	w.info = info
	return w.reregister(ctx)
}

func (w *writer) reregister(ctx context.Context) error {
	ctx, cancel := withClockTimeout(ctx, w.clock, grantTimeout)
	defer cancel()
	l, err := w.st.GrantLease(ctx, w.ttl)
	if err != nil {
		return err
	}
	w.mu.Lock()
	info := w.info
	w.mu.Unlock()
	if err := w.st.PutChecker(ctx, info, l); err != nil {
		l.Close()
		return err
	}
	w.mu.Lock()
	old := w.lease
	w.lease = l
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// regrant grants a new lease after the last was lost, until it succeeds or
// ctx ends, and then queues every standing verdict to be written on it.
func (w *writer) regrant(ctx context.Context) {
	w.log.Warn("checker lease lost; granting a new one (probing goes on)")
	backoff := retryFirst
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := w.reregister(ctx)
		if err == nil {
			metricGrants.WithLabelValues("ok").Inc()
			w.mu.Lock()
			for k, v := range w.current {
				if _, newer := w.pending[k]; !newer {
					w.pending[k] = v
				}
			}
			n := len(w.current)
			w.mu.Unlock()
			w.log.Info("checker lease granted again; rewriting verdicts", "attempts", attempt, "verdicts", n)
			w.poke()
			return
		}
		metricGrants.WithLabelValues("failed").Inc()
		if attempt == 1 || attempt%10 == 0 {
			w.log.Error("grant checker lease", "attempt", attempt, "err", err, "next_in", backoff)
		}
		if !w.sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			return
		}
		backoff = min(backoff*2, retryMax)
	}
}

// sleep waits d on the writer's clock; false when ctx ended first.
func (w *writer) sleep(ctx context.Context, d time.Duration) bool {
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// withClockTimeout is context.WithTimeout on clock.
func withClockTimeout(ctx context.Context, clock Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := clock.(RealClock); real {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancel(ctx)
	t := clock.NewTimer(d)
	go func() {
		defer t.Stop()
		select {
		case <-t.C():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// setDegraded records why the checker does not trust its probes ("" when it
// does again) and has the checker's record written again.
func (w *writer) setDegraded(why string) {
	w.mu.Lock()
	w.info.Degraded = why
	w.infoDirty = true
	w.mu.Unlock()
	w.poke()
}

// lost is closed when the current lease is lost.
func (w *writer) lost() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lease == nil {
		return nil
	}
	return w.lease.Done()
}

// close revokes the lease: this checker's verdicts stop counting now.
func (w *writer) close() {
	w.mu.Lock()
	l := w.lease
	w.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

func (w *writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *writer) verdict(t *target, st api.NodeState) {
	v := api.Verdict{Checker: w.id, State: st, Reason: t.last.Reason, Since: t.since.UTC(), Latency: api.Duration(t.last.Latency)}
	p := pendingVerdict{service: t.Service, node: t.Node, verdict: v}
	w.mu.Lock()
	w.pending[t.Key()] = p
	w.current[t.Key()] = p
	w.mu.Unlock()
	w.poke()
}

func (w *writer) forget(t *target) {
	w.mu.Lock()
	w.pending[t.Key()] = pendingVerdict{service: t.Service, node: t.Node, delete: true}
	delete(w.current, t.Key())
	w.mu.Unlock()
	w.poke()
}

func (w *writer) event(e api.Event) {
	w.mu.Lock()
	if len(w.events) >= maxPendingEvents {
		w.events = w.events[1:]
	}
	w.events = append(w.events, e)
	w.mu.Unlock()
	w.poke()
}

// run writes until ctx ends, and grants the lease again whenever it is lost.
func (w *writer) run(ctx context.Context) {
	backoff := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.lost():
			w.regrant(ctx)
			continue
		case <-w.wake:
		}
		for ctx.Err() == nil {
			if ok := w.flush(ctx); ok {
				backoff = retryFirst
				break
			}
			select {
			case <-w.lost():
				// A write failed for the lost lease: grant first.
			default:
				if !w.sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
					return
				}
				backoff = min(backoff*2, retryMax)
				continue
			}
			break
		}
	}
}

// flush writes everything pending, verdicts and events each in batched
// transactions; it reports false when a write failed (what failed stays
// pending unless something newer replaced it).
func (w *writer) flush(ctx context.Context) bool {
	w.mu.Lock()
	pending, events, lease := w.pending, w.events, w.lease
	info, infoDirty := w.info, w.infoDirty
	w.pending, w.events, w.infoDirty = map[string]pendingVerdict{}, nil, false
	w.mu.Unlock()
	ok := true
	if infoDirty {
		wctx, cancel := withClockTimeout(ctx, w.clock, grantTimeout)
		err := w.st.PutChecker(wctx, info, lease)
		cancel()
		if err != nil {
			ok = false
			w.mu.Lock()
			w.infoDirty = true
			w.mu.Unlock()
		}
	}
	if len(pending) > 0 {
		batch := make([]store.VerdictWrite, 0, len(pending))
		for _, p := range pending {
			batch = append(batch, store.VerdictWrite{Service: p.service, Node: p.node, Verdict: p.verdict, Delete: p.delete})
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.st.PutVerdicts(wctx, w.id, batch, lease)
		cancel()
		if err != nil {
			ok = false
			w.log.Warn("write verdicts", "count", len(batch), "err", err)
			w.mu.Lock()
			for key, p := range pending {
				if _, newer := w.pending[key]; !newer {
					w.pending[key] = p
				}
			}
			w.mu.Unlock()
		}
	}
	if len(events) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.st.AppendEvents(wctx, events, w.id)
		cancel()
		if err != nil {
			ok = false
			w.log.Warn("write events", "count", len(events), "err", err)
			w.mu.Lock()
			w.events = append(events, w.events...)
			if len(w.events) > maxPendingEvents {
				w.events = w.events[len(w.events)-maxPendingEvents:]
			}
			w.mu.Unlock()
		}
	}
	return ok
}
