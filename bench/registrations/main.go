// Command registrations measures node registrations per second through
// seamark's HTTP API and the latency from an API write to the snapshot that
// every reader answers from, side by side with the floor underneath: raw etcd
// puts from the same number of concurrent clients to the same embedded store,
// and the same registrations over https (a CA made at run time) on a second
// server of its own.
//
//	go run ./bench/registrations [-c 64] [-d 5s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs/certstest"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/server"
)

func main() {
	conc := flag.Int("c", 64, "concurrent clients")
	dur := flag.Duration("d", 5*time.Second, "duration of each phase")
	rate := flag.Int("rate", 0, "open loop: start this many writes per second in total (0: as fast as the clients go)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	https := flag.Bool("https", true, "run the https phases too (on a second server)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*conc, *dur, *rate, *https); err != nil {
		log.Print(err)
	}
}

// sample is one write: when it was sent, when it was answered, its revision.
type sample struct {
	start, done time.Time
	rev         int64
}

// snapTimes records when each snapshot revision was published.
type snapTimes struct {
	mu   sync.Mutex
	revs []int64
	at   []time.Time
}

func (s *snapTimes) follow(ctx context.Context, w *registry.Watcher) {
	cur := w.Current()
	for {
		select {
		case <-w.Next(cur):
		case <-ctx.Done():
			return
		}
		cur = w.Current()
		now := time.Now()
		s.mu.Lock()
		s.revs = append(s.revs, cur.Revision)
		s.at = append(s.at, now)
		s.mu.Unlock()
	}
}

// visible returns when the first snapshot at or after rev was published.
func (s *snapTimes) visible(rev int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.revs), func(i int) bool { return s.revs[i] >= rev })
	if i == len(s.revs) {
		return time.Time{}, false
	}
	return s.at[i], true
}

// startServer starts a server in its own data directory under dir, serving
// https with pki's server certificate when pki is set, and returns it with a
// client of conc connections.
func startServer(ctx context.Context, dir string, conc int, pki *benchPKI) (*server.Server, *api.Client, error) {
	f := &config.File{}
	f.SetDefaults()
	f.Server.DataDir, f.Server.HTTPAddr = dir, "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	scheme := "http://"
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	if pki != nil {
		f.Server.TLS = config.TLS{CertFile: pki.server.CertFile, KeyFile: pki.server.KeyFile}
		scheme = "https://"
		tc, err := api.TLSFiles{CAFile: pki.ca.CAFile}.Config()
		if err != nil {
			return nil, nil, err
		}
		tr.TLSClientConfig = tc
	}
	srv, err := server.Start(ctx, server.Options{Config: f, Version: "bench"})
	if err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient([]string{scheme + srv.HTTPAddr().String()}, api.WithHTTPClient(&http.Client{Transport: tr}))
	if err == nil {
		_, err = c.CreateService(ctx, api.Service{Name: "bench", Port: 3000, Check: api.Check{Type: api.CheckNone}})
	}
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return srv, c, nil
}

// benchPKI is a CA made at run time and a server certificate for 127.0.0.1.
type benchPKI struct {
	ca     *certstest.CA
	server certstest.Pair
}

func newPKI(dir string) (*benchPKI, error) {
	ca, err := certstest.NewCA(dir, "bench")
	if err != nil {
		return nil, err
	}
	p, err := ca.Issue("server", "127.0.0.1")
	return &benchPKI{ca: ca, server: p}, err
}

// registering returns a phase op that registers nodes through c.
func registering(ctx context.Context, c *api.Client, ttl time.Duration, tag string) func(w, i int) (int64, error) {
	return func(w, i int) (int64, error) {
		n := api.Node{ID: fmt.Sprintf("%s-%d-%d", tag, w, i), Service: "bench", Address: netip.AddrFrom4([4]byte{10, byte(w), byte(i >> 8), byte(i)}), TTL: api.Duration(ttl)}
		res, err := c.Register(ctx, n)
		return res.Revision, err
	}
}

