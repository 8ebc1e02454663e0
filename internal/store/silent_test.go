package store_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// freezer is a TCP proxy that can stop forwarding while keeping every
// connection open: a member cut off without a reset, as a partition does.
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	delay  atomic.Int64 // ns each chunk waits before it is passed on
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, u)
			f.mu.Unlock()
			go f.pipe(c, u)
			go f.pipe(u, c)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // hold the bytes: nothing passes
		}
		if d := f.delay.Load(); d > 0 && n > 0 {
			time.Sleep(time.Duration(d)) // a slow path: late, not lost
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// TestSilentWatchBreaks: a watch whose member stops answering (no reset, no
// error) is reported broken within about a second, so the reader loads
// again instead of serving a stale view for as long as gRPC keep-alive
// takes to notice.
func TestSilentWatchBreaks(t *testing.T) {
	direct := storetest.New(t)
	ep := strings.TrimPrefix(direct.Endpoints()[0], "http://")
	f := newFreezer(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	user, pw := direct.Credentials()
	viaProxy, err := store.Open(ctx, store.Options{Endpoints: []string{"http://" + f.ln.Addr().String()}, Username: user, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	_, rev, err := viaProxy.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batches, errf := viaProxy.Watch(ctx, rev)
	if _, err := direct.PutService(ctx, api.Service{Name: "one", Port: 1, Source: api.SourceAPI}, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-batches:
	case <-time.After(5 * time.Second):
		t.Fatal("no event through the proxy")
	}
	f.frozen.Store(true)
	start := time.Now()
	for range batches {
	}
	d := time.Since(start)
	f.frozen.Store(false)
	if err := errf(); err == nil || !strings.Contains(err.Error(), "answered nothing") {
		t.Fatalf("got %v, want a silent-stream error", err)
	}
	if d > 3*time.Second {
		t.Errorf("silent stream found out after %v, want about 1s", d)
	}
	t.Logf("silent stream broken after %v", d)
}

// TestSlowWatchDoesNotBreak: a store that answers, but slowly (every chunk
// 600 ms late each way, as on a machine at load 15), is not taken for a cut
// off one: the silent limit follows the measured round trip, so the stream
// stays and delivers, and no full re-read is added to the load.
func TestSlowWatchDoesNotBreak(t *testing.T) {
	direct := storetest.New(t)
	ep := strings.TrimPrefix(direct.Endpoints()[0], "http://")
	f := newFreezer(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	user, pw := direct.Credentials()
	viaProxy, err := store.Open(ctx, store.Options{Endpoints: []string{"http://" + f.ln.Addr().String()}, Username: user, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	f.delay.Store(int64(600 * time.Millisecond))
	// One call measures the slow round trip, so the load's pages get their
	// time from it (pageTimeout) rather than the 2 s floor, which a 1.2 s
	// round trip on a loaded machine can pass.
	if _, err := viaProxy.HealthCheckCount(ctx); err != nil {
		t.Fatal(err)
	}
	_, rev, err := viaProxy.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured round trip %v", viaProxy.RoundTrip())
	wctx, stop := context.WithCancel(ctx)
	batches, errf := viaProxy.Watch(wctx, rev)
	deadline := time.After(5 * time.Second)
	for i := 0; ; i++ {
		if i < 3 {
			if _, err := direct.PutService(ctx, api.Service{Name: fmt.Sprintf("s%d", i), Port: 1, Source: api.SourceAPI}, true); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case _, ok := <-batches:
			if !ok {
				t.Fatalf("a slow stream was broken: %v", errf())
			}
			continue
		case <-deadline:
		}
		break
	}
	stop()
	for range batches {
	}
}
