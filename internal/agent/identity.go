package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/seamark/seamark/api"
)

// ServeHTTP answers the identity endpoint: GET api.IdentityPath with the
// node's api.Identity and its service's healthy peers as last seen.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != api.IdentityPath {
		writeJSON(w, http.StatusNotFound, api.Error{Status: http.StatusNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path + "; the agent answers GET " + api.IdentityPath})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, api.Error{Status: http.StatusMethodNotAllowed, Message: r.Method + " is not allowed on " + api.IdentityPath + "; use GET"})
		return
	}
	id := a.Identity()
	if id == nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Status: http.StatusServiceUnavailable, Message: "the agent has not found its address yet; try again"})
		return
	}
	writeJSON(w, http.StatusOK, id)
}

// Identity returns what the identity endpoint answers now, or nil before the
// node's address is known.
func (a *Agent) Identity() *api.Identity {
	base := a.identity.Load()
	if base == nil {
		return nil
	}
	id := *base
	p := a.peers.Load()
	id.Peers, id.Index = p.nodes, p.index
	return &id
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// watchPeers follows the service's healthy nodes with blocking reads, for
// the identity endpoint, until ctx ends.
func (a *Agent) watchPeers(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffMin.D(), a.cfg.BackoffMax.D())
	var index int64
	for ctx.Err() == nil {
		nodes, next, err := a.client.Nodes(ctx, a.cfg.Service, &api.QueryOptions{HealthyOnly: true, Index: index, Wait: peersWait})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := bo.next()
			a.log.Debug("read the service's peers", "err", err, "retry_in", wait.Round(time.Millisecond))
			sleep(ctx, wait)
			continue
		}
		bo.reset()
		if nodes == nil {
			nodes = []api.Node{}
		}
		a.peers.Store(&peerSet{nodes: nodes, index: next})
		if next < index {
			next = 0 // the index went backwards (a new store): read afresh
		}
		index = next
	}
}
