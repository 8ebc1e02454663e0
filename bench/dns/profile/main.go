// Command profile runs seamark's DNS server (internal/dns) in this process on
// the data bench/dns/run.sh uses, drives it with dnsperf, and writes a CPU
// profile of the server under that load.
//
//	go run ./bench/dns/profile [-n 100] [-d 20s] [-c 4] [-sockets 0] [-cpuprofile dns.cpu]
//	go tool pprof -top dns.cpu
//
// The snapshot is built in memory (registry.Build) instead of read from an
// embedded store, so the profile holds the DNS server and nothing else: no
// etcd, no HTTP API, no health checker. Zone bench.test, n services svcNNNN with
// 3 nodes each (check none, TTL 5 s); the query mix is run.sh's: per service
// 7 × service A, 1 × node-name A, 1 × service AAAA (NODATA), 1 × NXDOMAIN.
// Traffic stays on 127.0.0.1; dnsperf is bounded by -l and a timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/bench/dns/dnsload"
	seadns "github.com/seamark/seamark/internal/dns"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
)

// static serves one snapshot forever.
type static struct{ s *registry.Snapshot }

func (st static) Current() *registry.Snapshot             { return st.s }
func (st static) Next(*registry.Snapshot) <-chan struct{} { return nil }

var _ seadns.Snapshots = static{}

const zone = "bench.test."

func main() {
	n := flag.Int("n", 100, "services (3 nodes each)")
	dur := flag.Duration("d", 20*time.Second, "dnsperf run time (-l)")
	clients := flag.Int("c", 4, "dnsperf clients (-c)")
	threads := flag.Int("T", 0, "dnsperf threads (-T; 0: dnsperf's default)")
	sockets := flag.Int("sockets", 0, "UDP sockets of the server (0: GOMAXPROCS, as shipped)")
	cpuprofile := flag.String("cpuprofile", "dns.cpu", "write the CPU profile of the server under load here (empty: none)")
	extra := flag.String("dnsperf-args", "", "more dnsperf arguments, space separated (e.g. -e)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/dns/profile: ")

	snap := registry.Build(items(*n), 1)
	srv := seadns.New(seadns.Options{Addr: "127.0.0.1:0", Snapshots: static{snap}, Sockets: *sockets, RRL: seadns.RRL{Disabled: true}}) // one source: RRL off, as in run.sh
	if err := srv.Listen(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	dir, err := os.MkdirTemp("", "seamark-dns-profile")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	qfile := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qfile, []byte(dnsload.Queries(*n)), 0o644); err != nil {
		log.Fatal(err)
	}
	port := strconv.Itoa(int(srv.Addr().Port()))
	base := []string{"-s", "127.0.0.1", "-p", port, "-d", qfile, "-c", strconv.Itoa(*clients), "-n", "100000"}
	if *threads > 0 {
		base = append(base, "-T", strconv.Itoa(*threads))
	}
	base = append(base, strings.Fields(*extra)...)

	// Warm the workers' caches, outside the profile.
	if _, err := dnsload.Dnsperf(append(base, "-l", "2"), 32*time.Second); err != nil {
		log.Fatal(err)
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	var r0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	secs := int(dur.Round(time.Second) / time.Second)
	out, err := dnsload.Dnsperf(append(base, "-l", strconv.Itoa(max(secs, 1))), *dur+30*time.Second)
	var r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		log.Fatal(err)
	}
	user := time.Duration(syscall.TimevalToNsec(r1.Utime) - syscall.TimevalToNsec(r0.Utime))
	sys := time.Duration(syscall.TimevalToNsec(r1.Stime) - syscall.TimevalToNsec(r0.Stime))
	qps, completed := dnsload.Stat(out, "Queries per second:"), dnsload.Stat(out, "Queries completed:")
	fmt.Printf("server: %d UDP sockets, GOMAXPROCS %d; dnsperf %s\n", sockets2(*sockets), runtime.GOMAXPROCS(0), strings.Join(base[4:], " "))
	fmt.Printf("QPS %.0f, avg latency %.3f ms; server CPU user %.2fs sys %.2fs (%.0f %% of one core), %.2f µs CPU per answer\n",
		qps, dnsload.Stat(out, "Average Latency (s):")*1000, user.Seconds(), sys.Seconds(),
		100*(user+sys).Seconds()/dur.Seconds(), (user+sys).Seconds()*1e6/max(completed, 1))
	if *cpuprofile != "" {
		fmt.Printf("profile: go tool pprof -top %s\n", *cpuprofile)
	}
}

func sockets2(s int) int {
	if s <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return s
}

// items are run.sh's config as store items: zone bench.test, n services with
// 3 nodes each at 127.{2,3,4}.i/256.i%256.
func items(n int) []store.Item {
	its := []store.Item{{Key: store.ZoneKey(zone), Value: &api.Zone{Name: zone, Source: api.SourceConfig}}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("svc%04d", i)
		svc := &api.Service{Name: name, Port: 3000, Check: api.Check{Type: api.CheckNone}, Answers: api.AnswerPolicy{TTL: api.Duration(5 * time.Second)}, Source: api.SourceConfig}
		svc.SetDefaults()
		its = append(its, store.Item{Key: store.ServiceKey(name), Value: svc})
		for k, suffix := range []string{"a", "b", "c"} {
			id := name + "-" + suffix
			nd := &api.Node{ID: id, Service: name, Address: netip.AddrFrom4([4]byte{127, byte(2 + k), byte(i / 256), byte(i % 256)}), Source: api.SourceConfig}
			nd.SetDefaults()
			its = append(its, store.Item{Key: store.NodeKey(name, id), Value: nd})
		}
	}
	return its
}
