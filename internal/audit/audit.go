// Package audit records who changed what: every API write and every DNS
// UPDATE becomes a structured log line (always, at once) and an event of
// kind "audit" in the store's event log (GET /v1/events, `seamark events
// --kind audit`).
//
// What it reads: the audit records the HTTP API and the DNS primary hand to
// Record. What it writes: one slog line per record, and the records as
// events through the store's AppendEvents, in batches, from one goroutine
// (Run), so a burst of writes costs the store a few batched puts, not one
// put each. When the store lags and the queue is full the event is dropped
// and counted; the log line is never dropped.
package audit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
)

// Store is where audit events are kept: the store's event log.
type Store interface {
	AppendEvents(ctx context.Context, es []api.Event, origin string) error
}

// QueueSize bounds the records waiting for the store.
const QueueSize = 4096

// maxBatch bounds the events of one store write.
const maxBatch = 256

// Log records audit entries.
type Log struct {
	st      Store
	log     *slog.Logger
	origin  string
	q       chan api.Event
	dropped atomic.Int64
}

// New returns a Log that keeps events in st (nil: log lines only), naming
// origin (the server's name) in their keys.
func New(st Store, origin string, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, log: logger.With("component", "audit"), origin: origin, q: make(chan api.Event, QueueSize)}
}

// Record logs e (kind audit; Time is set when zero) and queues it for the
// event log. It never blocks.
func (l *Log) Record(e api.Event) {
	if l == nil {
		return
	}
	e.Kind = api.EventAudit
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	l.log.Info("audit", "who", e.Who, "from", e.From, "action", e.Action, "result", e.Result)
	if l.st == nil {
		return
	}
	select {
	case l.q <- e:
	default:
		if n := l.dropped.Add(1); n == 1 || n%1000 == 0 {
			l.log.Warn("audit event log full: events dropped (the log lines are kept)", "dropped", n)
		}
	}
}

// Dropped is how many records were not kept in the event log.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Run writes queued records to the store until ctx ends, then writes what
// is still queued (for at most 2 s).
func (l *Log) Run(ctx context.Context) {
	if l.st == nil {
		return
	}
	for {
		select {
		case e := <-l.q:
			l.flush(ctx, e, 5*time.Second)
		case <-ctx.Done():
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case e := <-l.q:
					l.flush(ctx, e, time.Until(deadline))
				default:
					return
				}
			}
			return
		}
	}
}

func (l *Log) flush(ctx context.Context, first api.Event, timeout time.Duration) {
	batch := []api.Event{first}
	for len(batch) < maxBatch {
		select {
		case e := <-l.q:
			batch = append(batch, e)
			continue
		default:
		}
		break
	}
	// A write already taken off the queue finishes even when ctx ends.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := l.st.AppendEvents(wctx, batch, "audit-"+l.origin); err != nil {
		l.dropped.Add(int64(len(batch)))
		l.log.Warn("audit events not kept", "events", len(batch), "err", err)
	}
}
