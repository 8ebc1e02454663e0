package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/seamark/seamark/api"
)

// Lease is a store lease kept alive until Close or until it is lost. What a
// live process writes on it (a checker's verdicts, a member's candidacy)
// disappears when the process dies without a word.
type Lease struct {
	id     clientv3.LeaseID
	ttl    time.Duration
	s      *Store
	cancel context.CancelFunc
	done   chan struct{}
	// renewed is when the store last confirmed the lease (unix nanoseconds).
	renewed atomic.Int64
}

// GrantLease grants a lease of ttl (whole seconds, at least 1s) and keeps it
// alive in the background. Done is closed when the lease is lost (expired
// while the store was out of reach, or revoked): its owner must grant a new
// one and write again.
func (s *Store) GrantLease(ctx context.Context, ttl time.Duration) (*Lease, error) {
	secs := max(int64((ttl+time.Second-1)/time.Second), 1)
	g, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		s.revoke(g.ID)
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	l := &Lease{id: g.ID, ttl: time.Duration(secs) * time.Second, s: s, cancel: cancel, done: make(chan struct{})}
	l.renewed.Store(time.Now().UnixNano())
	go func() {
		defer close(l.done)
		for r := range ch { // drain: etcd's client stalls keep-alives that nobody reads
			if r.TTL > 0 {
				l.renewed.Store(time.Now().UnixNano())
			}
		}
	}()
	return l, nil
}

// Renewed is when the store last confirmed the lease alive. The store
// expires it no sooner than TTL after that moment's request was sent, so a
// holder that has heard nothing for TTL minus its round trip must assume it
// lost whatever lives on the lease.
func (l *Lease) Renewed() time.Time { return time.Unix(0, l.renewed.Load()) }

// ID is the lease's etcd ID.
func (l *Lease) ID() int64 { return int64(l.id) }

// TTL is the lease's time to live.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Done is closed when the lease is lost or closed.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Close stops keeping the lease alive and revokes it, so what lives on it
// disappears now rather than after the ttl.
func (l *Lease) Close() {
	l.cancel()
	<-l.done
	l.s.revoke(l.id)
}

func (s *Store) putJSON(ctx context.Context, k Key, v any, lease *Lease) (int64, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	var opts []clientv3.OpOption
	if lease != nil {
		opts = append(opts, clientv3.WithLease(lease.id))
	}
	r, err := s.cli.Put(ctx, k.path(s.prefix), string(val), opts...)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("write %s: lease lost: %w", k, err)
		}
		return 0, fmt.Errorf("write %s: %w", k, err)
	}
	return r.Header.Revision, nil
}

// PutChecker announces a live health checker on its lease.
func (s *Store) PutChecker(ctx context.Context, c api.Checker, lease *Lease) error {
	_, err := s.putJSON(ctx, CheckerKey(c.ID), c, lease)
	return err
}

// VerdictWrite is one verdict to write, or to delete.
type VerdictWrite struct {
	Service, Node string
	Verdict       api.Verdict
	Delete        bool
}

// maxBatch is the most operations sent in one transaction: within etcd's
// default max-txn-ops (128), so batches work on any cluster.
const maxBatch = 100

// PutVerdicts writes (or deletes) many verdicts of one checker, on its lease,
// in as few transactions as etcd allows. Each transaction is atomic; the
// batches are not atomic together.
func (s *Store) PutVerdicts(ctx context.Context, checker string, ws []VerdictWrite, lease *Lease) error {
	var ops []clientv3.Op
	for _, w := range ws {
		k := HealthKey(w.Service, w.Node, checker).path(s.prefix)
		if w.Delete {
			ops = append(ops, clientv3.OpDelete(k))
			continue
		}
		val, err := json.Marshal(w.Verdict)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(k, string(val), clientv3.WithLease(lease.id)))
	}
	return s.commitBatches(ctx, ops)
}

func (s *Store) commitBatches(ctx context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), maxBatch)
		if _, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return fmt.Errorf("write batch: lease lost: %w", err)
			}
			return fmt.Errorf("write batch: %w", err)
		}
		ops = ops[n:]
	}
	return nil
}

// MaxEvents is how many events the log keeps, besides audit events.
const MaxEvents = 1000

// MaxAuditEvents is how many audit events (kind audit) the log keeps. They
// are kept apart, so a burst of writes never pushes health and role events
// out of the log.
const MaxAuditEvents = 1000

// auditKeyPrefix starts the key of every audit event: the letter sorts after
// every time-stamped key, so audit events are one key range and the others
// another, each trimmed to its own size.
const auditKeyPrefix = "audit-"

// eventKey is the key of an event: its time, origin and a sequence number.
func eventKey(e api.Event, origin, seq string) Key {
	a := fmt.Sprintf("%020d-%s%s", e.Time.UnixNano(), strings.ReplaceAll(origin, "/", "_"), seq)
	if e.Kind == api.EventAudit {
		a = auditKeyPrefix + a
	}
	return Key{Kind: KindEvent, A: a}
}

// Audit events are kept in batches: the audit events of one AppendEvents
// share a key (a JSON array, at most maxAuditBatchBytes), so a burst of API
// writes costs the store one key per batch, not one per write, and readers
// one watch event per batch. The key ends in "-n<count>", so a trim counts
// events from the keys alone.
const maxAuditBatchBytes = 32 << 10

