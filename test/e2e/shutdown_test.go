package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// stopBound is how long a server may take from SIGTERM to its exit: the
// API's graceful shutdown (at most 5 s) and the audit log's last write (at
// most 2 s) are the longest waits; the rest is margin for a loaded machine.
// None of it may grow with the registry.
const stopBound = 10 * time.Second

// A server with thousands of nodes stops promptly after SIGTERM (issue 18:
// a 100 000-node server was seen to go on for minutes): while 32 clients
// register and re-register nodes and blocking reads wait, and again while a
// restarted server is still loading its store.
func TestStopsPromptlyWithManyNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("SEAMARK_E2E_STOP_NODES")); err == nil && v > 0 {
		n = v
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(outageConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data")}
	s := startServer(t, "server", args...)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	c, err := api.NewClient([]string{s.url}, api.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 63, byte(i)}) }

	// Fill: n nodes from 32 clients.
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := c.Register(ctx, api.Node{ID: fmt.Sprintf("n%05d", i), Service: "db", Address: addr(i)}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d registrations failed", f, n)
	}

	// Load: 32 clients re-register (with and without a lease) and 8
	// blocking reads wait for the next change, until SIGTERM.
	lctx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for w := range 32 {
		load.Go(func() {
			for k := 0; lctx.Err() == nil; k++ {
				i := (w*997 + k*31) % n
				ttl := api.Duration(0)
				if k%4 == 0 {
					ttl = api.Duration(30 * time.Second)
				}
				c.Register(lctx, api.Node{ID: fmt.Sprintf("n%05d", i), Service: "db", Address: addr(i + k), TTL: ttl})
			}
		})
	}
	for range 8 {
		load.Go(func() {
			for lctx.Err() == nil {
				_, idx, err := c.Nodes(lctx, "db", nil)
				if err != nil {
					continue
				}
				c.Nodes(lctx, "db", &api.QueryOptions{Index: idx, Wait: time.Minute})
			}
		})
	}
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("under load with %d nodes: %v", n, err)
	}
	took := time.Since(t0)
	stopLoad()
	load.Wait()
	t.Logf("%d nodes, under load: SIGTERM → exit in %v (%s)", n, took, stoppedRE.FindString(s.output()))
	if took > stopBound {
		t.Errorf("under load with %d nodes: SIGTERM → exit took %v, want at most %v", n, took, stopBound)
	}

	// Restart on the same data and stop it while it loads the store.
	p := startProc(t, "restarted", seamarkBin, append([]string{"server", "--http-addr", "127.0.0.1:0", "--etcd-client-addr", "127.0.0.1:0",
		"--etcd-peer-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"}, args...)...)
	p.waitOutput(regexpMust(`store ready`), 30*time.Second)
	t0 = time.Now()
	if err := p.stop(); err != nil {
		t.Fatalf("while loading %d nodes: %v", n, err)
	}
	t.Logf("%d nodes, while loading: SIGTERM → exit in %v", n, time.Since(t0))
}

// stoppedRE finds the server's last log line, with how long each step of
// its stop took.
var stoppedRE = regexpMust(`msg=stopped .*`)
