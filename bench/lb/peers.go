package main

// The backends (iperf3 -s, nginx) and the load tools (iperf3 -c, wrk), each
// a child process of this program on loopback.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startIperf3 runs `iperf3 -s` on 127.0.0.1:port and waits for it to say it
// listens (a test connection would count as a bogus client).
func startIperf3(ctx context.Context, path, dir string, port int) (*proc, error) {
	p, err := startProc(dir, "iperf3-server", path, "-s", "--forceflush", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(p.logf)
		if bytes.Contains(b, []byte("Server listening")) {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("iperf3 -s exited at start: %s", p.tail())
		case <-ctx.Done():
			p.stop(syscall.SIGTERM)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(syscall.SIGTERM)
			return nil, fmt.Errorf("iperf3 -s not listening after 30s: %s", p.tail())
		}
	}
}

// startNginx runs nginx (one worker, no access log) answering every request
// with 200 "ok\n" on each of addrs at port.
func startNginx(ctx context.Context, path, dir string, addrs []string, port, workers int) (*proc, error) {
	d := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(d, "tmp"), 0o755); err != nil {
		return nil, err
	}
	var listen strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&listen, "        listen %s:%d backlog=4096;\n", a, port)
	}
	cfg := fmt.Sprintf(`# written by bench/lb
daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile 16384;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    keepalive_requests 1000000;
    default_type text/plain;
    server {
%[3]s        location / {
            return 200 "ok\n";
        }
    }
}
`, workers, d, listen.String())
	cf := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(cf, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(dir, "nginx", path, "-p", d, "-c", cf, "-e", filepath.Join(d, "error.log"))
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := p.waitDial(ctx, fmt.Sprintf("%s:%d", a, port), 30*time.Second); err != nil {
			p.stop(syscall.SIGQUIT)
			b, _ := os.ReadFile(filepath.Join(d, "error.log"))
			return nil, fmt.Errorf("%w; nginx error.log: %s", err, strings.TrimSpace(string(b)))
		}
	}
	return p, nil
}

// toolRun is one run of a load tool.
type toolRun struct {
	wall time.Duration
	cpu  cpuTime // the tool's own
}

// iperfResult is one iperf3 client run.
type iperfResult struct {
	toolRun
	bps      float64 // received, as iperf3's end.sum_received
	retrans  int64
	attempts int
}

// runIperf3 runs `iperf3 -c` against addr:port for d with parallel streams,
// omitting the first second (slow start), with the client and server
// pinned to the cores affinity names (iperf3 -A) unless it is empty. A
// server still busy with the previous test is retried.
func runIperf3(ctx context.Context, path string, port int, d time.Duration, parallel int, affinity string) (iperfResult, error) {
	var res iperfResult
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	for attempt := 1; attempt <= 5; attempt++ {
		res.attempts = attempt
		tctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
		args := []string{"-c", "127.0.0.1", "-p", strconv.Itoa(port),
			"-t", strconv.Itoa(secs), "-O", "1", "-P", strconv.Itoa(parallel), "-J"}
		if affinity != "" {
			args = append(args, "-A", affinity)
		}
		cmd := exec.CommandContext(tctx, path, args...)
		t0 := time.Now()
		out, err := cmd.Output()
		cancel()
		res.wall = time.Since(t0)
		res.cpu = exitedCPU(cmd.ProcessState)
		var j struct {
			Error string `json:"error"`
			End   struct {
				SumSent struct {
					Retransmits int64 `json:"retransmits"`
				} `json:"sum_sent"`
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if jerr := json.Unmarshal(out, &j); jerr != nil {
			if err == nil {
				err = jerr
			}
			return res, fmt.Errorf("iperf3 -c 127.0.0.1 -p %d -P %d: %w: %s", port, parallel, err, bytes.TrimSpace(out))
		}
		if j.Error != "" {
			if strings.Contains(j.Error, "busy") && attempt < 5 {
				if err := sleep(ctx, time.Second); err != nil {
					return res, err
				}
				continue
			}
			return res, fmt.Errorf("iperf3 -c 127.0.0.1 -p %d -P %d: %s", port, parallel, j.Error)
		}
		res.bps, res.retrans = j.End.SumReceived.BitsPerSecond, j.End.SumSent.Retransmits
		return res, nil
	}
	return res, errors.New("iperf3: server busy after 5 attempts")
}

// wrkResult is one wrk run.
type wrkResult struct {
	toolRun
	rps      float64
	requests int64
	errors   int64 // socket errors of every kind, and non-2xx/3xx answers
	errText  string
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk for d on url: with `Connection: close` (one new
// connection per request) when closeEach, kept-alive connections otherwise.
func runWrk(ctx context.Context, path, url string, d time.Duration, threads, conns int, closeEach bool) (wrkResult, error) {
	var res wrkResult
	tctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", max(int(d.Round(time.Second)/time.Second), 1)), "--timeout", "5s"}
	if closeEach {
		args = append(args, "-H", "Connection: close")
	}
	cmd := exec.CommandContext(tctx, path, append(args, url)...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	res.wall = time.Since(t0)
	res.cpu = exitedCPU(cmd.ProcessState)
	if err != nil {
		return res, fmt.Errorf("wrk %s: %w: %s", url, err, bytes.TrimSpace(out))
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("wrk %s: no Requests/sec in: %s", url, bytes.TrimSpace(out))
	}
	res.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := wrkRequests.FindSubmatch(out); m != nil {
		res.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := wrkSocket.FindSubmatch(out); m != nil {
		for _, x := range m[1:] {
			v, _ := strconv.ParseInt(string(x), 10, 64)
			res.errors += v
		}
		res.errText = string(m[0])
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseInt(string(m[1]), 10, 64)
		res.errors += v
		res.errText = strings.TrimSpace(res.errText + "; " + string(m[0]))
	}
	return res, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
}
