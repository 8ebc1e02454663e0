package httpapi

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seamark/seamark/api"
)

// storeHealth is the store's status as the last probe saw it: /v1/status
// answers from it, so a flood of status calls costs the store nothing.
type storeHealth struct {
	probeMu sync.Mutex // one probe at a time
	mu      sync.Mutex
	st      api.StoreStatus
	ok      bool // st holds a probe's answer
}

// storeProbeTimeout bounds one probe of the store.
const storeProbeTimeout = 2 * time.Second

// Run probes the store every StoreProbeEvery until ctx ends; /v1/status
// answers from the last probe. Without Run, status probes at most once per
// StoreProbeEvery itself (one probe for any number of requests).
func (h *Handler) Run(ctx context.Context) {
	t := time.NewTicker(h.o.StoreProbeEvery)
	defer t.Stop()
	for {
		h.probeStore(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeStore asks the store for its status, with a deadline, and keeps
// the answer.
func (h *Handler) probeStore(ctx context.Context) api.StoreStatus {
	h.health.probeMu.Lock()
	defer h.health.probeMu.Unlock()
	if st, fresh := h.cachedStore(h.o.StoreProbeEvery / 2); fresh {
		return st // another caller probed while this one waited
	}
	pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	st, err := h.o.Store.Status(pctx)
	cancel()
	st.CheckedAt = time.Now()
	st.Available = err == nil
	if err != nil {
		st.Error = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			st.Error = "the store did not answer within " + storeProbeTimeout.String() + ": " + err.Error()
		}
		h.health.mu.Lock()
		wasOK := h.health.ok && h.health.st.Available
		h.health.mu.Unlock()
		if wasOK {
			h.log.Warn("store unavailable", "err", err)
		}
	}
	h.health.mu.Lock()
	h.health.st, h.health.ok = st, true
	h.health.mu.Unlock()
	return st
}

// cachedStore returns the last probe's answer and whether it is younger
// than maxAge.
func (h *Handler) cachedStore(maxAge time.Duration) (api.StoreStatus, bool) {
	h.health.mu.Lock()
	defer h.health.mu.Unlock()
	return h.health.st, h.health.ok && time.Since(h.health.st.CheckedAt) < maxAge
}

// storeStatus is the store's status for /v1/status: the last probe's, or
// a new probe's when the last is older than three probe intervals and a
// probe's timeout (Run is not running).
func (h *Handler) storeStatus(ctx context.Context) api.StoreStatus {
	if st, fresh := h.cachedStore(3*h.o.StoreProbeEvery + storeProbeTimeout); fresh {
		return st
	}
	return h.probeStore(ctx)
}

// storeUnavailable reports a gRPC error that means the store cannot be
// reached (not a refusal of the request).
func storeUnavailable(err error) bool {
	c := status.Code(err) // unwraps
	return c == codes.Unavailable || c == codes.DeadlineExceeded
}
