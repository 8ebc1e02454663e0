package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/seamark/seamark/api"
)

// update reads key k, lets fn decide its new value from the old one (nil when
// absent) and writes it only if nobody changed k in between (retrying on a
// race). fn returns the new value, or nil to delete. guard, when set, must
// exist for the write to happen (a node needs its service).
//
// The first attempt assumes k is absent and costs one round trip: the
// transaction writes if k is still absent and otherwise returns k's current
// value, which the next attempt decides on. Concurrent updates are committed
// together (group.go).
func (s *Store) update(ctx context.Context, k Key, guard *Key, lease clientv3.LeaseID, fn func(old []byte, oldLease int64) ([]byte, error)) (int64, int64, error) {
	path := k.path(s.prefix)
	var old []byte
	var oldMod, oldLease int64
	for attempt := 0; ; attempt++ {
		val, err := fn(old, oldLease)
		if err != nil {
			if attempt == 0 && old == nil {
				// fn needs the real current value (a delete, an ownership check).
				if old, oldMod, oldLease, err = s.get(ctx, path); err != nil {
					return 0, 0, fmt.Errorf("read %s: %w", k, err)
				}
				if old != nil {
					continue
				}
				_, err = fn(nil, 0)
			}
			return 0, 0, err
		}
		var op clientv3.Op
		switch {
		case val == nil && old == nil:
			return 0, oldLease, nil
		case val == nil:
			op = clientv3.OpDelete(path)
		case lease != 0:
			op = clientv3.OpPut(path, string(val), clientv3.WithLease(lease))
		default:
			op = clientv3.OpPut(path, string(val))
		}
		w := &condWrite{ctx: ctx, path: path, mod: oldMod, op: op, size: len(path) + len(val)}
		if guard != nil {
			w.guard = guard.path(s.prefix)
		}
		err = s.group.do(w)
		if err == nil {
			err = w.err
		}
		if err != nil {
			if leaseGone(err) {
				return 0, 0, fmt.Errorf("write %s: lease expired before the write: %w", k, err)
			}
			return 0, 0, fmt.Errorf("write %s: %w", k, err)
		}
		if w.ok {
			return w.rev, oldLease, nil
		}
		old, oldMod, oldLease = w.old, w.oldMod, w.oldLease
		if w.guardGone {
			return 0, 0, fmt.Errorf("%s does not exist: %w", *guard, ErrNotFound)
		}
		if attempt >= 20 {
			return 0, 0, fmt.Errorf("write %s: changed by others 20 times in a row: %w", k, ErrConflict)
		}
	}
}

func (s *Store) get(ctx context.Context, path string) (val []byte, mod, lease int64, err error) {
	resp, err := s.cli.Get(ctx, path)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, 0, 0, err
	}
	kv := resp.Kvs[0]
	return kv.Value, kv.ModRevision, kv.Lease, nil
}

func sourceOf(data []byte) api.Source {
	var v struct {
		Source api.Source `json:"source"`
	}
	_ = json.Unmarshal(data, &v)
	return v.Source
}

// PutService creates or replaces a service. create demands that it be new
// (ErrExists otherwise). A service owned by the config file cannot be changed
// through here by another source (ErrConflict).
func (s *Store) PutService(ctx context.Context, svc api.Service, create bool) (int64, error) {
	val, err := json.Marshal(svc)
	if err != nil {
		return 0, err
	}
	rev, _, err := s.update(ctx, ServiceKey(svc.Name), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old != nil && create {
			return nil, fmt.Errorf("service %q: %w", svc.Name, ErrExists)
		}
		if err := s.checkOwner(old, svc.Source, "service "+svc.Name); err != nil {
			return nil, err
		}
		return val, nil
	})
	return rev, err
}

func (s *Store) checkOwner(old []byte, by api.Source, what string) error {
	if old == nil {
		return nil
	}
	if owner := sourceOf(old); owner == api.SourceConfig && by != api.SourceConfig {
		return fmt.Errorf("%s is owned by the config file; change it there and reload (SIGHUP): %w", what, ErrConflict)
	}
	return nil
}

// DeleteService deletes a service (ErrNotFound when absent). Its nodes stay
// in the store but are served again only if the service comes back.
func (s *Store) DeleteService(ctx context.Context, name string, by api.Source) (int64, error) {
	rev, _, err := s.update(ctx, ServiceKey(name), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("service %q: %w", name, ErrNotFound)
		}
		return nil, s.checkOwner(old, by, "service "+name)
	})
	return rev, err
}

