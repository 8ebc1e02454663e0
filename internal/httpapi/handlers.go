package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// maxBody bounds request bodies (api.MaxBodySize): a larger one is a 413.
const maxBody = api.MaxBodySize

// bodyTimeout bounds reading a request body: a client that trickles it is cut.
const bodyTimeout = 30 * time.Second

func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

func writeError(w http.ResponseWriter, e *httpError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="seamark"`)
	}
	if e.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	_ = writeJSON(w, e.status, api.Error{Status: e.status, Message: e.msg})
}

// DecodeBody reads exactly one JSON object into v, rejecting unknown fields
// and trailing data, with messages that say what to change.
func DecodeBody(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "body: larger than %d bytes (the limit of one request; see docs/api.md, Limits)", maxBody)
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "body: %v", err)
	}
	if len(data) > maxBody {
		return errorf(http.StatusRequestEntityTooLarge, "body: larger than %d bytes (the limit of one request; see docs/api.md, Limits)", maxBody)
	}
	if err := decodeStrict(data, v); err != nil {
		return errorf(http.StatusBadRequest, "%s", describeJSONError(err, data, v))
	}
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value; send exactly one object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// fieldOf finds which top-level field of a JSON object makes decoding into a
// fresh value of v's type fail, for errors (like a bad address) that do not
// say.
func fieldOf(data []byte, v any) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return ""
	}
	for name, raw := range fields {
		one, _ := json.Marshal(map[string]json.RawMessage{name: raw})
		if json.Unmarshal(one, reflect.New(t.Elem()).Interface()) != nil {
			return name
		}
	}
	return ""
}

func describeJSONError(err error, data []byte, v any) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "body: empty; send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "body: JSON ends too early"
	case errors.As(err, &se):
		return fmt.Sprintf("body: invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("body: expected a JSON %s, got %s", te.Type, te.Value)
		}
		return fmt.Sprintf("%s: expected %s, got a JSON %s", te.Field, describeType(te.Type.String()), te.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Sprintf("body: unknown field %s; check its spelling against docs/api.md", f)
	}
	if strings.HasPrefix(msg, "more than one") || strings.HasPrefix(msg, "unexpected data") {
		return "body: " + msg
	}
	if f := fieldOf(data, v); f != "" {
		return f + ": " + strings.TrimPrefix(msg, "json: ")
	}
	return "body: " + strings.TrimPrefix(msg, "json: ")
}

func describeType(t string) string {
	switch t {
	case "int", "int64":
		return "a whole number"
	case "string", "api.Source", "api.NodeState":
		return "a string"
	case "bool":
		return "true or false"
	}
	if strings.HasPrefix(t, "[]") {
		return "a list"
	}
	return "an object"
}

// blockingRead runs a Consul-style blocking read: with ?index=N it waits
// (up to ?wait=, default 5m) until index(snapshot) > N, then answers. The
// index is sent in the X-Seamark-Index header.
func (h *Handler) blockingRead(w http.ResponseWriter, r *http.Request, index func(*registry.Snapshot) int64, answer func(*registry.Snapshot) (any, error)) error {
	q := r.URL.Query()
	var after int64
	wait := h.o.MaxWait
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "index: %q is not a revision; pass the %s header of a previous answer", v, api.IndexHeader)
		}
		after = n
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errorf(http.StatusBadRequest, "wait: %q is not a duration like \"30s\"", v)
		}
		wait = min(d, h.o.MaxWait)
	}
	snap := h.o.Snapshots.Current()
	if snap == nil {
		return errorf(http.StatusServiceUnavailable, "the registry is still loading; try again")
	}
	if after > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for index(snap) <= after {
			select {
			case <-h.o.Snapshots.Next(snap):
				snap = h.o.Snapshots.Current()
			case <-timer.C:
				goto done
			case <-h.stopping:
				goto done
			case <-r.Context().Done():
				return nil
			}
		}
	}
done:
	v, err := answer(snap)
	if err != nil {
		return err
	}
	idx := index(snap)
	if idx < 1 {
		idx = 1
	}
	w.Header().Set(api.IndexHeader, strconv.FormatInt(idx, 10))
	return writeJSON(w, http.StatusOK, v)
}

// written waits until the local snapshot shows rev, then answers the write.
func (h *Handler) written(w http.ResponseWriter, r *http.Request, status int, res api.WriteResult) error {
	t0 := time.Now()
	// The write is committed: its own deadline (the store's) is over.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.o.WriteVisibleTimeout)
	defer cancel()
	if _, err := h.o.Snapshots.WaitRevision(ctx, res.Revision); err != nil {
		h.log.Warn("write committed but not yet visible locally", "revision", res.Revision, "err", err)
	} else {
		h.m.writeVisible.Observe(time.Since(t0).Seconds())
	}
	w.Header().Set(api.IndexHeader, strconv.FormatInt(res.Revision, 10))
	return writeJSON(w, status, res)
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) error {
	st := h.storeStatus(r.Context())
	snap := h.o.Snapshots.Current()
	out := api.Status{Version: h.o.Version, StartedAt: h.started, Store: st, Zones: []string{}, Checkers: []api.Checker{}}
	if snap != nil {
		out.SnapshotRevision = snap.Revision
		out.Zones = snap.Zones()
		out.Services = len(snap.Services())
		out.Nodes, out.HealthyNodes = snap.Counts()
		out.Listeners = len(snap.Listeners())
		out.Groups = len(snap.Groups())
		out.Checkers = snap.Checkers()
	}
	if h.o.Config != nil {
		cs := h.o.Config()
		out.Config = &cs
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) listServices(w http.ResponseWriter, r *http.Request) error {
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindService) }, func(s *registry.Snapshot) (any, error) {
		out := []api.Service{}
		for _, v := range s.Services() {
			out = append(out, v.Service)
		}
		return out, nil
	})
}

func serviceIndex(name string) func(*registry.Snapshot) int64 {
	return func(s *registry.Snapshot) int64 {
		if v, ok := s.Service(name); ok {
			return v.Index
		}
		return max(s.Index(store.KindService), s.Index(store.KindNode))
	}
}

func (h *Handler) getService(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("service")
	return h.blockingRead(w, r, serviceIndex(name), func(s *registry.Snapshot) (any, error) {
		v, ok := s.Service(name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "service %q does not exist", name)
		}
		return v.Service, nil
	})
}

func (h *Handler) decodeService(r *http.Request) (api.Service, error) {
	var svc api.Service
	if err := DecodeBody(r.Body, &svc); err != nil {
		return svc, err
	}
	if svc.Source != "" && svc.Source != api.SourceAPI {
		return svc, errorf(http.StatusBadRequest, "source: %q cannot be set through the API; leave it out", svc.Source)
	}
	if name := r.PathValue("service"); name != "" {
		if svc.Name == "" {
			svc.Name = name
		}
		if svc.Name != name {
			return svc, errorf(http.StatusBadRequest, "name: %q differs from %q in the URL", svc.Name, name)
		}
	}
	svc.Source = api.SourceAPI
	svc.SetDefaults()
	return svc, svc.Validate().Err()
}

func (h *Handler) createService(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.decodeService(r)
	if err != nil {
		return err
	}
	rev, err := h.o.Store.PutService(r.Context(), svc, true)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusCreated, api.WriteResult{Revision: rev})
}

func (h *Handler) putService(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.decodeService(r)
	if err != nil {
		return err
	}
	rev, err := h.o.Store.PutService(r.Context(), svc, false)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

func (h *Handler) deleteService(w http.ResponseWriter, r *http.Request) error {
	rev, err := h.o.Store.DeleteService(r.Context(), r.PathValue("service"), api.SourceAPI)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

// healthyFilter reads ?healthy=true|false.
func healthyFilter(r *http.Request) (only bool, err error) {
	v := r.URL.Query().Get("healthy")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "healthy: %q is not true or false", v)
	}
	return b, nil
}

func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("service")
	only, err := healthyFilter(r)
	if err != nil {
		return err
	}
	return h.blockingRead(w, r, serviceIndex(name), func(s *registry.Snapshot) (any, error) {
		v, ok := s.Service(name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "service %q does not exist", name)
		}
		if only {
			return nodeList(v.Healthy), nil
		}
		return nodeList(v.Nodes), nil
	})
}

// nodeList copies shared snapshot nodes into an answer (never nil, so it
// encodes as []).
func nodeList(ns []*api.Node) []api.Node {
	out := make([]api.Node, len(ns))
	for i, n := range ns {
		out[i] = *n
	}
	return out
}

func (h *Handler) listAllNodes(w http.ResponseWriter, r *http.Request) error {
	only, err := healthyFilter(r)
	if err != nil {
		return err
	}
	// A verdict changes a node's healthy and checks, an admin state its
	// admin and weight: they wake the read too.
	idx := func(s *registry.Snapshot) int64 {
		return max(s.Index(store.KindNode), s.Index(store.KindService), s.Index(store.KindHealth), s.Index(store.KindAdmin))
	}
	return h.blockingRead(w, r, idx, func(s *registry.Snapshot) (any, error) {
		out := []api.Node{}
		for _, v := range s.Services() {
			if only {
				out = append(out, nodeList(v.Healthy)...)
			} else {
				out = append(out, nodeList(v.Nodes)...)
			}
		}
		return out, nil
	})
}

func (h *Handler) getNode(w http.ResponseWriter, r *http.Request) error {
	name, id := r.PathValue("service"), r.PathValue("id")
	return h.blockingRead(w, r, serviceIndex(name), func(s *registry.Snapshot) (any, error) {
		v, ok := s.Service(name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "service %q does not exist", name)
		}
		for _, n := range v.Nodes {
			if n.ID == id {
				return *n, nil
			}
		}
		return nil, errorf(http.StatusNotFound, "node %q of service %q does not exist", id, name)
	})
}

func (h *Handler) registerNode(w http.ResponseWriter, r *http.Request) error {
	var n api.Node
	if err := DecodeBody(r.Body, &n); err != nil {
		return err
	}
	service := r.PathValue("service")
	if id := r.PathValue("id"); id != "" {
		if n.ID == "" {
			n.ID = id
		}
		if n.ID != id {
			return errorf(http.StatusBadRequest, "id: %q differs from %q in the URL", n.ID, id)
		}
	}
	if n.Service != "" && n.Service != service {
		return errorf(http.StatusBadRequest, "service: %q differs from %q in the URL", n.Service, service)
	}
	n.Service = service
	switch n.Source {
	case "":
		n.Source = api.SourceAPI
	case api.SourceAPI, api.SourceAgent:
	default:
		return errorf(http.StatusBadRequest, "source: %q cannot be set through the API; use api or agent", n.Source)
	}
	n.SetDefaults()
	if err := n.Validate().Err(); err != nil {
		return err
	}
	if snap := h.o.Snapshots.Current(); snap != nil {
		if _, ok := snap.Service(service); !ok {
			return errorf(http.StatusNotFound, "service %q does not exist; create it first (POST /v1/services)", service)
		}
	}
	n.Registered = time.Now().UTC().Truncate(time.Millisecond)
	rev, lease, err := h.o.Store.PutNode(r.Context(), n, n.TTL.D())
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev, Lease: lease, TTL: n.TTL})
}

func (h *Handler) renewNode(w http.ResponseWriter, r *http.Request) error {
	ttl, err := h.o.Store.RenewNode(r.Context(), r.PathValue("service"), r.PathValue("id"))
	if err != nil {
		return err
	}
	snap := h.o.Snapshots.Current()
	return writeJSON(w, http.StatusOK, api.WriteResult{Revision: snap.Revision, TTL: api.Duration(ttl)})
}

func (h *Handler) deregisterNode(w http.ResponseWriter, r *http.Request) error {
	rev, err := h.o.Store.DeleteNode(r.Context(), r.PathValue("service"), r.PathValue("id"), api.SourceAPI)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

func (h *Handler) listZones(w http.ResponseWriter, r *http.Request) error {
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindZone) }, func(s *registry.Snapshot) (any, error) {
		out := []api.Zone{}
		for _, z := range s.Zones() {
			out = append(out, api.Zone{Name: z})
		}
		return out, nil
	})
}

func zoneParam(r *http.Request, s *registry.Snapshot) (string, error) {
	z, err := api.NormalizeZone(r.PathValue("zone"))
	if err != nil {
		return "", errorf(http.StatusBadRequest, "zone: %v", err)
	}
	if s != nil && !s.HasZone(z) {
		return "", errorf(http.StatusNotFound, "zone %s is not served here; zones are: %s", z, strings.Join(s.Zones(), ", "))
	}
	return z, nil
}

func (h *Handler) listRecords(w http.ResponseWriter, r *http.Request) error {
	idx := func(s *registry.Snapshot) int64 { return max(s.Index(store.KindRecord), s.Index(store.KindZone)) }
	return h.blockingRead(w, r, idx, func(s *registry.Snapshot) (any, error) {
		z, err := zoneParam(r, s)
		if err != nil {
			return nil, err
		}
		if zr := s.Records(z); zr != nil {
			return zr.Sets, nil
		}
		return []api.Record{}, nil
	})
}

func (h *Handler) applyChanges(w http.ResponseWriter, r *http.Request) error {
	zone, err := zoneParam(r, h.o.Snapshots.Current())
	if err != nil {
		return err
	}
	var b api.ChangeBatch
	if err := DecodeBody(r.Body, &b); err != nil {
		return err
	}
	if err := b.Validate().Err(); err != nil {
		return err
	}
	rev, err := h.o.Store.ApplyChanges(r.Context(), zone, b)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

func (h *Handler) listListeners(w http.ResponseWriter, r *http.Request) error {
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindListener) }, func(s *registry.Snapshot) (any, error) {
		out := []api.Listener{}
		for _, l := range s.Listeners() {
			out = append(out, *l)
		}
		return out, nil
	})
}

func (h *Handler) getListener(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindListener) }, func(s *registry.Snapshot) (any, error) {
		l, ok := s.Listener(name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "listener %q does not exist", name)
		}
		return l, nil
	})
}

func (h *Handler) decodeListener(r *http.Request) (api.Listener, error) {
	var l api.Listener
	if err := DecodeBody(r.Body, &l); err != nil {
		return l, err
	}
	if l.Source != "" && l.Source != api.SourceAPI {
		return l, errorf(http.StatusBadRequest, "source: %q cannot be set through the API; leave it out", l.Source)
	}
	if n := r.PathValue("name"); n != "" {
		if l.Name == "" {
			l.Name = n
		}
		if l.Name != n {
			return l, errorf(http.StatusBadRequest, "name: %q differs from %q in the URL", l.Name, n)
		}
	}
	l.Source = api.SourceAPI
	l.SetDefaults()
	if err := l.Validate().Err(); err != nil {
		return l, err
	}
	if snap := h.o.Snapshots.Current(); snap != nil {
		if _, ok := snap.Service(l.Service); !ok {
			return l, errorf(http.StatusBadRequest, "service: %q does not exist; create it first", l.Service)
		}
		if other := portClash(snap, l); other != "" {
			return l, errorf(http.StatusConflict, "port: %s on %s is already taken by listener %q", l.PortsString(), l.Bind, other)
		}
	}
	return l, nil
}

// portClash names another listener that shares a port and bind address with l.
func portClash(s *registry.Snapshot, l api.Listener) string {
	first, last := l.PortBounds()
	for _, o := range s.Listeners() {
		if o.Name == l.Name {
			continue
		}
		of, ol := o.PortBounds()
		sameBind := o.Bind == l.Bind || o.Bind.IsUnspecified() || l.Bind.IsUnspecified()
		if sameBind && first <= ol && of <= last {
			return o.Name
		}
	}
	return ""
}

func (h *Handler) createListener(w http.ResponseWriter, r *http.Request) error {
	l, err := h.decodeListener(r)
	if err != nil {
		return err
	}
	rev, err := h.o.Store.PutListener(r.Context(), l, true)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusCreated, api.WriteResult{Revision: rev})
}

func (h *Handler) putListener(w http.ResponseWriter, r *http.Request) error {
	l, err := h.decodeListener(r)
	if err != nil {
		return err
	}
	rev, err := h.o.Store.PutListener(r.Context(), l, false)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

func (h *Handler) deleteListener(w http.ResponseWriter, r *http.Request) error {
	rev, err := h.o.Store.DeleteListener(r.Context(), r.PathValue("name"), api.SourceAPI)
	if err != nil {
		return err
	}
	return h.written(w, r, http.StatusOK, api.WriteResult{Revision: rev})
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request) error {
	index := func(s *registry.Snapshot) int64 {
		return max(s.Index(store.KindGroup), s.Index(store.KindMember), s.Index(store.KindRole))
	}
	return h.blockingRead(w, r, index, func(s *registry.Snapshot) (any, error) {
		out := []api.GroupStatus{}
		for _, g := range s.Groups() {
			st := api.GroupStatus{Group: *g, Candidates: []api.Candidacy{}, Answer: s.GroupAnswer(g)}
			if st.Answer == nil {
				st.Answer = []netip.Addr{}
			}
			if r := s.Role(g.Name); r != nil {
				role := *r
				st.Active = &role
			}
			for _, c := range s.Candidates(g.Name) {
				st.Candidates = append(st.Candidates, *c)
			}
			out = append(out, st)
		}
		return out, nil
	})
}

// balancerStats answers this server's balancer ports with their live
// counters and backends (?listener= keeps one listener's ports). A server
// that runs no balancer answers an empty list.
func (h *Handler) balancerStats(w http.ResponseWriter, r *http.Request) error {
	out := []api.ListenerStats{}
	if h.o.Balancer != nil {
		name := r.URL.Query().Get("listener")
		for _, l := range h.o.Balancer.Stats() {
			if name == "" || l.Name == name {
				out = append(out, l)
			}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// listEvents answers the event log, oldest first: ?service= and ?node= filter,
// ?limit= keeps the newest N (default and most: every kept event). With
// ?index= it is a blocking read that answers when a newer event is logged.
func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	service, node := q.Get("service"), q.Get("node")
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "limit: %q is not a positive whole number", v)
		}
		limit = n
	}
	return h.blockingRead(w, r, func(s *registry.Snapshot) int64 { return s.Index(store.KindEvent) }, func(s *registry.Snapshot) (any, error) {
		out := []api.Event{}
		for _, e := range s.Events() {
			if (service == "" || e.Service == service) && (node == "" || e.Node == node) {
				out = append(out, e)
			}
		}
		if limit > 0 && len(out) > limit {
			out = out[len(out)-limit:]
		}
		return out, nil
	})
}
