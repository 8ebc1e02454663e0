package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// writer owns the checker's lease and writes verdicts and events to the store
// off the scheduler's goroutine, so a slow or unreachable store never delays a
// probe. Pending verdicts are kept per target, newest wins; a failed write is
// retried with backoff.
type writer struct {
	st  Store
	id  string
	log *slog.Logger

	mu      sync.Mutex
	lease   *store.Lease
	info    api.Checker
	pending map[string]pendingVerdict // target key -> newest wanted
	events  []api.Event
	wake    chan struct{}
}

type pendingVerdict struct {
	service, node string
	verdict       api.Verdict
	delete        bool
}

// maxPendingEvents bounds the events kept while the store is out of reach.
const maxPendingEvents = 1000

func newWriter(st Store, id string, log *slog.Logger) *writer {
	return &writer{st: st, id: id, log: log, pending: map[string]pendingVerdict{}, wake: make(chan struct{}, 1)}
}

// register grants the checker's lease and announces the checker on it.
func (w *writer) register(ctx context.Context, ttl time.Duration, info api.Checker) error {
	w.info = info
	return w.reregister(ctx, ttl)
}

func (w *writer) reregister(ctx context.Context, ttl time.Duration) error {
	l, err := w.st.GrantLease(ctx, ttl)
	if err != nil {
		return err
	}
	if err := w.st.PutChecker(ctx, w.info, l); err != nil {
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

// lost is closed when the current lease is lost.
func (w *writer) lost() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
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
	w.mu.Lock()
	w.pending[t.Key()] = pendingVerdict{service: t.Service, node: t.Node, verdict: v}
	w.mu.Unlock()
	w.poke()
}

func (w *writer) forget(t *target) {
	w.mu.Lock()
	w.pending[t.Key()] = pendingVerdict{service: t.Service, node: t.Node, delete: true}
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

// run writes until ctx ends.
func (w *writer) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for ctx.Err() == nil {
			if ok := w.flush(ctx); ok {
				backoff = 100 * time.Millisecond
				break
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// flush writes everything pending, verdicts and events each in batched
// transactions; it reports false when a write failed (what failed stays
// pending unless something newer replaced it).
func (w *writer) flush(ctx context.Context) bool {
	w.mu.Lock()
	pending, events, lease := w.pending, w.events, w.lease
	w.pending, w.events = map[string]pendingVerdict{}, nil
	w.mu.Unlock()
	ok := true
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
