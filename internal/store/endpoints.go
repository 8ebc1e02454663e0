package store

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// How the client's endpoints are tended on an external cluster.
const (
	endpointCheckEvery = 250 * time.Millisecond
	// endpointCheckTimeout is the least time a member has to answer; on a
	// slow machine it is silentFactor times the store's recent round trip
	// (see endpointTimeout).
	endpointCheckTimeout = 250 * time.Millisecond
)

// endpointTimeout is how long a member has to answer a status request: long
// enough that a busy machine's late answers do not drop a healthy member,
// short enough that a member cut off leaves the client well before its
// watch streams are taken for silent (silentLimit).
func endpointTimeout(rtt time.Duration) time.Duration {
	return max(endpointCheckTimeout, silentFactor*rtt)
}

// tendEndpoints keeps the client on the members that answer and have a
// leader. A member cut off by a partition does not reset connections: the
// client's requests and watch streams to it hang until gRPC keep-alive gives
// up (10 s or more). Every endpointCheckEvery (and at once when a watch went
// silent) each configured member is asked for its status; the client is
// pointed at the ones that answer with a leader, which also fails over every
// request stuck on the others: a watch stream on a member that is cut off
// resumes on another from its last revision, with no full re-read, in
// about endpointCheckEvery + endpointTimeout. When none qualifies, every
// endpoint stays. A status answer is a store round trip: it feeds the
// estimate the timeouts follow.
func (s *Store) tendEndpoints(ctx context.Context) {
	defer close(s.tended)
	current := slices.Clone(s.eps)
	tick := time.NewTicker(endpointCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.recheck:
		}
		healthy := s.healthyEndpoints(ctx)
		if len(healthy) == 0 {
			healthy = slices.Clone(s.eps)
		}
		if slices.Equal(healthy, current) {
			continue
		}
		s.log.Warn("store endpoints changed", "using", strings.Join(healthy, ","), "configured", strings.Join(s.eps, ","))
		s.cli.SetEndpoints(healthy...)
		current = healthy
	}
}

// healthyEndpoints returns, in configured order, the members that answer a
// status request in time and know a leader.
func (s *Store) healthyEndpoints(ctx context.Context) []string {
	ok := make([]bool, len(s.eps))
	var wg sync.WaitGroup
	for i, ep := range s.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, endpointTimeout(s.rtt.get()))
			defer cancel()
			t0 := time.Now()
			r, err := s.cli.Status(cctx, ep)
			ok[i] = err == nil && r.Leader != 0
			if err == nil {
				s.rtt.observe(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	var out []string
	for i, ep := range s.eps {
		if ok[i] {
			out = append(out, ep)
		}
	}
	return out
}

// checkEndpointsNow asks the endpoint tender for a check at once (a watch
// went silent). It never blocks.
func (s *Store) checkEndpointsNow() {
	select {
	case s.recheck <- struct{}{}:
	default:
	}
}