// PutNode registers (or re-registers) a node of an existing service. With a
// ttl the registration lives on a new lease, which the registrant renews with
// RenewNode; a previous lease of the same node is revoked.
func (s *Store) PutNode(ctx context.Context, n api.Node, ttl time.Duration) (rev, lease int64, err error) {
	n.Lease, n.Healthy = 0, false
	val, err := json.Marshal(n)
	if err != nil {
		return 0, 0, err
	}
	var lid clientv3.LeaseID
	if ttl > 0 {
		secs := int64((ttl + time.Second - 1) / time.Second)
		g, err := s.cli.Grant(ctx, secs)
		if err != nil {
			return 0, 0, fmt.Errorf("grant lease for node %s: %w", n.ID, err)
		}
		lid = g.ID
	}
	guard := ServiceKey(n.Service)
	rev, oldLease, err := s.update(ctx, NodeKey(n.Service, n.ID), &guard, lid, func(old []byte, _ int64) ([]byte, error) {
		return val, s.checkOwner(old, n.Source, "node "+n.ID)
	})
	if err != nil {
		if lid != 0 {
			s.revoke(lid)
		}
		return 0, 0, err
	}
	if oldLease != 0 && oldLease != int64(lid) {
		s.revoke(clientv3.LeaseID(oldLease))
	}
	return rev, int64(lid), nil
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Warn("revoke lease", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
	}
}

// RenewNode keeps a node's lease alive for another ttl and returns that ttl.
// ErrNotFound means the registration is gone (the lease expired): register again.
func (s *Store) RenewNode(ctx context.Context, service, id string) (time.Duration, error) {
	resp, err := s.cli.Get(ctx, NodeKey(service, id).path(s.prefix))
	if err != nil {
		return 0, fmt.Errorf("renew node %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("node %q of service %q: %w", id, service, ErrNotFound)
	}
	lid := clientv3.LeaseID(resp.Kvs[0].Lease)
	if lid == 0 {
		return 0, fmt.Errorf("node %q: %w", id, ErrNoLease)
	}
	ka, err := s.cli.KeepAliveOnce(ctx, lid)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("node %q of service %q: lease expired: %w", id, service, ErrNotFound)
		}
		return 0, fmt.Errorf("renew node %s: %w", id, err)
	}
	return time.Duration(ka.TTL) * time.Second, nil
}

// DeleteNode deregisters a node and revokes its lease.
func (s *Store) DeleteNode(ctx context.Context, service, id string, by api.Source) (int64, error) {
	rev, oldLease, err := s.update(ctx, NodeKey(service, id), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("node %q of service %q: %w", id, service, ErrNotFound)
		}
		return nil, s.checkOwner(old, by, "node "+id)
	})
	if err == nil && oldLease != 0 {
		s.revoke(clientv3.LeaseID(oldLease))
	}
	return rev, err
}

// PutListener creates or replaces a listener; see PutService for create and ownership.
func (s *Store) PutListener(ctx context.Context, l api.Listener, create bool) (int64, error) {
	val, err := json.Marshal(l)
	if err != nil {
		return 0, err
	}
	rev, _, err := s.update(ctx, ListenerKey(l.Name), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old != nil && create {
			return nil, fmt.Errorf("listener %q: %w", l.Name, ErrExists)
		}
		return val, s.checkOwner(old, l.Source, "listener "+l.Name)
	})
	return rev, err
}

// DeleteListener deletes a listener (ErrNotFound when absent).
func (s *Store) DeleteListener(ctx context.Context, name string, by api.Source) (int64, error) {
	rev, _, err := s.update(ctx, ListenerKey(name), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("listener %q: %w", name, ErrNotFound)
		}
		return nil, s.checkOwner(old, by, "listener "+name)
	})
	return rev, err
}

// ChangeError names the change of a batch that could not be applied.
type ChangeError struct {
	Index  int
	Change api.Change
	Err    error
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("changes[%d] (%s %s %s): %v; nothing was applied", e.Index, e.Change.Action, e.Change.Record.Name, e.Change.Record.Type, e.Err)
}

func (e *ChangeError) Unwrap() error { return e.Err }

// OwnerName turns a record name relative to zone ("www", "@", or a fully
// qualified name inside the zone) into its fully qualified lower-case form.
func OwnerName(zone, name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch {
	case n == "@" || n == zone || n+"." == zone:
		return zone, nil
	case strings.HasSuffix(n, "."):
		if !strings.HasSuffix(n, "."+zone) {
			return "", fmt.Errorf("%q is not inside zone %s", name, zone)
		}
		return n, nil
	case n == "" || strings.Contains(n, "/") || strings.Contains(n, ".."):
		return "", fmt.Errorf("%q is not a record name", name)
	}
	return n + "." + zone, nil
}

