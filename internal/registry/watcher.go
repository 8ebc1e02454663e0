package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/internal/store"
)

// Source is what the Watcher reads: a consistent full load and a stream of
// changes after a revision. *store.Store is one.
type Source interface {
	Load(ctx context.Context) ([]store.Item, int64, error)
	Watch(ctx context.Context, from int64) (<-chan store.Batch, func() error)
}

var _ Source = (*store.Store)(nil)

// watcherMetrics are a Watcher's own metrics (see Register).
type watcherMetrics struct {
	revision prometheus.Gauge
	resyncs  *prometheus.CounterVec
	build    prometheus.Histogram
}

func newWatcherMetrics() watcherMetrics {
	return watcherMetrics{
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_snapshot_revision", Help: "Store revision of the snapshot answers are served from.",
		}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seamark_snapshot_resyncs_total", Help: "Full re-reads of the store, by reason.",
		}, []string{"reason"}),
		build: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seamark_snapshot_build_seconds", Help: "Time to build a new snapshot from a watch batch or a full load.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}),
	}
}

// Register adds the watcher's metrics to reg (a registry the server owns).
func (w *Watcher) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{w.m.revision, w.m.resyncs, w.m.build} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register snapshot metrics: %w", err)
		}
	}
	return nil
}

// Watcher keeps the current Snapshot up to date with the store.
type Watcher struct {
	src Source
	log *slog.Logger
	m   watcherMetrics

	mu    sync.Mutex
	cur   *Snapshot
	next  chan struct{} // closed when a snapshot newer than cur is published
	ready chan struct{}
	once  sync.Once
	// preloaded is a full load the server already read (Preload), used
	// instead of the first Load.
	preloaded *preload
}

type preload struct {
	items []store.Item
	rev   int64
}

// Preload hands the watcher a full load of the store at rev that the caller
// already read (the server reads the store once at start, to reconcile its
// config and to build the first snapshot). Run uses it instead of its first
// Load; call it before Run. items must not change afterwards.
func (w *Watcher) Preload(items []store.Item, rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.preloaded = &preload{items: items, rev: rev}
}

// NewWatcher returns a Watcher of src; Run starts it.
func NewWatcher(src Source, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{src: src, log: log.With("component", "registry"), m: newWatcherMetrics(), next: make(chan struct{}), ready: make(chan struct{})}
}

// Current returns the newest snapshot, or nil before the first load.
func (w *Watcher) Current() *Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// Ready is closed once the first snapshot is published.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Next returns a channel that is closed when a snapshot other than s is
// published (at once if one already is). Readers loop on Current and Next.
func (w *Watcher) Next(s *Snapshot) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != s {
		c := make(chan struct{})
		close(c)
		return c
	}
	return w.next
}

// WaitRevision waits until the published snapshot reflects at least rev.
func (w *Watcher) WaitRevision(ctx context.Context, rev int64) (*Snapshot, error) {
	for {
		s := w.Current()
		if s != nil && s.Revision >= rev {
			return s, nil
		}
		select {
		case <-w.Next(s):
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

func (w *Watcher) publish(s *Snapshot) {
	w.mu.Lock()
	w.cur = s
	close(w.next)
	w.next = make(chan struct{})
	w.mu.Unlock()
	w.m.revision.Set(float64(s.Revision))
	w.once.Do(func() { close(w.ready) })
}

// Run loads, publishes and follows the store until ctx ends. Every break of
// the stream (compaction, lost connection, lost leader) leads to a full
// re-read at a new revision; the old snapshot is served until then.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := w.follow(ctx)
		if ctx.Err() != nil {
			break
		}
		reason := "stream"
		if errors.Is(err, store.ErrCompacted) {
			reason = "compacted"
		}
		w.m.resyncs.WithLabelValues(reason).Inc()
		w.log.Warn("store watch broke; reading everything again", "err", err, "reason", reason)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
		if errors.Is(err, store.ErrCompacted) {
			backoff = 0 // nothing is wrong with the store: re-read at once
		}
	}
	return nil
}

// follow does one full load and then applies watch batches until the stream
// breaks.
func (w *Watcher) follow(ctx context.Context) error {
	// The store loads in pages, each bounded in time (a page sent to a
	// member that is cut off fails, and the next load goes elsewhere), so a
	// large store is never cut short by one deadline over the whole load.
	w.mu.Lock()
	pre := w.preloaded
	w.preloaded = nil
	w.mu.Unlock()
	var items []store.Item
	var rev int64
	if pre != nil {
		items, rev = pre.items, pre.rev
	} else {
		var err error
		if items, rev, err = w.src.Load(ctx); err != nil {
			return err
		}
	}
	t0 := time.Now()
	st := newState()
	// What verdicts decided before the re-read holds for a node none
	// decides now (its only owner's lease expired meanwhile).
	st.prior = w.Current()
	snap, _ := st.load(items, rev)
	w.m.build.Observe(time.Since(t0).Seconds())
	if cur := w.Current(); cur == nil || cur.Revision != rev {
		w.publish(snap)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches, errf := w.src.Watch(wctx, rev)
	for b := range batches {
		// Apply every batch already waiting before building once: under a
		// burst of writes readers get fewer, fresher snapshots, each whole.
		t0 := time.Now()
		d := newDirty()
		rev := snap.Revision
		for more := true; more; {
			if b.Revision > rev {
				for _, it := range b.Items {
					st.apply(it, d)
				}
				rev = b.Revision
			}
			select {
			case next, ok := <-batches:
				b, more = next, ok
			default:
				more = false
			}
		}
		if rev == snap.Revision {
			continue
		}
		snap = st.build(snap, rev, d)
		w.m.build.Observe(time.Since(t0).Seconds())
		w.publish(snap)
	}
	cancel()
	return errf()
}
