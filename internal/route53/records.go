package route53

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// Tags on a node that stands for a record of a weighted or multivalue set.
const (
	tagZone        = "route53.zone"
	tagName        = "route53.name"
	tagSetID       = "route53.set-identifier"
	tagRouting     = "route53.routing" // weighted or multivalue
	tagWeight      = "route53.weight"
	tagHealthCheck = "route53.health-check"
)

const (
	routingWeighted   = "weighted"
	routingMultivalue = "multivalue"
)

// setKey names a record set as Route 53 does: name, type and set identifier.
type setKey struct{ name, typ, id string }

func (k setKey) String() string {
	if k.id == "" {
		return fmt.Sprintf("[name='%s', type='%s']", k.name, k.typ)
	}
	return fmt.Sprintf("[name='%s', type='%s', set-identifier='%s']", k.name, k.typ, k.id)
}

// set is one record set in seamark's terms.
type set struct {
	key     setKey
	ttl     int64
	values  []string
	routing string // "" for a plain set
	weight  int64
	hc      string
	service string // routed sets: the service the nodes belong to
}

func (s *set) xml() xmlRRSet {
	x := xmlRRSet{Name: strings.ReplaceAll(s.key.name, "*", `\052`), Type: s.key.typ, SetIdentifier: s.key.id, TTL: s.ttl, HealthCheckID: s.hc}
	switch s.routing {
	case routingWeighted:
		w := s.weight
		x.Weight = &w
	case routingMultivalue:
		t := true
		x.MultiValueAnswer = &t
	}
	for _, v := range s.values {
		if s.key.typ == "TXT" {
			v = quoteTXT(v)
		}
		x.Records = append(x.Records, resourceValue{Value: v})
	}
	return x
}

func quoteTXT(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func unquoteTXT(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(v[1 : len(v)-1])
	}
	return v
}

// normName lower-cases a name, makes it fully qualified and reads Route 53's
// octal escape of '*'.
func normName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	n = strings.ReplaceAll(n, `\052`, "*")
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

// recordSets lists every record set of zone: the static ones and the
// weighted and multivalue ones kept as nodes, in Route 53's order.
func recordSets(snap *registry.Snapshot, zone string) []*set {
	var out []*set
	if zr := snap.Records(zone); zr != nil {
		for _, r := range zr.Sets {
			out = append(out, &set{key: setKey{name: normName(r.Name), typ: r.Type}, ttl: int64(time.Duration(r.TTL) / time.Second), values: slices.Clone(r.Values)})
		}
	}
	for _, sv := range snap.Services() {
		for _, n := range sv.Nodes() {
			if s := nodeSet(sv, n, zone); s != nil {
				out = append(out, s)
			}
		}
	}
	sortSets(out)
	return out
}

func nodeSet(sv *registry.ServiceView, n *api.Node, zone string) *set {
	if n.Tags[tagZone] != zone || n.Tags[tagSetID] == "" {
		return nil
	}
	typ := "A"
	if n.Address.Is6() && !n.Address.Is4In6() {
		typ = "AAAA"
	}
	s := &set{
		key:     setKey{name: n.Tags[tagName], typ: typ, id: n.Tags[tagSetID]},
		ttl:     int64(time.Duration(sv.Service.Answers.TTL) / time.Second),
		values:  []string{n.Address.String()},
		routing: n.Tags[tagRouting],
		hc:      n.Tags[tagHealthCheck],
		service: sv.Service.Name,
	}
	s.weight, _ = strconv.ParseInt(n.Tags[tagWeight], 10, 64)
	return s
}

func sortSets(sets []*set) {
	slices.SortFunc(sets, func(a, b *set) int {
		return cmp.Or(strings.Compare(reverseName(a.key.name), reverseName(b.key.name)),
			strings.Compare(a.key.typ, b.key.typ), strings.Compare(a.key.id, b.key.id))
	})
}

