// Command seed measures the time to the first connection when a name lists
// dead addresses before the live one, for seed.Dial, Go's net.Dialer and a
// serial loop with a 1 s timeout per address, side by side on the same name
// served by the same DNS server.
//
// Dead addresses are blackholed: their SYNs get no answer at all (listeners
// on 127.0.50.x whose accept queue is full, see internal/seedtest), as the
// address of a machine that is gone. The live address comes last, the worst
// case for anything that tries addresses in order.
//
//	go run ./bench/seed [-dead 0,5,20] [-rounds 20] [-net-timeout 30s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/internal/seedtest"
	"github.com/seamark/seamark/seed"
)

func main() {
	deadList := flag.String("dead", "0,5,20", "numbers of dead addresses before the live one, comma separated")
	rounds := flag.Int("rounds", 20, "dials per measurement for seed.Dial and for dials that cannot wait on a timeout")
	slowRounds := flag.Int("slow-rounds", 1, "dials per measurement for dials that wait on timeouts (they are deterministic)")
	netTimeout := flag.Duration("net-timeout", 30*time.Second, "net.Dialer's Timeout (30s is what http.DefaultTransport uses)")
	flag.Parse()
	var deads []int
	for _, s := range strings.Split(*deadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 200 {
			log.Fatalf("-dead: %q is not a number from 0 to 200", s)
		}
		deads = append(deads, n)
	}
	if err := run(deads, *rounds, *slowRounds, *netTimeout); err != nil {
		log.Fatal(err)
	}
}

// result is one method's dials at one number of dead addresses.
type result struct {
	times []time.Duration
	err   error // of the last failed dial
	fails int
}

func (r result) median() time.Duration {
	if len(r.times) == 0 {
		return 0
	}
	s := slices.Clone(r.times)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r result) String() string {
	if len(r.times) == 0 {
		return "-"
	}
	s := fmtDur(r.median())
	if len(r.times) > 1 {
		s += fmt.Sprintf(" (max %s, n=%d)", fmtDur(slices.Max(r.times)), len(r.times))
	}
	if r.fails > 0 {
		s += fmt.Sprintf(", **%d failed**", r.fails)
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func run(deads []int, rounds, slowRounds int, netTimeout time.Duration) error {
	most := slices.Max(deads)
	live := netip.MustParseAddr("127.0.50.1")
	dead := seedtest.Loopbacks(51, 1, most)
	lns, port, err := seedtest.ListenSamePort(append([]netip.Addr{live}, dead...))
	if err != nil {
		return err
	}
	for _, ln := range lns[1:] {
		ln.Close()
	}
	svc := seedtest.NewService(lns[0])
	defer svc.Close()
	bh, err := seedtest.NewBlackhole(dead, port)
	if err != nil {
		return err
	}
	defer bh.Close()
	dns, err := seedtest.NewDNS()
	if err != nil {
		return err
	}
	defer dns.Close()
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr())
	}}

	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("%s, linux %s, %d cores; live address last, after the dead ones; one DNS server (%s) for all\n\n",
		runtime.Version(), strings.TrimSpace(string(kernel)), runtime.NumCPU(), dns.Addr())

	type row struct {
		dead                 int
		seedR, netR, serialR result
	}
	var rows []row
	for _, n := range deads {
		name := fmt.Sprintf("d%d.bench.test", n)
		dns.Set(name, append(slices.Clone(dead[:n]), live))
		target := net.JoinHostPort(name+".", strconv.Itoa(int(port)))
		measure := func(times int, dial func(ctx context.Context) (net.Conn, error)) result {
			var r result
			for i := 0; i < times; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				start := time.Now()
				c, err := dial(ctx)
				took := time.Since(start)
				cancel()
				if err != nil {
					r.fails++
					r.err = err
				} else {
					c.Close()
				}
				r.times = append(r.times, took)
			}
			return r
		}
		slow := slowRounds
		if n == 0 {
			slow = rounds
		}
		rw := row{dead: n}
		rw.seedR = measure(rounds, func(ctx context.Context) (net.Conn, error) {
			return seed.Dial(ctx, target, seed.WithResolver(resolver))
		})
		rw.netR = measure(slow, func(ctx context.Context) (net.Conn, error) {
			d := net.Dialer{Timeout: netTimeout, Resolver: resolver}
			return d.DialContext(ctx, "tcp", target)
		})
		rw.serialR = measure(slow, func(ctx context.Context) (net.Conn, error) {
			ips, err := resolver.LookupNetIP(ctx, "ip", name+".")
			if err != nil {
				return nil, err
			}
			var last error
			for _, ip := range ips {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip.Unmap(), port).String(), time.Second)
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		})
		for _, r := range []result{rw.seedR, rw.netR, rw.serialR} {
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "dead=%d: %v\n", n, r.err)
			}
		}
		rows = append(rows, rw)
	}

	fmt.Printf("| dead addresses | seed.Dial | net.Dialer (Timeout %s) | serial loop, 1 s per address | net.Dialer / seed.Dial | serial / seed.Dial |\n", netTimeout)
	fmt.Println("|---|---|---|---|---|---|")
	ratio := func(a, b result) string {
		if b.median() == 0 || len(a.times) == 0 {
			return "-"
		}
		x := float64(a.median()) / float64(b.median())
		s := fmt.Sprintf("%.0f×", x)
		if x < 10 {
			s = fmt.Sprintf("%.2f×", x)
		}
		if a.fails > 0 {
			s += " (and failed)"
		}
		return s
	}
	for _, r := range rows {
		fmt.Printf("| %d | %s | %s | %s | %s | %s |\n", r.dead, r.seedR, r.netR, r.serialR, ratio(r.netR, r.seedR), ratio(r.serialR, r.seedR))
	}
	return nil
}
