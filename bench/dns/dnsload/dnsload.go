// Package dnsload is what the DNS bench programs share: the query mix that
// run.sh plays, a bounded dnsperf run, and reading numbers from its report.
package dnsload

import (
	"context"
	"fmt"
	"log"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Queries is run.sh's query file for n services of zone bench.test: per
// service 7 × service A, 1 × node-name A, 1 × AAAA (NODATA), 1 × NXDOMAIN.
func Queries(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		s := fmt.Sprintf("svc%04d.bench.test", i)
		for range 7 {
			fmt.Fprintf(&b, "%s A\n", s)
		}
		fmt.Fprintf(&b, "svc%04d-a.node.bench.test A\n", i)
		fmt.Fprintf(&b, "%s AAAA\n", s)
		fmt.Fprintf(&b, "nx%s A\n", s)
	}
	return b.String()
}

// Dnsperf runs dnsperf with args, killed after timeout, and warns when it
// lost queries.
func Dnsperf(args []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dnsperf", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("dnsperf %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "Queries lost:         0 ") {
		log.Printf("warning: dnsperf lost queries:\n%s", out)
	}
	return string(out), nil
}

// Stat reads the first number after label in dnsperf's report.
func Stat(out, label string) float64 {
	i := strings.Index(out, label)
	if i < 0 {
		return 0
	}
	f := strings.Fields(out[i+len(label):])
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