// AppendEvents adds events to the log in batches (audit events as batches
// of their own), then drops the oldest beyond MaxEvents (and the oldest
// audit batches beyond MaxAuditEvents).
func (s *Store) AppendEvents(ctx context.Context, es []api.Event, origin string) error {
	ops := make([]clientv3.Op, 0, len(es))
	var batch []byte // audit events, a JSON array being filled
	var first api.Event
	count, audit := 0, false
	closeBatch := func() {
		if count == 0 {
			return
		}
		batch = append(batch, ']')
		k := eventKey(first, origin, fmt.Sprintf("-%d-n%d", len(ops), count))
		ops = append(ops, clientv3.OpPut(k.path(s.prefix), string(batch)))
		batch, count = nil, 0
	}
	for i, e := range es {
		val, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if e.Kind != api.EventAudit {
			ops = append(ops, clientv3.OpPut(eventKey(e, origin, fmt.Sprintf("-%d", i)).path(s.prefix), string(val)))
			continue
		}
		audit = true
		if count > 0 && len(batch)+len(val)+2 > maxAuditBatchBytes {
			closeBatch()
		}
		if count == 0 {
			first, batch = e, append(batch, '[')
		} else {
			batch = append(batch, ',')
		}
		batch = append(batch, val...)
		count++
	}
	closeBatch()
	if err := s.commitBatches(ctx, ops); err != nil {
		return err
	}
	s.trimEvents(ctx, audit)
	return nil
}

// AppendEvent adds an event to the log and drops the oldest beyond MaxEvents
// (or MaxAuditEvents).
func (s *Store) AppendEvent(ctx context.Context, e api.Event, origin string) (int64, error) {
	rev, err := s.putJSON(ctx, eventKey(e, origin, ""), e, nil)
	if err != nil {
		return 0, err
	}
	s.trimEvents(ctx, e.Kind == api.EventAudit)
	return rev, nil
}

// trimEvents drops the oldest events beyond MaxEvents, or, for audit, the
// oldest audit batches while the newer ones still hold MaxAuditEvents.
func (s *Store) trimEvents(ctx context.Context, audit bool) {
	all := kindPrefix(s.prefix, KindEvent)
	if audit {
		s.trimAudit(ctx, all+auditKeyPrefix)
		return
	}
	from, end, keep := all, all+auditKeyPrefix, int64(MaxEvents) // time-stamped keys sort before "audit-"
	cnt, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil || cnt.Count <= keep {
		return
	}
	// Keys sort by time: delete from the first up to the oldest one kept.
	old, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(cnt.Count-keep+1))
	if err != nil || len(old.Kvs) == 0 {
		return
	}
	last := old.Kvs[len(old.Kvs)-1].Key
	if _, err := s.cli.Delete(ctx, from, clientv3.WithRange(string(last))); err != nil {
		s.log.Warn("trim event log", "err", err)
	}
}

func (s *Store) trimAudit(ctx context.Context, from string) {
	end := clientv3.GetPrefixRangeEnd(from)
	keys, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return
	}
	total := 0
	for _, kv := range keys.Kvs {
		total += auditCount(string(kv.Key))
	}
	drop := 0 // the oldest keys to delete
	for drop < len(keys.Kvs) && total-auditCount(string(keys.Kvs[drop].Key)) >= MaxAuditEvents {
		total -= auditCount(string(keys.Kvs[drop].Key))
		drop++
	}
	if drop == 0 {
		return
	}
	if _, err := s.cli.Delete(ctx, from, clientv3.WithRange(string(keys.Kvs[drop].Key))); err != nil {
		s.log.Warn("trim audit log", "err", err)
	}
}

// auditCount is how many audit events the key holds: the count after its
// last "-n" (a batch), or 1 (a single event).
func auditCount(key string) int {
	i := strings.LastIndex(key, "-n")
	if i < 0 {
		return 1
	}
	n, err := strconv.Atoi(key[i+2:])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// PutCandidacy writes a balancer member's candidacy on its lease.
func (s *Store) PutCandidacy(ctx context.Context, c api.Candidacy, lease *Lease) (int64, error) {
	return s.putJSON(ctx, MemberKey(c.Group, c.Member), c, lease)
}

// DeleteCandidacy removes a member's candidacy (a graceful stop).
func (s *Store) DeleteCandidacy(ctx context.Context, group, member string) error {
	if _, err := s.cli.Delete(ctx, MemberKey(group, member).path(s.prefix)); err != nil {
		return fmt.Errorf("delete candidacy %s/%s: %w", group, member, err)
	}
	return nil
}

// ClaimRole makes r the group's active role, on lease, if the role key is
// still at revision expect (0: absent). It returns the claim's revision (the
// fencing revision) and whether the claim won; a lost race is not an error.
func (s *Store) ClaimRole(ctx context.Context, r api.Role, lease *Lease, expect int64) (int64, bool, error) {
	r.Fencing, r.Lease = 0, 0
	val, err := json.Marshal(r)
	if err != nil {
		return 0, false, err
	}
	k := RoleKey(r.Group).path(s.prefix)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", expect)).
		Then(clientv3.OpPut(k, string(val), clientv3.WithLease(lease.id))).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, false, fmt.Errorf("claim role of %s: lease lost: %w", r.Group, err)
		}
		return 0, false, fmt.Errorf("claim role of %s: %w", r.Group, err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// ReleaseRole deletes the group's role if it is still the claim made at
// fencing (a member stepping down never removes a successor's claim).
func (s *Store) ReleaseRole(ctx context.Context, group string, fencing int64) (bool, error) {
	k := RoleKey(group).path(s.prefix)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", fencing)).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("release role of %s: %w", group, err)
	}
	return resp.Succeeded, nil
}

// RevokeLease ends a lease now, with everything that lives on it (another
// process's lease, known dead).
func (s *Store) RevokeLease(ctx context.Context, id int64) error {
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke lease %x: %w", id, err)
	}
	return nil
}
