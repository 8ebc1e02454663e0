// Command seedclient is the application of the end-to-end tests: it reaches
// the cluster through the seed library, then sends one request after
// another (a line, echoed back) for -duration, printing one JSON line per
// request so the test can measure how long requests ever kept failing.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/seamark/seamark/seed"
)

type result struct {
	At   int64  `json:"at"` // unix nanoseconds when the request started
	OK   bool   `json:"ok"`
	Err  string `json:"err,omitempty"`
	Addr string `json:"addr,omitempty"`
	Took int64  `json:"took"` // nanoseconds
}

func main() {
	seeds := flag.String("seeds", "", "identity endpoints (host:port), comma separated")
	dnsServer := flag.String("dns", "", "DNS server to resolve seed names with (host:port)")
	duration := flag.Duration("duration", 30*time.Second, "how long to send requests")
	every := flag.Duration("every", 50*time.Millisecond, "pause between requests")
	tend := flag.Duration("tend", 500*time.Millisecond, "node map tend interval")
	flag.Parse()
	var opts []seed.Option
	if *dnsServer != "" {
		opts = append(opts, seed.WithDNSServer(*dnsServer))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	cl, err := seed.NewCluster(ctx, seed.Config{Seeds: strings.Split(*seeds, ","), DialOptions: opts, TendInterval: *tend})
	if err != nil {
		fmt.Fprintln(os.Stderr, "seedclient:", err)
		os.Exit(1)
	}
	defer cl.Close()
	fmt.Fprintln(os.Stderr, "seedclient: seeded", cl.Seeded())
	enc := json.NewEncoder(os.Stdout)
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		r := result{At: start.UnixNano()}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := cl.Dial(rctx)
		if err == nil {
			r.Addr = c.RemoteAddr().String()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			msg := fmt.Sprintf("request %d\n", i)
			_, err = c.Write([]byte(msg))
			if err == nil {
				var line string
				line, err = bufio.NewReader(c).ReadString('\n')
				if err == nil && line != msg {
					err = fmt.Errorf("echo %q, want %q", line, msg)
				}
			}
			c.Close()
		}
		rcancel()
		if ctx.Err() != nil {
			break
		}
		r.OK, r.Took = err == nil, int64(time.Since(start))
		if err != nil {
			r.Err = err.Error()
		}
		enc.Encode(r)
		time.Sleep(*every)
	}
}
