package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Group commit: the conditional writes of update (a registration, a
// deregistration, a service or listener put) that arrive while one is being
// committed wait, and then go to etcd together, as the nested transactions
// of one transaction: one gRPC call, one raft entry, one revision and one
// watch response for all of them, where each still succeeds or fails on its
// own compares. No timer holds a write back: a write that finds nothing in
// flight is sent at once; the window is the commit in flight.
//
// etcd refuses two writes of one key in one transaction, so a key already in
// the batch waits for the next one. A batch that etcd refuses as a whole for
// one member's sake (that member's lease expired, a transaction too large
// for an external cluster's limits) is sent again in halves, down to single
// writes, so one write's failure is never another's.

const (
	// maxGroup bounds the writes of one batch: etcd's default limit of
	// operations per transaction (--max-txn-ops) is 128.
	maxGroup = 128
	// maxGroupBytes bounds the values of one batch, well under etcd's
	// default request limit of 1.5 MiB.
	maxGroupBytes = 512 << 10
)

// condWrite is one conditional write: op (a put or a delete of path) if
// path is still at revision mod (0: absent) and guard, when set, exists.
type condWrite struct {
	ctx   context.Context
	path  string
	guard string
	mod   int64
	op    clientv3.Op
	size  int
	done  chan struct{}

	// The outcome, set before done closes.
	ok        bool
	rev       int64  // the commit's revision
	old       []byte // path's value when the compare failed (nil: absent)
	oldMod    int64
	oldLease  int64
	guardGone bool // the guard does not exist
	err       error
}

// groupCommit queues conditional writes and commits them in batches, one
// batch in flight at a time.
type groupCommit struct {
	kv      clientv3.KV
	timeout time.Duration

	mu      sync.Mutex
	queue   []*condWrite
	running bool
}

// do commits w (with whatever else is queued) and returns when its outcome
// is known, or when w's caller gives up (its context ends): a write still
// queued is then taken out, one in flight has an unknown outcome, as any
// store call cut short. The commit itself is bounded by the latest deadline
// of its batch.
func (g *groupCommit) do(w *condWrite) error {
	w.done = make(chan struct{})
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-w.ctx.Done():
		g.mu.Lock()
		if i := slices.Index(g.queue, w); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
		return unavailable(w.ctx, w.ctx.Err())
	}
}

func (g *groupCommit) run() {
	for {
		g.mu.Lock()
		batch := g.take()
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commit(batch)
	}
}

// take removes the next batch from the queue (g.mu held): writes in order,
// each key once, within maxGroup and maxGroupBytes; a write whose caller has
// given up is answered with its context's error.
func (g *groupCommit) take() []*condWrite {
	var batch []*condWrite
	var keys map[string]bool
	size := 0
	rest := g.queue[:0]
	for i, w := range g.queue {
		if len(batch) == maxGroup || (len(batch) > 0 && size+w.size > maxGroupBytes) {
			rest = append(rest, g.queue[i:]...)
			break
		}
		if err := w.ctx.Err(); err != nil {
			w.err = err
			close(w.done)
			continue
		}
		if keys[w.path] {
			rest = append(rest, w)
			continue
		}
		if keys == nil {
			keys = make(map[string]bool)
		}
		keys[w.path] = true
		size += w.size
		batch = append(batch, w)
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	return batch
}

// commit sends batch as one transaction and answers every write in it.
func (g *groupCommit) commit(batch []*condWrite) {
	g.send(batch)
	for _, w := range batch {
		close(w.done)
	}
}

// send commits batch and sets each write's outcome. A batch refused as a
// whole for something other than the store being out of reach (a lease
// gone, a limit of an external cluster) is sent again in halves, so the
// write at fault fails alone and the others still share transactions.
func (g *groupCommit) send(batch []*condWrite) {
	if len(batch) == 1 {
		g.commitOne(batch[0])
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, w := range batch {
		ops[i] = w.txnOp()
	}
	ctx, cancel := g.context(batch)
	resp, err := g.kv.Txn(ctx).Then(ops...).Commit()
	cancel()
	if err != nil {
		if isUnavailable(err) || errors.Is(err, ErrUnavailable) {
			for _, w := range batch {
				w.err = err
			}
			return
		}
		g.send(batch[:len(batch)/2])
		g.send(batch[len(batch)/2:])
		return
	}
	for i, w := range batch {
		w.result(resp.Header.Revision, resp.Responses[i].GetResponseTxn())
	}
}

// commitOne sends w as a transaction of its own.
func (g *groupCommit) commitOne(w *condWrite) {
	ctx, cancel := g.context([]*condWrite{w})
	defer cancel()
	cmps, then, els := w.parts()
	resp, err := g.kv.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		w.err = err
		return
	}
	w.result(resp.Header.Revision, (*pb.TxnResponse)(resp))
}

// context bounds a commit as each caller's own call would be (bound): by
// the latest deadline among the batch's callers, and by the call timeout for
// a caller without one; never cut short by one caller going away.
func (g *groupCommit) context(batch []*condWrite) (context.Context, context.CancelFunc) {
	var deadline time.Time
	for _, w := range batch {
		d, ok := w.ctx.Deadline()
		if !ok {
			d = time.Now().Add(g.timeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), deadline)
}

func (w *condWrite) parts() (cmps []clientv3.Cmp, then, els []clientv3.Op) {
	cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(w.path), "=", w.mod)}
	els = []clientv3.Op{clientv3.OpGet(w.path)}
	if w.guard != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(w.guard), ">", 0))
		els = append(els, clientv3.OpGet(w.guard, clientv3.WithCountOnly()))
	}
	return cmps, []clientv3.Op{w.op}, els
}

func (w *condWrite) txnOp() clientv3.Op {
	cmps, then, els := w.parts()
	return clientv3.OpTxn(cmps, then, els)
}

// result reads w's outcome from its (nested) transaction's answer.
func (w *condWrite) result(rev int64, tr *pb.TxnResponse) {
	w.rev = rev
	if tr == nil {
		w.err = errors.New("store answered a transaction without its result")
		return
	}
	if tr.Succeeded {
		w.ok = true
		return
	}
	if kvs := tr.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		w.old, w.oldMod, w.oldLease = kvs[0].Value, kvs[0].ModRevision, kvs[0].Lease
	}
	if w.guard != "" && len(tr.Responses) > 1 && tr.Responses[1].GetResponseRange().GetCount() == 0 {
		w.guardGone = true
	}
}

// leaseGone says err is etcd refusing a write on a lease that no longer
// exists.
func leaseGone(err error) bool { return errors.Is(err, rpctypes.ErrLeaseNotFound) }
