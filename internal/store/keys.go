package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/seamark/seamark/api"
)

// The key layout. Every key lives under the store prefix (default /seamark/)
// and a version segment, and every value is JSON:
//
//	<prefix>v1/zones/<zone>                         api.Zone
//	<prefix>v1/services/<service>                   api.Service
//	<prefix>v1/nodes/<service>/<node-id>            api.Node (on the registrant's lease when it has a ttl)
//	<prefix>v1/records/<zone>/<owner-name>/<type>   api.Record (owner name fully qualified, lower case)
//	<prefix>v1/listeners/<listener>                 api.Listener
//	<prefix>v1/groups/<group>                       api.Group
//	<prefix>v1/members/<group>/<member>             api.Candidacy (on the member's lease)
//	<prefix>v1/roles/<group>                        api.Role (on the active member's lease)
//	<prefix>v1/observations/<group>/<observer>      api.Observation (on the observer's lease)
//	<prefix>v1/checkers/<checker-id>                api.Checker (on the checker's lease)
//	<prefix>v1/health/<service>/<node-id>/<checker> api.Verdict (on the checker's lease)
//	<prefix>v1/events/<unix-nanos, 20 digits>-<origin> api.Event (the newest MaxEvents are kept)
//	<prefix>v1/events/audit-<unix-nanos>-<origin>-<i>-n<count>  []api.Event of kind audit, a batch (the newest MaxAuditEvents)
//	<prefix>v1/admin/<service>/<node-id>            api.NodeAdmin (no lease: the operator's, kept across re-registrations)
//	<prefix>v1/healthchecks/<id>                    a Route 53 health check (JSON owned by internal/route53)
//
// A node's admin state (drain, maint, weight override) has a key of its own
// beside the node's, with no lease: an agent's re-registration replaces the
// node key and its lease expiring deletes it, but neither touches the admin
// key, which only the operator's API writes and clears.
//
// Verdicts live on their checker's lease, so a checker that dies stops
// counting when its lease expires, with no one to clean up after it.
//
// Zones end in a dot ("cluster.test."), so a zone is one path segment. Names
// are DNS labels and never contain '/'. This file is the only place that knows
// the layout: the rest of seamark speaks in Keys and api types.
const version = "v1/"

// Kind is the kind of object a key holds.
type Kind string

// Kinds of object.
const (
	KindZone     Kind = "zones"
	KindService  Kind = "services"
	KindNode     Kind = "nodes"
	KindRecord   Kind = "records"
	KindListener Kind = "listeners"
	KindGroup    Kind = "groups"
	KindMember   Kind = "members"
	KindRole     Kind = "roles"
	KindObserved Kind = "observations"
	KindChecker  Kind = "checkers"
	KindHealth   Kind = "health"
	KindEvent    Kind = "events"
	KindAdmin    Kind = "admin"
	// KindHealthCheck holds named health-check definitions of the Route 53
	// API; the store keeps their JSON without reading it.
	KindHealthCheck Kind = "healthchecks"
)

// Key names one object in the store.
type Key struct {
	Kind Kind
	// A and B are the key's segments after the kind: (zone), (service),
	// (service, node id), (zone, owner name + "/" + type), (listener), (group).
	A, B string
}

// ZoneKey, ServiceKey, NodeKey, RecordKey, ListenerKey and GroupKey build Keys.
func ZoneKey(zone string) Key        { return Key{Kind: KindZone, A: zone} }
func ServiceKey(name string) Key     { return Key{Kind: KindService, A: name} }
func NodeKey(service, id string) Key { return Key{Kind: KindNode, A: service, B: id} }
func ListenerKey(name string) Key    { return Key{Kind: KindListener, A: name} }
func GroupKey(name string) Key       { return Key{Kind: KindGroup, A: name} }
func MemberKey(group, member string) Key {
	return Key{Kind: KindMember, A: group, B: member}
}
func RoleKey(group string) Key { return Key{Kind: KindRole, A: group} }
func ObservationKey(group, observer string) Key {
	return Key{Kind: KindObserved, A: group, B: observer}
}
func CheckerKey(id string) Key { return Key{Kind: KindChecker, A: id} }
func HealthKey(service, node, checker string) Key {
	return Key{Kind: KindHealth, A: service, B: node + "/" + checker}
}
func AdminKey(service, id string) Key { return Key{Kind: KindAdmin, A: service, B: id} }
func HealthCheckKey(id string) Key    { return Key{Kind: KindHealthCheck, A: id} }
func RecordKey(zone, owner, typ string) Key {
	return Key{Kind: KindRecord, A: zone, B: strings.ToLower(owner) + "/" + strings.ToUpper(typ)}
}

func (k Key) String() string {
	if k.B == "" {
		return string(k.Kind) + "/" + k.A
	}
	return string(k.Kind) + "/" + k.A + "/" + k.B
}

// path returns the full etcd key for k under prefix.
func (k Key) path(prefix string) string { return prefix + version + k.String() }

// kindPrefix returns the etcd prefix holding every object of kind under prefix.
func kindPrefix(prefix string, kind Kind) string { return prefix + version + string(kind) + "/" }

// parseKey reads an etcd key under prefix back into a Key.
func parseKey(prefix, full string) (Key, bool) {
	rest, ok := strings.CutPrefix(full, prefix+version)
	if !ok {
		return Key{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || parts[1] == "" {
		return Key{}, false
	}
	k := Key{Kind: Kind(parts[0]), A: parts[1]}
	switch k.Kind {
	case KindZone, KindService, KindListener, KindGroup, KindChecker, KindEvent, KindRole, KindHealthCheck:
		return k, len(parts) == 2
	case KindNode, KindMember, KindAdmin, KindObserved:
		if len(parts) != 3 || parts[2] == "" {
			return Key{}, false
		}
		k.B = parts[2]
		return k, true
	case KindRecord, KindHealth:
		if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
			return Key{}, false
		}
		k.B = parts[2] + "/" + parts[3]
		return k, true
	}
	return Key{}, false
}

// decodeValue reads the JSON value of an object of kind k.
func decodeValue(k Key, data []byte) (any, error) {
	var v any
	switch k.Kind {
	case KindZone:
		v = new(api.Zone)
	case KindService:
		v = new(api.Service)
	case KindNode:
		v = new(api.Node)
	case KindRecord:
		v = new(api.Record)
	case KindListener:
		v = new(api.Listener)
	case KindGroup:
		v = new(api.Group)
	case KindChecker:
		v = new(api.Checker)
	case KindMember:
		v = new(api.Candidacy)
	case KindRole:
		v = new(api.Role)
	case KindObserved:
		v = new(api.Observation)
	case KindHealth:
		v = new(api.Verdict)
	case KindEvent:
		v = new(api.Event)
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
			v = new([]api.Event) // a batch of audit events (lease.go)
		}
	case KindAdmin:
		v = new(api.NodeAdmin)
	case KindHealthCheck:
		v = new(json.RawMessage)
	default:
		return nil, fmt.Errorf("decode %s: unknown kind", k)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k, err)
	}
	return v, nil
}
