package httpapi

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// AdminStore is what the node admin endpoints write through (a
// *store.Store): a node's admin state lives on its own key, apart from the
// node's registration, so an agent's re-registrations never undo it.
type AdminStore interface {
	SetAdmin(ctx context.Context, service, id string, a *api.NodeAdmin, by string) (int64, *api.NodeAdmin, error)
}

var _ AdminStore = (*store.Store)(nil)

// adminRoutes adds the node admin endpoints. They need write access: a
// token that may only read (or, later, only register its own nodes, as an
// agent's) cannot drain a node.
func (h *Handler) adminRoutes() {
	for pattern, fn := range map[string]func(http.ResponseWriter, *http.Request) error{
		"PUT /v1/services/{service}/nodes/{id}/admin":    h.setAdmin,
		"DELETE /v1/services/{service}/nodes/{id}/admin": h.clearAdmin,
	} {
		h.mux.Handle(pattern, h.wrap(pattern, AccessWrite, fn))
	}
	h.mux.Handle("GET /v1/admin", h.wrap("GET /v1/admin", AccessRead, h.listAdmin))
}

// listAdmin answers every admin state, also of nodes not registered now.
func (h *Handler) listAdmin(w http.ResponseWriter, r *http.Request) error {
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindAdmin) }, func(s *registry.Snapshot) (any, error) {
		out := []api.NodeAdminStatus{}
		for _, a := range s.AdminStates() {
			e := api.NodeAdminStatus{Service: a.Service, Node: a.Node, Admin: *a.Admin}
			if v, ok := s.Service(a.Service); ok {
				for _, n := range v.Nodes() {
					e.Registered = e.Registered || n.ID == a.Node
				}
			}
			out = append(out, e)
		}
		return out, nil
	})
}

// nodeParams reads {service} and {id}, which must be names.
func nodeParams(r *http.Request) (service, id string, err error) {
	service, id = r.PathValue("service"), r.PathValue("id")
	if msg := api.CheckName(service); msg != "" {
		return "", "", errorf(http.StatusBadRequest, "service: %s", msg)
	}
	if msg := api.CheckName(id); msg != "" {
		return "", "", errorf(http.StatusBadRequest, "id: %s", msg)
	}
	return service, id, nil
}

func (h *Handler) adminStore() (AdminStore, error) {
	as, ok := h.o.Store.(AdminStore)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "this server's store keeps no admin states")
	}
	return as, nil
}

// setAdmin sets a registered node's admin state and weight override.
func (h *Handler) setAdmin(w http.ResponseWriter, r *http.Request) error {
	as, err := h.adminStore()
	if err != nil {
		return err
	}
	service, id, err := nodeParams(r)
	if err != nil {
		return err
	}
	var a api.NodeAdmin
	if err := DecodeBody(r.Body, &a); err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if a.State == "" {
		a.State = api.AdminReady
	}
	if snap := h.o.Snapshots.Current(); snap != nil {
		v, ok := snap.Service(service)
		if !ok {
			return errorf(http.StatusNotFound, "service %q does not exist", service)
		}
		known := false
		for _, n := range v.Nodes() {
			known = known || n.ID == id
		}
		if !known {
			return errorf(http.StatusNotFound, "node %q of service %q is not registered now; see `seamark nodes %s` for its nodes", id, service, service)
		}
	}
	a.By = h.who(r)
	a.Since = time.Now().UTC().Truncate(time.Millisecond)
	rev, old, err := as.SetAdmin(r.Context(), service, id, &a, a.By)
	if err != nil {
		return err
	}
	h.log.Info("node admin state set", "service", service, "node", id, "from", old.StateOf(), "to", a.State, "weight", a.Weight, "by", a.By)
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

// clearAdmin clears a node's admin state: ready, with its registered weight.
// It works whether or not the node is registered now.
func (h *Handler) clearAdmin(w http.ResponseWriter, r *http.Request) error {
	as, err := h.adminStore()
	if err != nil {
		return err
	}
	service, id, err := nodeParams(r)
	if err != nil {
		return err
	}
	by := h.who(r)
	rev, old, err := as.SetAdmin(r.Context(), service, id, nil, by)
	if err != nil {
		return err
	}
	if rev == 0 {
		// Nothing to clear: answer the current revision, so ?index= works.
		if snap := h.o.Snapshots.Current(); snap != nil {
			rev = snap.Revision
		}
		return writeJSON(w, http.StatusOK, api.WriteResult{Revision: rev})
	}
	h.log.Info("node admin state cleared", "service", service, "node", id, "from", old.StateOf(), "by", by)
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

// who names the caller for the event log: the name of its token, or, when
// the server has no tokens, "anonymous@" and the client's address.
func (h *Handler) who(r *http.Request) string {
	if secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && secret != "" {
		for _, t := range h.o.Tokens {
			if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 {
				return t.Name
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "anonymous@" + host
}