func run(conc int, dur time.Duration, rate int, https bool) error {
	dir, err := os.MkdirTemp("", "seamark-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srv, c, err := startServer(ctx, filepath.Join(dir, "http"), conc, nil)
	if err != nil {
		return err
	}
	defer func() { srv.Close() }()
	user, pw := srv.Store().Credentials()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Store().Endpoints(), Logger: zap.NewNop(), Username: user, Password: pw})
	if err != nil {
		return err
	}
	defer cli.Close()

	load := "closed loop (as fast as they go)"
	if rate > 0 {
		load = fmt.Sprintf("open loop at %d writes/s", rate)
	}
	fmt.Printf("seamark registrations benchmark, %s, %s/%s, %d cores, %d concurrent clients, %s, %v per phase\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), conc, load, dur)

	// The floor: raw etcd puts of the same size, through one gRPC client.
	value := make([]byte, 220) // about the size of a registered node's JSON
	floor := phase(conc, dur, rate, func(w, i int) (int64, error) {
		r, err := cli.Put(ctx, fmt.Sprintf("/bench/raw/%d/%d", w, i), string(value))
		if err != nil {
			return 0, err
		}
		return r.Header.Revision, nil
	})

	snaps := &snapTimes{}
	fctx, stop := context.WithCancel(ctx)
	go snaps.follow(fctx, srv.Snapshots())
	plain := phase(conc, dur, rate, registering(ctx, c, 0, "p"))
	leased := phase(conc, dur, rate, registering(ctx, c, 30*time.Second, "l"))
	stop()
	cli.Close()
	if !https {
		defer srv.Close()
		fmt.Println("| what | writes/s | errors | response p50 | response p99 | write→snapshot p50 | write→snapshot p99 | CPU per write |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		floor.print("etcd Put (floor, same store)", nil)
		plain.print("seamark register (no ttl)", snaps)
		leased.print("seamark register (ttl 30s, own lease)", snaps)
		if rate == 0 {
			fmt.Printf("\nratio seamark/etcd: %.2f (no ttl), %.2f (ttl)\n", plain.rate()/floor.rate(), leased.rate()/floor.rate())
		}
		return nil
	}
	srv.Close()

	// The same over https, on a server of its own with a CA made now.
	pki, err := newPKI(dir)
	if err != nil {
		return err
	}
	srv, c, err = startServer(ctx, filepath.Join(dir, "https"), conc, pki)
	if err != nil {
		return err
	}
	tlsSnaps := &snapTimes{}
	fctx, stop = context.WithCancel(ctx)
	go tlsSnaps.follow(fctx, srv.Snapshots())
	tlsPlain := phase(conc, dur, rate, registering(ctx, c, 0, "p"))
	tlsLeased := phase(conc, dur, rate, registering(ctx, c, 30*time.Second, "l"))
	stop()

	fmt.Println("| what | writes/s | errors | response p50 | response p99 | write→snapshot p50 | write→snapshot p99 | CPU per write |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	floor.print("etcd Put (floor, same store)", nil)
	plain.print("seamark register (no ttl)", snaps)
	leased.print("seamark register (ttl 30s, own lease)", snaps)
	tlsPlain.print("seamark register over https (no ttl)", tlsSnaps)
	tlsLeased.print("seamark register over https (ttl 30s, own lease)", tlsSnaps)
	if rate == 0 {
		fmt.Printf("\nratio seamark/etcd: %.2f (no ttl), %.2f (ttl)\n", plain.rate()/floor.rate(), leased.rate()/floor.rate())
		fmt.Printf("ratio https/http: %.2f (no ttl), %.2f (ttl); response p99 %s vs %s (no ttl)\n",
			tlsPlain.rate()/plain.rate(), tlsLeased.rate()/leased.rate(), fmtD(tlsPlain.p99()), fmtD(plain.p99()))
	} else {
		fmt.Printf("\nresponse p99 https %s vs http %s (no ttl), %s vs %s (ttl)\n",
			fmtD(tlsPlain.p99()), fmtD(plain.p99()), fmtD(tlsLeased.p99()), fmtD(leased.p99()))
	}
	p50, p99, n, err := commitToSnapshot(srv.Registry())
	if err != nil {
		return err
	}
	fmt.Printf("store commit -> local snapshot (server histogram, %d writes): p50 <= %s, p99 <= %s (bucket upper bounds)\n", n, fmtD(p50), fmtD(p99))
	return nil
}

// commitToSnapshot reads the server's seamark_write_visible_seconds histogram
// (time from the store committing an API write to the snapshot showing it)
// and returns the bucket bounds holding its 50th and 99th percentiles.
func commitToSnapshot(reg prometheus.Gatherer) (p50, p99 time.Duration, n uint64, err error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "seamark_write_visible_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		n = h.GetSampleCount()
		q := func(p float64) time.Duration {
			for _, b := range h.GetBucket() {
				if float64(b.GetCumulativeCount()) >= p*float64(n) {
					return time.Duration(b.GetUpperBound() * float64(time.Second))
				}
			}
			return 0
		}
		return q(0.5), q(0.99), n, nil
	}
	return 0, 0, 0, fmt.Errorf("no seamark_write_visible_seconds metric")
}

type result struct {
	samples []sample
	errors  int64
	elapsed time.Duration
	cpu     time.Duration // the process's CPU time (user + system) during the phase
}

func (r *result) rate() float64 { return float64(len(r.samples)) / r.elapsed.Seconds() }

// p99 is the 99th percentile of response times.
func (r *result) p99() time.Duration {
	var resp []time.Duration
	for _, s := range r.samples {
		resp = append(resp, s.done.Sub(s.start))
	}
	return pct(resp, 0.99)
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

func (r *result) print(name string, snaps *snapTimes) {
	var resp, vis []time.Duration
	for _, s := range r.samples {
		resp = append(resp, s.done.Sub(s.start))
		if snaps != nil {
			if at, ok := snaps.visible(s.rev); ok {
				vis = append(vis, at.Sub(s.start))
			}
		}
	}
	v50, v99 := "-", "-"
	if snaps != nil {
		v50, v99 = fmtD(pct(vis, 0.50)), fmtD(pct(vis, 0.99))
	}
	fmt.Printf("| %s | %.0f | %d | %s | %s | %s | %s | %s |\n", name, r.rate(), r.errors, fmtD(pct(resp, 0.5)), fmtD(pct(resp, 0.99)), v50, v99, r.cpuPerWrite())
}

// processCPU is the CPU time (user + system) this process has used: server,
// embedded etcd and load generator together, whatever else the machine runs.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerWrite is the process's CPU time per write of the phase.
func (r *result) cpuPerWrite() string {
	if len(r.samples) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(r.cpu)/float64(len(r.samples))/1e3)
}

func fmtD(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// phase runs conc workers calling op until dur has passed. With rate > 0 the
// writes are started on a fixed schedule and latency is counted from when a
// write was due, so a slow server cannot hide queueing (no coordinated
// omission).
func phase(conc int, dur time.Duration, rate int, op func(worker, i int) (int64, error)) *result {
	var due chan time.Time
	if rate > 0 {
		due = make(chan time.Time, rate)
		go func() {
			defer close(due)
			interval := time.Second / time.Duration(rate)
			start := time.Now()
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i) * interval)
				if at.After(start.Add(dur)) {
					return
				}
				time.Sleep(time.Until(at))
				due <- at
			}
		}()
	}
	var mu sync.Mutex
	res := &result{}
	var errs atomic.Int64
	deadline := time.Now().Add(dur)
	cpu0 := processCPU()
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			for i := 0; time.Now().Before(deadline); i++ {
				s := sample{start: time.Now()}
				if due != nil {
					at, ok := <-due
					if !ok {
						break
					}
					s.start = at
				}
				rev, err := op(w, i)
				if err != nil {
					errs.Add(1)
					continue
				}
				s.done, s.rev = time.Now(), rev
				local = append(local, s)
			}
			mu.Lock()
			res.samples = append(res.samples, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	res.cpu = processCPU() - cpu0
	res.errors = errs.Load()
	return res
}
