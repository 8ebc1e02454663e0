package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnavailable means the store did not answer in time, has no leader or is
// full: nothing was decided, the caller may try again later. An API request
// answers it with 503 and Retry-After.
var ErrUnavailable = errors.New("store unavailable")

// DefaultCallTimeout bounds every store call whose context has no deadline
// of its own (an API request's): a write to a store that is stopped, full or
// cut off fails with ErrUnavailable within it instead of hanging.
const DefaultCallTimeout = 1500 * time.Millisecond

// unavailable wraps err with ErrUnavailable when it says the store could not
// answer (a deadline, a lost connection, no leader, no space). A caller's own
// cancellation stays what it is.
func unavailable(parent context.Context, err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) && parent.Err() != nil {
		return err
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func isUnavailable(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, rpctypes.ErrNoSpace), errors.Is(err, rpctypes.ErrGRPCNoSpace),
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrGRPCNoLeader),
		errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrTooManyRequests), errors.Is(err, rpctypes.ErrUnhealthy):
		return true
	}
	if ee, ok := err.(rpctypes.EtcdError); ok && ee.Code() == codes.ResourceExhausted {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// bound gives ctx the call timeout when it has no deadline of its own.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// boundedKV puts a deadline on every call without one and turns "the store
// could not answer" into ErrUnavailable. Every KV call of the store goes
// through it, so no request waits on a store that is away.
type boundedKV struct {
	clientv3.KV
	d   time.Duration
	rtt *roundTrips // every answered call's duration goes here
}

// timed observes how long a call that got an answer took.
func (b boundedKV) timed(t0 time.Time, err error) {
	if err == nil {
		b.rtt.observe(time.Since(t0))
	}
}

func (b boundedKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	t0 := time.Now()
	r, err := b.KV.Put(c, key, val, opts...)
	b.timed(t0, err)
	return r, unavailable(ctx, err)
}

func (b boundedKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	t0 := time.Now()
	r, err := b.KV.Get(c, key, opts...)
	b.timed(t0, err)
	return r, unavailable(ctx, err)
}

func (b boundedKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	t0 := time.Now()
	r, err := b.KV.Delete(c, key, opts...)
	b.timed(t0, err)
	return r, unavailable(ctx, err)
}

func (b boundedKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	t0 := time.Now()
	r, err := b.KV.Do(c, op)
	b.timed(t0, err)
	return r, unavailable(ctx, err)
}

func (b boundedKV) Txn(ctx context.Context) clientv3.Txn {
	c, cancel := bound(ctx, b.d)
	return &boundedTxn{Txn: b.KV.Txn(c), parent: ctx, cancel: cancel, kv: b}
}

type boundedTxn struct {
	clientv3.Txn
	parent context.Context
	cancel context.CancelFunc
	kv     boundedKV
}

func (t *boundedTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *boundedTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *boundedTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }

func (t *boundedTxn) Commit() (*clientv3.TxnResponse, error) {
	defer t.cancel()
	t0 := time.Now()
	r, err := t.Txn.Commit()
	t.kv.timed(t0, err)
	return r, unavailable(t.parent, err)
}

// boundedLease does for lease calls what boundedKV does for KV calls
// (KeepAlive streams are left alone: they live as long as the lease).
type boundedLease struct {
	clientv3.Lease
	d time.Duration
}

func (b boundedLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	r, err := b.Lease.Grant(c, ttl)
	return r, unavailable(ctx, err)
}

func (b boundedLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	r, err := b.Lease.Revoke(c, id)
	return r, unavailable(ctx, err)
}

func (b boundedLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	r, err := b.Lease.KeepAliveOnce(c, id)
	return r, unavailable(ctx, err)
}

func (b boundedLease) TimeToLive(ctx context.Context, id clientv3.LeaseID, opts ...clientv3.LeaseOption) (*clientv3.LeaseTimeToLiveResponse, error) {
	c, cancel := bound(ctx, b.d)
	defer cancel()
	r, err := b.Lease.TimeToLive(c, id, opts...)
	return r, unavailable(ctx, err)
}

var (
	_ clientv3.KV    = boundedKV{}
	_ clientv3.Txn   = (*boundedTxn)(nil)
	_ clientv3.Lease = boundedLease{}
)
