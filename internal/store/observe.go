package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/seamark/seamark/api"
)

// PutObservation writes an observer's view of a group's active member on
// the observer's lease.
func (s *Store) PutObservation(ctx context.Context, o api.Observation, lease *Lease) error {
	_, err := s.putJSON(ctx, ObservationKey(o.Group, o.Observer), o, lease)
	return err
}

// DeleteObservation removes an observer's view of a group (it observes no
// one there any more).
func (s *Store) DeleteObservation(ctx context.Context, group, observer string) error {
	if _, err := s.cli.Delete(ctx, ObservationKey(group, observer).path(s.prefix)); err != nil {
		return fmt.Errorf("delete observation %s/%s: %w", group, observer, err)
	}
	return nil
}

// RevokeHolder takes the role from a holder found dead: if the group's role
// record is still the claim made at fencing on lease (and the member's
// candidacy lives on that lease), it deletes both in one transaction, so a
// standby can claim at once, then revokes lease, so the holder, if it still
// runs and reaches the store, learns it lost the role. Only the stale holder
// is ever touched, never a successor: a successor's claim has another
// revision and another lease. It reports whether it took the role.
func (s *Store) RevokeHolder(ctx context.Context, group, member string, fencing, lease int64) (bool, error) {
	role, cand := RoleKey(group).path(s.prefix), MemberKey(group, member).path(s.prefix)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(role), "=", fencing), clientv3.Compare(clientv3.LeaseValue(role), "=", lease),
			clientv3.Compare(clientv3.LeaseValue(cand), "=", lease)).
		Then(clientv3.OpDelete(role), clientv3.OpDelete(cand)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("revoke holder of %s: %w", group, err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return true, fmt.Errorf("revoke holder of %s: took the role, but lease %x: %w", group, lease, err)
	}
	return true, nil
}

// Renew asks the store to confirm the lease now, outside the background
// keep-alive (an active member confirms its lease more often than ttl/3).
// Renewed moves to the time this request was sent once the store answers.
// It returns an error when the lease is gone or the store did not answer by
// ctx's deadline.
func (l *Lease) Renew(ctx context.Context) error {
	sent := time.Now().UnixNano()
	r, err := l.s.cli.KeepAliveOnce(ctx, l.id)
	if err != nil {
		return fmt.Errorf("renew lease %x: %w", int64(l.id), err)
	}
	if r.TTL <= 0 {
		return fmt.Errorf("renew lease %x: lease lost", int64(l.id))
	}
	for {
		old := l.renewed.Load()
		if old >= sent || l.renewed.CompareAndSwap(old, sent) {
			return nil
		}
	}
}