// ApplyChanges applies a batch of record changes to zone atomically, in order,
// with Route 53's rules: CREATE of an existing set or DELETE of a missing one
// fails the whole batch and nothing is applied. A later change may act on what
// an earlier one did (DELETE then CREATE replaces a set).
func (s *Store) ApplyChanges(ctx context.Context, zone string, b api.ChangeBatch) (int64, error) {
	zk := ZoneKey(zone)
	type slot struct {
		path string
		val  []byte // current value in this batch's view; nil when absent
		mod  int64  // ModRevision read from the store (0: absent)
	}
	for attempt := 0; attempt < 20; attempt++ {
		view := map[string]*slot{}
		var order []string
		for i, ch := range b.Changes {
			r := ch.Record
			r.SetDefaults()
			owner, err := OwnerName(zone, r.Name)
			if err != nil {
				return 0, &ChangeError{Index: i, Change: ch, Err: fmt.Errorf("%w: %w", err, ErrConflict)}
			}
			r.Name = owner
			path := RecordKey(zone, owner, r.Type).path(s.prefix)
			sl, ok := view[path]
			if !ok {
				resp, err := s.cli.Get(ctx, path)
				if err != nil {
					return 0, fmt.Errorf("apply changes: %w", err)
				}
				sl = &slot{path: path}
				if len(resp.Kvs) == 1 {
					sl.val, sl.mod = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
				}
				view[path] = sl
				order = append(order, path)
			}
			switch ch.Action {
			case api.ActionCreate:
				if sl.val != nil {
					return 0, &ChangeError{Index: i, Change: ch, Err: fmt.Errorf("%s %s already exists (use UPSERT to replace it): %w", owner, r.Type, ErrConflict)}
				}
			case api.ActionDelete:
				if sl.val == nil {
					return 0, &ChangeError{Index: i, Change: ch, Err: fmt.Errorf("%s %s does not exist: %w", owner, r.Type, ErrConflict)}
				}
				if len(ch.Record.Values) > 0 && !sameValues(sl.val, r.Values) {
					return 0, &ChangeError{Index: i, Change: ch, Err: fmt.Errorf("%s %s has other values than the ones given: %w", owner, r.Type, ErrConflict)}
				}
				sl.val = nil
				continue
			}
			val, err := json.Marshal(r)
			if err != nil {
				return 0, err
			}
			sl.val = val
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(zk.path(s.prefix)), ">", 0)}
		var ops []clientv3.Op
		for _, p := range order {
			sl := view[p]
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p), "=", sl.mod))
			if sl.val == nil {
				ops = append(ops, clientv3.OpDelete(p))
			} else {
				ops = append(ops, clientv3.OpPut(p, string(sl.val)))
			}
		}
		tr, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrTooManyOps) {
				return 0, fmt.Errorf("apply changes: %d record sets in one batch is more than this etcd allows (max-txn-ops); split the batch: %w", len(order), ErrConflict)
			}
			return 0, fmt.Errorf("apply changes: %w", err)
		}
		if tr.Succeeded {
			return tr.Header.Revision, nil
		}
		g, err := s.cli.Get(ctx, zk.path(s.prefix), clientv3.WithCountOnly())
		if err == nil && g.Count == 0 {
			return 0, fmt.Errorf("zone %s: %w", zone, ErrNotFound)
		}
	}
	return 0, fmt.Errorf("apply changes: records changed by others 20 times in a row: %w", ErrConflict)
}