func (h *Handler) listRecordSets(w http.ResponseWriter, r *http.Request, _ []byte) error {
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	zone, err := h.zoneByID(snap, r.PathValue("id"))
	if err != nil {
		return err
	}
	limit, err := maxItems(r, 300, 300)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	name, typ, ident := q.Get("name"), strings.ToUpper(q.Get("type")), q.Get("identifier")
	if typ != "" && name == "" {
		return invalidInput("The input is not valid: type requires name (StartRecordName)")
	}
	if ident != "" && typ == "" {
		return invalidInput("The input is not valid: identifier requires type (StartRecordType)")
	}
	type resp struct {
		XMLName              xml.Name   `xml:"ListResourceRecordSetsResponse"`
		Xmlns                string     `xml:"xmlns,attr"`
		Sets                 []xmlRRSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated          bool       `xml:"IsTruncated"`
		NextRecordName       string     `xml:"NextRecordName,omitempty"`
		NextRecordType       string     `xml:"NextRecordType,omitempty"`
		NextRecordIdentifier string     `xml:"NextRecordIdentifier,omitempty"`
		MaxItems             int        `xml:"MaxItems"`
	}
	out := resp{Xmlns: xmlns, MaxItems: limit, Sets: []xmlRRSet{}}
	var from string
	if name != "" {
		from = reverseName(normName(name))
	}
	for _, s := range recordSets(snap, zone) {
		if name != "" {
			c := cmp.Or(strings.Compare(reverseName(s.key.name), from), strings.Compare(s.key.typ, typ), strings.Compare(s.key.id, ident))
			if c < 0 {
				continue
			}
		}
		if len(out.Sets) == limit {
			out.IsTruncated, out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier = true, s.key.name, s.key.typ, s.key.id
			break
		}
		out.Sets = append(out.Sets, s.xml())
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

// nodeID turns a SetIdentifier into a node ID (a DNS label): lower case,
// every other character '-', at most 63 characters.
func nodeID(setID string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(setID) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-")
	if len(id) > 63 {
		id = strings.Trim(id[:63], "-")
	}
	if id == "" {
		id = "set"
	}
	return id
}

// plan is a validated change batch: the static changes for the store and the
// final state of every routed set it touched.
type plan struct {
	static  []api.Change
	routed  map[setKey]*set // nil value: deleted
	initial map[setKey]*set
}

// validate checks a batch against the current record sets with Route 53's
// rules, in order, as if each change were applied, and returns what to write.
func validate(snap *registry.Snapshot, zone string, batch changeBatch) (*plan, error) {
	view := map[setKey]*set{}
	for _, s := range recordSets(snap, zone) {
		view[s.key] = s
	}
	// Plain and routed sets of one name and type never mix.
	kinds := map[[2]string]int{} // name,type -> routed count (plain: -1)
	for k := range view {
		nt := [2]string{k.name, k.typ}
		if k.id == "" {
			kinds[nt] = -1
		} else if kinds[nt] >= 0 {
			kinds[nt]++
		}
	}
	p := &plan{routed: map[setKey]*set{}, initial: map[setKey]*set{}}
	var msgs []string
	for _, ch := range batch.Changes {
		s, err := parseSet(ch, zone)
		if err != nil {
			return nil, err
		}
		k := s.key
		nt := [2]string{k.name, k.typ}
		cur := view[k]
		if k.id != "" {
			if _, seen := p.initial[k]; !seen {
				p.initial[k] = cur
			}
		}
		switch ch.Action {
		case api.ActionCreate, api.ActionUpsert:
			if ch.Action == api.ActionCreate && cur != nil {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set %s but it already exists", k))
				continue
			}
			if cur == nil {
				if k.id == "" && kinds[nt] > 0 || k.id != "" && kinds[nt] < 0 {
					what := "a non-weighted"
					if k.id == "" {
						what = "a weighted or multivalue"
					}
					msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s, type %s cannot be created as %s set exists with the same name and type.", k.name, k.typ, what))
					continue
				}
				if k.id != "" {
					for other := range view {
						if other.name == k.name && other.typ == k.typ && other.id != "" && view[other].routing != s.routing {
							msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s, type %s, SetIdentifier %s cannot be created because a set with another routing policy (%s) exists with the same name and type.", k.name, k.typ, k.id, view[other].routing))
							break
						}
						if other.id != "" && other.id != k.id && view[other].service == s.service && nodeID(other.id) == nodeID(k.id) {
							msgs = append(msgs, fmt.Sprintf("SetIdentifier %s becomes seamark node ID %q of service %s, which SetIdentifier %s already has; choose another SetIdentifier", k.id, nodeID(k.id), s.service, other.id))
							break
						}
					}
				}
				if k.id != "" {
					if msg := nodeTaken(snap, s, zone); msg != "" {
						msgs = append(msgs, msg)
						continue
					}
				}
				if k.id == "" {
					kinds[nt] = -1
				} else {
					kinds[nt]++
				}
			}
			view[k] = s
		case api.ActionDelete:
			if cur == nil {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but it was not found", k))
				continue
			}
			if !sameSet(cur, s) {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", k))
				continue
			}
			delete(view, k)
			if k.id == "" {
				delete(kinds, nt)
			} else if kinds[nt]--; kinds[nt] == 0 {
				delete(kinds, nt)
			}
		}
		if k.id == "" {
			p.static = append(p.static, staticChange(ch.Action, s))
		} else {
			p.routed[k] = view[k]
		}
	}
	if len(msgs) > 0 {
		return nil, invalidBatch(msgs...)
	}
	return p, nil
}

// nodeTaken says why a new routed record cannot become its node: another
// node of the service (an agent's, or a record of another zone) has its ID.
func nodeTaken(snap *registry.Snapshot, s *set, zone string) string {
	sv, ok := snap.Service(s.service)
	if !ok {
		return ""
	}
	id := nodeID(s.key.id)
	for _, n := range sv.Nodes() {
		if n.ID != id {
			continue
		}
		if n.Tags[tagZone] == zone && n.Tags[tagSetID] == s.key.id {
			return ""
		}
		return fmt.Sprintf("SetIdentifier %s becomes seamark node ID %q of service %s, which another node (source %s) already has; choose another SetIdentifier", s.key.id, id, s.service, n.Source)
	}
	return ""
}

// sameSet reports whether a DELETE's set matches the current one: Route 53
// wants every field given to match.
func sameSet(cur, del *set) bool {
	if del.ttl >= 0 && del.ttl != cur.ttl {
		return false
	}
	a, b := slices.Clone(cur.values), slices.Clone(del.values)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return false
	}
	return del.routing == cur.routing && del.weight == cur.weight && del.hc == cur.hc
}

func staticChange(action string, s *set) api.Change {
	return api.Change{Action: action, Record: api.Record{Name: s.key.name, Type: s.key.typ, TTL: api.Duration(time.Duration(s.ttl) * time.Second), Values: s.values}}
}

// parseSet checks one change and turns its record set into seamark's terms.
func parseSet(ch change, zone string) (*set, error) {
	rs := ch.Set
	name, typ := normName(rs.Name), strings.ToUpper(strings.TrimSpace(rs.Type))
	desc := fmt.Sprintf("Change with [Action=%s, Name=%s, Type=%s, SetIdentifier=%s]", ch.Action, rs.Name, rs.Type, orNull(rs.SetIdentifier))
	switch ch.Action {
	case api.ActionCreate, api.ActionDelete, api.ActionUpsert:
	default:
		return nil, invalidInput("Invalid request: Action %q is not one of CREATE, DELETE, UPSERT in %s", ch.Action, desc)
	}
	if strings.TrimSpace(rs.Name) == "" || typ == "" {
		return nil, invalidInput("Invalid request: Name and Type are required in %s", desc)
	}
	if name != zone && !strings.HasSuffix(name, "."+zone) {
		return nil, invalidBatch(fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", name, zone))
	}
	switch {
	case rs.AliasTarget != nil:
		return nil, invalidInput("Invalid request: AliasTarget is not supported by seamark (see docs/route53.md) in %s", desc)
	case rs.Region != "" || rs.GeoLocation != nil || rs.Failover != "" || rs.CIDRRouting != nil || rs.TrafficPolicy != "":
		return nil, invalidInput("Invalid request: latency, geolocation, failover, CIDR and traffic-policy routing are not supported by seamark; use weighted or multivalue sets (see docs/route53.md) in %s", desc)
	}
	s := &set{key: setKey{name: name, typ: typ, id: rs.SetIdentifier}, ttl: -1, hc: rs.HealthCheckID}
	if rs.TTL != nil {
		s.ttl = *rs.TTL
	}
	for _, v := range rs.Records {
		val := strings.TrimSpace(v.Value)
		if typ == "TXT" {
			val = unquoteTXT(val)
		}
		s.values = append(s.values, val)
	}
	multi := rs.MultiValueAnswer != nil && *rs.MultiValueAnswer
	switch {
	case rs.SetIdentifier == "" && (rs.Weight != nil || multi):
		return nil, invalidInput("Invalid request: Missing field 'SetIdentifier' in %s", desc)
	case rs.SetIdentifier != "" && rs.Weight != nil && multi:
		return nil, invalidInput("Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, CidrRoutingConfig], but found more than one in %s", desc)
	case rs.SetIdentifier != "" && rs.Weight == nil && !multi:
		return nil, invalidInput("Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, CidrRoutingConfig], but found none in %s", desc)
	case rs.SetIdentifier == "" && rs.HealthCheckID != "":
		return nil, invalidInput("Invalid request: seamark follows health checks only on weighted and multivalue record sets (give a SetIdentifier) in %s", desc)
	case len(rs.SetIdentifier) > 128:
		return nil, invalidInput("Invalid request: SetIdentifier is longer than 128 characters in %s", desc)
	}
	if rs.SetIdentifier != "" {
		s.routing = routingMultivalue
		if rs.Weight != nil {
			s.routing, s.weight = routingWeighted, *rs.Weight
			if s.weight < 0 || s.weight > 255 {
				return nil, invalidInput("Invalid request: Weight %d is out of range (0-255) in %s", s.weight, desc)
			}
		}
		if typ != "A" && typ != "AAAA" {
			return nil, invalidInput("Invalid request: seamark keeps weighted and multivalue sets of type A and AAAA only, as nodes of a service, in %s", desc)
		}
		label, rest, _ := strings.Cut(name, ".")
		if rest != zone {
			return nil, invalidInput("Invalid request: seamark serves weighted and multivalue sets one label under the zone (<service>.%s), as a service's nodes, in %s", zone, desc)
		}
		if msg := api.CheckName(label); msg != "" {
			return nil, invalidInput("Invalid request: the first label of the name is the seamark service name and %s, in %s", msg, desc)
		}
		s.service = label
	}
	if ch.Action == api.ActionDelete {
		return s, nil
	}
	if s.ttl < 0 || len(rs.Records) == 0 {
		return nil, invalidInput("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords]], but found none in %s", desc)
	}
	if s.routing != "" && len(s.values) != 1 {
		return nil, invalidInput("Invalid request: seamark keeps each record of a weighted or multivalue set as one node, so it takes exactly one value, got %d, in %s", len(s.values), desc)
	}
	maxTTL := int64(7 * 24 * 3600)
	if s.routing != "" {
		maxTTL = 24 * 3600
	}
	if s.ttl < 1 || s.ttl > maxTTL {
		return nil, invalidInput("Invalid request: TTL %d is outside what seamark serves (1 to %d seconds) in %s", s.ttl, maxTTL, desc)
	}
	rec := api.Record{Name: name, Type: typ, TTL: api.Duration(time.Duration(s.ttl) * time.Second), Values: s.values}
	if !slices.Contains(api.RecordTypes, typ) {
		return nil, invalidInput("Invalid request: type %s is not one seamark serves (%s) in %s", typ, strings.Join(api.RecordTypes, ", "), desc)
	}
	if errs := rec.Validate(); len(errs) > 0 {
		return nil, invalidBatch(fmt.Sprintf("Invalid Resource Record: 'FATAL problem: %s encountered with '%s''", errs.Error(), strings.Join(s.values, ",")))
	}
	return s, nil
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func (h *Handler) changeRecordSets(w http.ResponseWriter, r *http.Request, body []byte) error {
	req, err := parseChangeRequest(body)
	if err != nil {
		return err
	}
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	zone, err := h.zoneByID(snap, r.PathValue("id"))
	if err != nil {
		return err
	}
	p, err := validate(snap, zone, req.ChangeBatch)
	if err != nil {
		return err
	}
	if c := credential(r); c != nil && c.Access == AccessRegister {
		if len(p.static) > 0 {
			return &apiError{status: http.StatusForbidden, code: "AccessDenied", msg: fmt.Sprintf("User: %s is not authorized to change plain record sets: its seamark token has access register (weighted and multivalue sets of services %s only)", c.AccessKeyID, strings.Join(c.Services, ", "))}
		}
		for k, s := range p.routed {
			if s == nil {
				s = p.initial[k]
			}
			if s != nil && !slices.Contains(c.Services, s.service) {
				return &apiError{status: http.StatusForbidden, code: "AccessDenied", msg: fmt.Sprintf("User: %s is not authorized to change record set %s: its seamark token has access register for services %s, not %s", c.AccessKeyID, k, strings.Join(c.Services, ", "), s.service)}
			}
		}
	}
	submitted := h.o.Now()
	var rev int64
	if len(p.static) > 0 {
		ctx, cancel := h.storeCtx(r)
		rev, err = h.o.Store.ApplyChanges(ctx, zone, api.ChangeBatch{Comment: req.ChangeBatch.Comment, Changes: p.static})
		cancel()
		var ce *store.ChangeError
		if errors.As(err, &ce) && errors.Is(err, store.ErrConflict) {
			return invalidBatch(ce.Err.Error())
		}
		if err != nil {
			return err
		}
	}
	if len(p.routed) > 0 {
		r2, err := h.applyRouted(r, snap, zone, p)
		if err != nil {
			return err
		}
		rev = max(rev, r2)
	}
	if rev == 0 {
		rev = max(snap.Revision, 1)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.WriteVisibleTimeout)
	now, _ := h.o.Snapshots.WaitRevision(ctx, rev)
	cancel()
	type resp struct {
		XMLName    xml.Name   `xml:"ChangeResourceRecordSetsResponse"`
		Xmlns      string     `xml:"xmlns,attr"`
		ChangeInfo changeInfo `xml:"ChangeInfo"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns, ChangeInfo: info(now, rev, submitted, req.ChangeBatch.Comment)})
	return nil
}

// applyRouted writes the routed sets a batch touched: each service's check
// and answers, then its nodes.
func (h *Handler) applyRouted(r *http.Request, snap *registry.Snapshot, zone string, p *plan) (int64, error) {
	services := map[string][]*set{} // service -> its routed sets in this zone after the batch
	touched := map[string]bool{}
	for k, s := range p.routed {
		svc := ""
		if s != nil {
			svc = s.service
		} else if old := p.initial[k]; old != nil {
			svc = old.service
		}
		if svc != "" {
			touched[svc] = true
		}
	}
	for _, s := range recordSets(snap, zone) {
		if _, changed := p.routed[s.key]; !changed && touched[s.service] {
			services[s.service] = append(services[s.service], s)
		}
	}
	for _, s := range p.routed {
		if s != nil {
			services[s.service] = append(services[s.service], s)
		}
	}
	var rev int64
	for svcName := range touched {
		sets := services[svcName]
		if len(sets) == 0 {
			continue // the set is gone; the service stays (docs/route53.md)
		}
		r2, err := h.putService(r, snap, svcName, sets)
		if err != nil {
			return 0, err
		}
		rev = max(rev, r2)
	}
	keys := make([]setKey, 0, len(p.routed))
	for k := range p.routed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b setKey) int { return cmp.Compare(a.String(), b.String()) })
	for _, k := range keys {
		s, old := p.routed[k], p.initial[k]
		ctx, cancel := h.storeCtx(r)
		var r2 int64
		var err error
		switch {
		case s != nil:
			n := nodeOf(zone, s)
			if s.hc != "" {
				// The record's own health check says which port to probe.
				if _, n.Port, err = h.checkFor(r, s.hc); err != nil {
					cancel()
					return 0, err
				}
			}
			r2, _, err = h.o.Store.PutNode(ctx, n, 0)
		case old != nil:
			r2, err = h.o.Store.DeleteNode(ctx, old.service, nodeID(old.key.id), api.SourceAPI)
			if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
		}
		cancel()
		if err != nil {
			return 0, fmt.Errorf("change record set %s: %w", k, err)
		}
		rev = max(rev, r2)
	}
	return rev, nil
}

func nodeOf(zone string, s *set) api.Node {
	addr, _ := netip.ParseAddr(s.values[0])
	n := api.Node{
		ID: nodeID(s.key.id), Service: s.service, Address: addr, Weight: 1, State: api.StateHealthy, Source: api.SourceAPI,
		Tags: map[string]string{tagZone: zone, tagName: s.key.name, tagSetID: s.key.id, tagRouting: s.routing},
	}
	if s.routing == routingWeighted {
		n.Tags[tagWeight] = strconv.FormatInt(s.weight, 10)
		n.Weight = int(max(s.weight, 1))
		if s.weight == 0 {
			n.State = api.StateDraining // weight 0: never answered
		}
	}
	if s.hc != "" {
		n.Tags[tagHealthCheck] = s.hc
	}
	return n
}

// putService creates or updates the service a routed set's nodes belong to:
// its check comes from the sets' health check, its answers from the routing
// policy and TTL.
func (h *Handler) putService(r *http.Request, snap *registry.Snapshot, name string, sets []*set) (int64, error) {
	var svc api.Service
	existing, exists := snap.Service(name)
	if exists {
		svc = existing.Service
	} else {
		svc = api.Service{Name: name, Port: 80, Source: api.SourceAPI}
	}
	// others: nodes registered outside Route 53 (agents, the API). Their
	// service's check and answers are not the record set's to change.
	others := false
	if exists {
		for _, n := range existing.Nodes() {
			others = others || n.Tags[tagSetID] == ""
		}
	}
	want := svc
	if !others {
		want.Check = api.Check{Type: api.CheckNone}
	}
	hcID := ""
	for _, s := range sets {
		if s.hc == "" {
			continue
		}
		if hcID != "" && s.hc != hcID {
			// Several health checks: they must probe the same way.
			other, _, err := h.checkFor(r, s.hc)
			if err != nil {
				return 0, err
			}
			if other != want.Check {
				return 0, invalidInput("Invalid request: the health checks %s and %s of %s probe differently; seamark probes every record of a set the same way (same type, port, path and threshold)", hcID, s.hc, s.key.name)
			}
			continue
		}
		chk, port, err := h.checkFor(r, s.hc)
		if err != nil {
			return 0, err
		}
		hcID, want.Check, want.Port = s.hc, chk, port
	}
	last := sets[len(sets)-1]
	want.Answers.TTL = api.Duration(time.Duration(last.ttl) * time.Second)
	if last.routing == routingWeighted {
		want.Answers.Policy, want.Answers.MaxAnswers = api.PolicyWeighted, 1
	} else {
		want.Answers.Policy, want.Answers.MaxAnswers = api.PolicyAll, 8
	}
	want.SetDefaults()
	if errs := want.Validate(); len(errs) > 0 {
		return 0, invalidInput("Invalid request: service %s would not be valid: %s", name, errs.Error())
	}
	cur := svc
	cur.SetDefaults()
	a, _ := json.Marshal(cur)
	b, _ := json.Marshal(want)
	if exists && string(a) == string(b) {
		return 0, nil
	}
	if exists && others {
		return 0, invalidInput("Invalid request: service %s also has nodes registered outside Route 53 (agents or the API); this record set would change its check or answers (routing %s, TTL %d, health check %q); match the service's (see GET /v1/services/%s) or use another name", name, last.routing, last.ttl, hcID, name)
	}
	if exists && svc.Source == api.SourceConfig {
		return 0, invalidInput("Invalid request: service %s is declared in the config file; set its check and answers there to match the record set (see docs/route53.md)", name)
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	rev, err := h.o.Store.PutService(ctx, want, false)
	if err != nil {
		return 0, fmt.Errorf("change record sets: service %s: %w", name, err)
	}
	return rev, nil
}
