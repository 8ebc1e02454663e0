package ha

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/seamark/seamark/api"
)

// trackSet probes a group's tracked checks, each on its own interval with
// rise/fall, and wakes the campaign when one changes state.
type trackSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	state []trackResult
}

func startTracks(ctx context.Context, tracks []api.Track, probe Probe, wake chan<- struct{}, log *slog.Logger) *trackSet {
	ctx, cancel := context.WithCancel(ctx)
	ts := &trackSet{cancel: cancel, state: make([]trackResult, len(tracks))}
	for i, t := range tracks {
		ts.state[i] = trackResult{weight: t.Weight}
		if probe == nil {
			continue
		}
		ts.wg.Add(1)
		go func() {
			defer ts.wg.Done()
			ts.follow(ctx, i, t, probe, wake, log)
		}()
	}
	return ts
}

// follow probes track i until ctx ends. A check starts passing; it fails
// after fall failures in a row and passes again after rise passes.
func (ts *trackSet) follow(ctx context.Context, i int, t api.Track, probe Probe, wake chan<- struct{}, log *slog.Logger) {
	chk := t.Check
	interval, timeout := chk.Interval.D(), chk.Timeout.D()
	if interval <= 0 {
		interval = time.Second
	}
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	rise, fall := max(chk.Rise, 1), max(chk.Fall, 1)
	ups, downs := 0, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := probe(pctx, chk)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ts.mu.Lock()
		st := &ts.state[i]
		changed := false
		if err != nil {
			ups, downs = 0, downs+1
			if !st.failing && downs >= fall {
				st.failing, st.reason, changed = true, fmt.Sprintf("track %s %s: %v", chk.Type, chk.Address, err), true
			}
		} else {
			downs, ups = 0, ups+1
			if st.failing && ups >= rise {
				st.failing, st.reason, changed = false, "", true
			}
		}
		ts.mu.Unlock()
		if changed {
			log.Info("tracked check changed", "check", chk.Type+" "+chk.Address, "failing", err != nil, "weight", t.Weight, "err", err)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		timer.Reset(interval)
	}
}

func (ts *trackSet) results() []trackResult {
	if ts == nil {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]trackResult(nil), ts.state...)
}

func (ts *trackSet) stop() {
	ts.cancel()
	ts.wg.Wait()
}
