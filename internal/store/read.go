package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// ErrCompacted means a watch asked for history etcd no longer keeps: the
// reader must read everything again at a new revision.
var ErrCompacted = errors.New("watch revision compacted")

// Item is one object read from the store, or its deletion.
type Item struct {
	Key Key
	// Value is a *api.Zone, *api.Service, *api.Node, *api.Record,
	// *api.Listener or *api.Group; nil when Deleted.
	Value       any
	Deleted     bool
	ModRevision int64
	Lease       int64
}

// A full load reads loadPage keys per request, each request bounded by
// loadPageTimeout: with objects of at most api.MaxObjectSize a page is at
// most 32 MiB, far below gRPC's message limit, so a store of any size that
// the API accepted loads; and a page sent to a member that is cut off fails
// after loadPageTimeout (or loadPageRTTs measured round trips of a store
// measured slow), so the next load goes elsewhere.
//
// Pages then grow to what the objects read so far weigh: up to
// loadPageBytes per page (at most loadPageMax keys), since every page makes
// etcd walk the index of the whole rest of the range to count it, and a
// load of 100 000 small nodes in pages of 500 walked it 200 times. A grown
// page that fails is read again at loadPage keys.
const (
	loadPage        = 500
	loadPageMax     = 20000
	loadPageBytes   = 8 << 20
	loadPageTimeout = 2 * time.Second
	// loadPageRTTs: on a store measured slow (a loaded machine), a page
	// may take this many round trips before it counts as cut off.
	loadPageRTTs = 4
)

// pageTimeout is how long one page may take: loadPageTimeout, or
// loadPageRTTs measured round trips when that is longer.
func pageTimeout(rtt time.Duration) time.Duration {
	return max(loadPageTimeout, loadPageRTTs*rtt)
}

// Load reads every object at one revision, so the result is never half of a
// change. It reads in pages (see loadPage), all at the first page's
// revision.
func (s *Store) Load(ctx context.Context) ([]Item, int64, error) {
	return s.LoadPages(ctx, loadPage)
}

// LoadPages is Load with pages of page keys.
func (s *Store) LoadPages(ctx context.Context, page int) ([]Item, int64, error) {
	key := s.prefix + version
	end := clientv3.GetPrefixRangeEnd(key)
	var items []Item
	var rev int64
	size := page
	for n := 1; ; n++ {
		get := func(size int) (*clientv3.GetResponse, error) {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(size))}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			pctx, cancel := context.WithTimeout(ctx, pageTimeout(s.rtt.get()))
			defer cancel()
			return s.cli.Get(pctx, key, opts...)
		}
		resp, err := get(size)
		if err != nil && size > page && ctx.Err() == nil {
			size = page
			resp, err = get(size)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("load store: page %d (%d objects read): %w", n, len(items), err)
		}
		if page == loadPage && len(resp.Kvs) > 0 {
			bytes := 0
			for _, kv := range resp.Kvs {
				bytes += len(kv.Key) + len(kv.Value)
			}
			size = min(loadPageMax, max(page, loadPageBytes/max(1, bytes/len(resp.Kvs))))
		}
		if rev == 0 {
			rev = resp.Header.Revision
			items = make([]Item, 0, resp.Count)
		}
		for _, kv := range resp.Kvs {
			if it, ok := s.item(kv, false); ok {
				items = append(items, it)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return items, rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (s *Store) item(kv *mvccpb.KeyValue, deleted bool) (Item, bool) {
	k, ok := parseKey(s.prefix, string(kv.Key))
	if !ok {
		return Item{}, false // a key of a newer layout or another tool: not ours to read
	}
	it := Item{Key: k, Deleted: deleted, ModRevision: kv.ModRevision, Lease: kv.Lease}
	if deleted {
		return it, true
	}
	v, err := decodeValue(k, kv.Value)
	if err != nil {
		s.log.Warn("skipping undecodable value", "key", k.String(), "err", err)
		return Item{}, false
	}
	it.Value = v
	return it, true
}

// How a silent watch stream is found out.
const (
	watchProgressEvery = 250 * time.Millisecond
	watchSilentAfter   = time.Second
)

// Batch is every change of one or more store revisions, in order. A batch never
// splits a revision, so applying whole batches never shows half a transaction.
type Batch struct {
	Revision int64
	Items    []Item
}

// Watch streams changes after revision from. The channel closes when ctx ends
// or the stream breaks; the returned error function then says why
// (ErrCompacted when from is too old). A broken stream must be followed by a
// fresh Load.
func (s *Store) Watch(ctx context.Context, from int64) (<-chan Batch, func() error) {
	out := make(chan Batch, 16)
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		// A gRPC stream of its own per watch (the client shares one among
		// watches whose contexts carry the same metadata): a stream carries
		// the auth token it was opened with, and a watch added to an old
		// stream after that token expired is refused as unauthenticated.
		wctx = metadata.AppendToOutgoingContext(wctx, "seamark-watch", strconv.FormatUint(s.watchSeq.Add(1), 10))
		wch := s.cli.Watch(wctx, s.prefix+version, clientv3.WithPrefix(), clientv3.WithRev(from+1))
		// A stream to a member that is cut off stays open and silent: no
		// events, no error, until gRPC's keep-alive gives up (10 s or more).
		// Ask the member for progress every watchProgressEvery; a stream
		// that answers nothing for watchSilentAfter is treated as broken,
		// and the reader loads again (through a member that answers).
		// The limit follows the store's measured round trip (progress
		// answers included): a busy machine answers late, not never, and
		// breaking its stream would only add a full re-read to its load.
		var heard, asked atomic.Int64
		heard.Store(time.Now().UnixNano())
		silent := make(chan struct{})
		var limit time.Duration
		go func() {
			tick := time.NewTicker(watchProgressEvery)
			defer tick.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
				limit = silentLimit(s.rtt.get())
				if time.Since(time.Unix(0, heard.Load())) > limit {
					if s.recheck != nil {
						s.checkEndpointsNow()
					}
					close(silent)
					cancel()
					return
				}
				asked.CompareAndSwap(0, time.Now().UnixNano())
				s.cli.RequestProgress(wctx)
			}
		}()
		defer func() {
			select {
			case <-silent:
				werr = fmt.Errorf("watch store: the stream answered nothing for %v (its member is probably cut off)", limit)
			default:
			}
		}()
		for resp := range wch {
			now := time.Now().UnixNano()
			heard.Store(now)
			if a := asked.Swap(0); a != 0 {
				s.rtt.observe(time.Duration(now - a))
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) || resp.CompactRevision != 0 {
					werr = fmt.Errorf("%w: asked for %d, compacted at %d", ErrCompacted, from+1, resp.CompactRevision)
				} else {
					werr = fmt.Errorf("watch store: %w", err)
				}
				return
			}
			if resp.IsProgressNotify() && len(resp.Events) == 0 {
				continue
			}
			b := Batch{Revision: resp.Header.Revision}
			for _, ev := range resp.Events {
				if it, ok := s.item(ev.Kv, ev.Type == clientv3.EventTypeDelete); ok {
					b.Items = append(b.Items, it)
				}
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil && werr == nil {
			werr = errors.New("watch store: stream closed")
		}
	}()
	return out, func() error { <-done; return werr }
}

// Compact discards history before rev (tests and operators use it; seamark's
// embedded store also compacts on its own).
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	if err != nil {
		return fmt.Errorf("compact store: %w", err)
	}
	return nil
}