func sameValues(stored []byte, values []string) bool {
	var r api.Record
	if json.Unmarshal(stored, &r) != nil {
		return false
	}
	a, b := slices.Clone(r.Values), slices.Clone(values)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Desired is the config file's objects, keyed as in the store.
type Desired map[Key]any

// ReconcileResult counts what Reconcile did.
type ReconcileResult struct {
	Created, Updated, Deleted, Kept int
	// Skipped names objects the file declares but another source owns and the
	// file may not take over (a node an agent registered).
	Skipped []string
	// Revision is the store revision of the last write (0: none).
	Revision int64
}

// Reconcile makes the config-owned objects in the store equal to desired:
// creates and updates what differs and deletes config-owned objects the file
// no longer has. Objects owned by the API or agents are never touched, except
// that a service, listener or group the file now declares becomes the file's.
func (s *Store) Reconcile(ctx context.Context, desired Desired) (ReconcileResult, error) {
	items, _, err := s.Load(ctx)
	if err != nil {
		return ReconcileResult{}, err
	}
	return s.ReconcileLoaded(ctx, items, desired)
}

// ReconcileLoaded is Reconcile against items, a full Load the caller
// already read (a start reads the store once for this and the first
// snapshot).
func (s *Store) ReconcileLoaded(ctx context.Context, items []Item, desired Desired) (ReconcileResult, error) {
	var res ReconcileResult
	current := map[Key]Item{}
	for _, it := range items {
		current[it.Key] = it
	}
	var ops []clientv3.Op
	for k, v := range desired {
		val, err := json.Marshal(v)
		if err != nil {
			return res, err
		}
		cur, exists := current[k]
		if exists {
			curVal, _ := json.Marshal(cur.Value)
			if bytes.Equal(curVal, val) {
				res.Kept++
				continue
			}
			if k.Kind == KindNode && sourceOf(curVal) != api.SourceConfig {
				res.Skipped = append(res.Skipped, fmt.Sprintf("node %s of service %s is registered by %s; the file's node is ignored", k.B, k.A, sourceOf(curVal)))
				continue
			}
			res.Updated++
		} else {
			res.Created++
		}
		ops = append(ops, clientv3.OpPut(k.path(s.prefix), string(val)))
	}
	for k, it := range current {
		if _, want := desired[k]; want || k.Kind == KindRecord {
			continue
		}
		if src, _ := json.Marshal(it.Value); sourceOf(src) == api.SourceConfig {
			ops = append(ops, clientv3.OpDelete(k.path(s.prefix)))
			res.Deleted++
		}
	}
	// Zones and services before nodes, so a reader never sees a node of a
	// service that does not exist yet; in batches etcd accepts everywhere.
	slices.SortStableFunc(ops, func(a, b clientv3.Op) int { return kindRank(s, a) - kindRank(s, b) })
	for len(ops) > 0 {
		n := min(len(ops), 100)
		resp, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit()
		if err != nil {
			return res, fmt.Errorf("reconcile store: %w", err)
		}
		res.Revision = resp.Header.Revision
		ops = ops[n:]
	}
	return res, nil
}

func kindRank(s *Store, op clientv3.Op) int {
	k, _ := parseKey(s.prefix, string(op.KeyBytes()))
	rank := map[Kind]int{KindZone: 0, KindService: 1, KindListener: 2, KindGroup: 2, KindNode: 3}[k.Kind]
	if op.IsDelete() {
		return 10 - rank // delete nodes before their services
	}
	return rank
}

// MaxHealthCheckSize bounds the JSON of one health check definition.
const MaxHealthCheckSize = 4 << 10

// PutHealthCheck stores a health check definition (opaque JSON of at most
// MaxHealthCheckSize bytes) under id. create demands that it be new
// (ErrExists otherwise).
func (s *Store) PutHealthCheck(ctx context.Context, id string, val []byte, create bool) (int64, error) {
	if len(val) > MaxHealthCheckSize {
		return 0, fmt.Errorf("health check %q: %d bytes is more than %d", id, len(val), MaxHealthCheckSize)
	}
	if id == "" || strings.Contains(id, "/") {
		return 0, fmt.Errorf("health check id %q: empty or contains '/'", id)
	}
	rev, _, err := s.update(ctx, HealthCheckKey(id), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old != nil && create {
			return nil, fmt.Errorf("health check %q: %w", id, ErrExists)
		}
		return val, nil
	})
	return rev, err
}

// HealthCheck reads one health check definition (ErrNotFound when absent).
func (s *Store) HealthCheck(ctx context.Context, id string) ([]byte, error) {
	val, _, _, err := s.get(ctx, HealthCheckKey(id).path(s.prefix))
	if err != nil {
		return nil, fmt.Errorf("read health check %s: %w", id, err)
	}
	if val == nil {
		return nil, fmt.Errorf("health check %q: %w", id, ErrNotFound)
	}
	return val, nil
}

// HealthChecks reads every health check definition, by id.
func (s *Store) HealthChecks(ctx context.Context) (map[string][]byte, error) {
	resp, err := s.cli.Get(ctx, kindPrefix(s.prefix, KindHealthCheck), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read health checks: %w", err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if k, ok := parseKey(s.prefix, string(kv.Key)); ok && k.Kind == KindHealthCheck {
			out[k.A] = kv.Value
		}
	}
	return out, nil
}

// DeleteHealthCheck deletes a health check definition (ErrNotFound when absent).
func (s *Store) DeleteHealthCheck(ctx context.Context, id string) (int64, error) {
	rev, _, err := s.update(ctx, HealthCheckKey(id), nil, 0, func(old []byte, _ int64) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("health check %q: %w", id, ErrNotFound)
		}
		return nil, nil
	})
	return rev, err
}

// HealthCheckCount counts the health check definitions.
func (s *Store) HealthCheckCount(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, kindPrefix(s.prefix, KindHealthCheck), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count health checks: %w", err)
	}
	return resp.Count, nil
}
