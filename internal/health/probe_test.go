package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// probeTimeout is the check timeout of the tests that run into it.
const probeTimeout = 200 * time.Millisecond

// runProbe probes addr with check the way the Checker does: the check's
// timeout as ctx's deadline.
func runProbe(p *NetProber, addr netip.AddrPort, check api.Check) (Result, time.Duration) {
	if check.Timeout == 0 {
		check.Timeout = api.Duration(time.Second)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), check.Timeout.D())
	defer cancel()
	res := p.Probe(ctx, Target{Service: "svc", Node: "n1", Addr: addr, Check: check})
	return res, time.Since(start)
}

func addrOf(t testing.TB, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func urlAddr(t *testing.T, s *httptest.Server) netip.AddrPort {
	t.Helper()
	return addrOf(t, s.Listener.Addr())
}

// closedPort returns an address whose listener was just closed: connecting
// to it is refused.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := addrOf(t, l.Addr())
	l.Close()
	return a
}

// silentListener accepts connections and never writes a byte; it reads and
// discards until the client goes away, then closes its end.
func silentListener(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				io.Copy(io.Discard, c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return addrOf(t, l.Addr())
}

// fullBacklog returns a listener's address whose accept queue is full: it
// listens with a backlog of 1, never accepts, and is filled with
// connections until one hangs. Linux then drops further SYNs, as a
// blackholed host does. ok is false if the queue never filled.
func fullBacklog(t *testing.T) (addr netip.AddrPort, ok bool) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), 1) }); err != nil || lerr != nil {
		t.Fatalf("listen with backlog 1: %v %v", err, lerr)
	}
	addr = addrOf(t, l.Addr())
	for range 16 {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			return addr, true
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr, false
}

// blockingDial blocks until ctx is done, like a dial to a blackholed host.
func blockingDial(ctx context.Context, _, _ string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// acceptAndClose accepts connections and closes them at once.
func acceptAndClose(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return addrOf(t, l.Addr())
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// testMux serves the paths the http and https tests probe.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "root") })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "all ok here") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", bodyWindow)+"needle")
	})
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host="+r.Host) })
	mux.HandleFunc("/method", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "seamark-health/1" || !r.Close {
			http.Error(w, fmt.Sprintf("user-agent %q, close %v", r.UserAgent(), r.Close), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/sni", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			io.WriteString(w, "sni=["+r.TLS.ServerName+"]")
		}
	})
	// /stall sends part of its body, then nothing until the client leaves.
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok so far")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	return mux
}

func newHTTPServer(t *testing.T) *httptest.Server {
	s := httptest.NewUnstartedServer(testMux())
	s.Config.ErrorLog = quietLog()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// newTLSServer starts an https server that records the SNI of every
// handshake.
func newTLSServer(t *testing.T) (*httptest.Server, *atomic.Value) {
	var sni atomic.Value
	s := httptest.NewUnstartedServer(testMux())
	s.Config.ErrorLog = quietLog()
	s.TLS = &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(hi.ServerName)
		return nil, nil
	}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, &sni
}

func checkResult(t *testing.T, res Result, wantOK bool, wantReason string) {
	t.Helper()
	t.Logf("reason %q, latency %v", res.Reason, res.Latency)
	if res.OK != wantOK {
		t.Errorf("OK: got %v, want %v (reason %q)", res.OK, wantOK, res.Reason)
	}
	if prefix, ok := strings.CutSuffix(wantReason, "..."); ok {
		if !strings.HasPrefix(res.Reason, prefix) {
			t.Errorf("reason: got %q, want it to start with %q", res.Reason, prefix)
		}
	} else if res.Reason != wantReason {
		t.Errorf("reason: got %q, want %q", res.Reason, wantReason)
	}
	if res.Latency <= 0 {
		t.Errorf("latency: got %v, want > 0", res.Latency)
	}
}

func TestProbeTCP(t *testing.T) {
	up := acceptAndClose(t)
	refused := closedPort(t)
	refuse := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	for _, tc := range []struct {
		name       string
		prober     *NetProber
		addr       netip.AddrPort
		check      api.Check
		wantOK     bool
		wantReason string
	}{
		{"ok", &NetProber{}, up, api.Check{Type: api.CheckTCP}, true, "ok"},
		{"type defaults to tcp", &NetProber{}, up, api.Check{}, true, "ok"},
		{"refused", &NetProber{}, refused, api.Check{Type: api.CheckTCP}, false, "tcp connect: connection refused"},
		{"injected dial refuses", &NetProber{Dial: refuse}, up, api.Check{Type: api.CheckTCP}, false, "tcp connect: connection refused"},
		{"none is not checked", &NetProber{}, refused, api.Check{Type: api.CheckNone}, true, "not checked"},
		{"unknown type", &NetProber{}, up, api.Check{Type: "udp"}, false, `unknown check type "udp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runProbe(tc.prober, tc.addr, tc.check)
			checkResult(t, res, tc.wantOK, tc.wantReason)
		})
	}
}

// A tcp probe closes with a reset (SO_LINGER 0), leaving no TIME_WAIT.
func TestProbeTCPClosesWithReset(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, _ := runProbe(&NetProber{}, addrOf(t, l.Addr()), api.Check{Type: api.CheckTCP})
	checkResult(t, res, true, "ok")
	// With TCP_QUICKACK off the probe resets the connection before its last
	// handshake ACK, so it never reaches the accept queue. On a loaded
	// machine the delayed ACK may go out first: then the target accepts a
	// connection that is already reset. Either way no probe is left open.
	l.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	c, err := l.Accept()
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("accept: %v", err)
		}
		return // never accepted
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("server read: got %v, want %v", err, syscall.ECONNRESET)
	}
}

// Whatever the target does, a probe returns by its timeout, and says so.
func TestProbeTimeout(t *testing.T) {
	silent := silentListener(t)
	web := newHTTPServer(t)
	webs, _ := newTLSServer(t)
	type tcase struct {
		name   string
		prober *NetProber
		addr   netip.AddrPort
		check  api.Check
	}
	blocked := &NetProber{Dial: blockingDial}
	cases := []tcase{
		{"tcp, dial blocks", blocked, silent, api.Check{Type: api.CheckTCP}},
		{"http, dial blocks", blocked, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Path: "/ok"}},
		{"https, dial blocks", blocked, urlAddr(t, webs), api.Check{Type: api.CheckHTTPS, Path: "/ok"}},
		{"tls, dial blocks", blocked, urlAddr(t, webs), api.Check{Type: api.CheckTLS}},
		{"http, server never answers", &NetProber{}, silent, api.Check{Type: api.CheckHTTP}},
		{"https, server never answers", &NetProber{}, silent, api.Check{Type: api.CheckHTTPS}},
		{"tls, server never answers", &NetProber{}, silent, api.Check{Type: api.CheckTLS}},
		{"http, body stalls before the text", &NetProber{}, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Path: "/stall", ExpectBody: "done"}},
	}
	if hole, ok := fullBacklog(t); ok {
		cases = append(cases,
			tcase{"tcp, SYNs dropped (full backlog)", &NetProber{}, hole, api.Check{Type: api.CheckTCP}},
			tcase{"http, SYNs dropped (full backlog)", &NetProber{}, hole, api.Check{Type: api.CheckHTTP}},
			tcase{"tls, SYNs dropped (full backlog)", &NetProber{}, hole, api.Check{Type: api.CheckTLS}},
		)
	} else {
		t.Log("the accept queue never filled; SYN-drop cases skipped")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Timeout = api.Duration(probeTimeout)
			res, took := runProbe(tc.prober, tc.addr, tc.check)
			checkResult(t, res, false, "timeout after 200ms")
			if took < probeTimeout || took > time.Second {
				t.Errorf("returned after %v, want %v to 1s", took, probeTimeout)
			}
			if res.Latency < probeTimeout-10*time.Millisecond || res.Latency > took {
				t.Errorf("latency: got %v, want about %v", res.Latency, probeTimeout)
			}
		})
	}
}

func TestProbeHTTP(t *testing.T) {
	web := newHTTPServer(t)
	addr := urlAddr(t, web)
	var dials atomic.Int32
	counting := &NetProber{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	for _, tc := range []struct {
		name       string
		prober     *NetProber
		addr       netip.AddrPort
		check      api.Check
		wantOK     bool
		wantReason string
	}{
		{"ok", &NetProber{}, addr, api.Check{Path: "/ok"}, true, "ok"},
		{"default path is /", &NetProber{}, addr, api.Check{ExpectBody: "root"}, true, "ok"},
		{"wrong status", &NetProber{}, addr, api.Check{Path: "/fail"}, false, "http: status 503, want 200-399"},
		{"expected status", &NetProber{}, addr, api.Check{Path: "/fail", ExpectStatus: "503"}, true, "ok"},
		{"missing page", &NetProber{}, addr, api.Check{Path: "/nope", ExpectStatus: "200"}, false, "http: status 404, want 200"},
		{"redirect is not followed", &NetProber{}, addr, api.Check{Path: "/redirect"}, true, "ok"},
		{"redirect is its own status", &NetProber{}, addr, api.Check{Path: "/redirect", ExpectStatus: "200"}, false, "http: status 302, want 200"},
		{"body matches", &NetProber{}, addr, api.Check{Path: "/ok", ExpectBody: "all ok"}, true, "ok"},
		{"body lacks the text", &NetProber{}, addr, api.Check{Path: "/ok", ExpectBody: "nope"}, false, `http: body lacks "nope" in its first 5 KiB`},
		{"text past 5 KiB", &NetProber{}, addr, api.Check{Path: "/big", ExpectBody: "needle"}, false, `http: body lacks "needle" in its first 5 KiB`},
		{"text before a stall", &NetProber{}, addr, api.Check{Path: "/stall", ExpectBody: "ok so"}, true, "ok"},
		{"host header honoured", &NetProber{}, addr, api.Check{Path: "/host", Host: "svc.example:8080", ExpectBody: "host=svc.example:8080"}, true, "ok"},
		{"host header defaults to the address", &NetProber{}, addr, api.Check{Path: "/host", ExpectBody: "host=" + addr.String()}, true, "ok"},
		{"method honoured", &NetProber{}, addr, api.Check{Path: "/method", Method: http.MethodPost}, true, "ok"},
		{"method defaults to GET", &NetProber{}, addr, api.Check{Path: "/method"}, false, "http: status 405, want 200-399"},
		{"HEAD", &NetProber{}, addr, api.Check{Path: "/ok", Method: http.MethodHead}, true, "ok"},
		{"user agent and connection close", &NetProber{}, addr, api.Check{Path: "/headers", ExpectStatus: "200"}, true, "ok"},
		{"injected dial is used", counting, addr, api.Check{Path: "/ok"}, true, "ok"},
		{"refused", &NetProber{}, closedPort(t), api.Check{}, false, "tcp connect: connection refused"},
		{"closed without an answer", &NetProber{}, acceptAndClose(t), api.Check{}, false, "http: ..."},
		{"bad expect_status", &NetProber{}, addr, api.Check{ExpectStatus: "2xx"}, false, "http: expect_status: ..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Type = api.CheckHTTP
			res, _ := runProbe(tc.prober, tc.addr, tc.check)
			checkResult(t, res, tc.wantOK, tc.wantReason)
		})
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("injected dials: got %d, want 1", got)
	}
}

func TestProbeHTTPS(t *testing.T) {
	webs, _ := newTLSServer(t)
	addr := urlAddr(t, webs)
	web := newHTTPServer(t)
	for _, tc := range []struct {
		name       string
		addr       netip.AddrPort
		check      api.Check
		wantOK     bool
		wantReason string
	}{
		{"ok", addr, api.Check{Path: "/ok", ExpectBody: "all ok"}, true, "ok"},
		{"wrong status", addr, api.Check{Path: "/fail"}, false, "http: status 503, want 200-399"},
		{"no name sent for an address", addr, api.Check{Path: "/sni", ExpectBody: "sni=[]"}, true, "ok"},
		{"server name from host", addr, api.Check{Path: "/sni", Host: "svc.example:8443", ExpectBody: "sni=[svc.example]"}, true, "ok"},
		{"sni over host", addr, api.Check{Path: "/sni", Host: "svc.example", SNI: "tls.example", ExpectBody: "sni=[tls.example]"}, true, "ok"},
		{"host header honoured", addr, api.Check{Path: "/host", Host: "svc.example", ExpectBody: "host=svc.example"}, true, "ok"},
		{"plain http server", urlAddr(t, web), api.Check{Path: "/ok"}, false, "tls handshake: ..."},
		{"refused", closedPort(t), api.Check{}, false, "tcp connect: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Type = api.CheckHTTPS
			res, _ := runProbe(&NetProber{}, tc.addr, tc.check)
			checkResult(t, res, tc.wantOK, tc.wantReason)
		})
	}
}

func TestProbeTLS(t *testing.T) {
	webs, sni := newTLSServer(t)
	addr := urlAddr(t, webs)
	for _, tc := range []struct {
		name       string
		addr       netip.AddrPort
		check      api.Check
		wantOK     bool
		wantReason string
		wantSNI    string
	}{
		{"ok", addr, api.Check{}, true, "ok", ""},
		{"sni sent", addr, api.Check{SNI: "tls.example"}, true, "ok", "tls.example"},
		{"plain listener that closes", acceptAndClose(t), api.Check{}, false, "tls handshake: ...", ""},
		{"plain http server", urlAddr(t, newHTTPServer(t)), api.Check{}, false, "tls handshake: ...", ""},
		{"refused", closedPort(t), api.Check{}, false, "tcp connect: connection refused", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sni.Store("unset")
			tc.check.Type = api.CheckTLS
			res, _ := runProbe(&NetProber{}, tc.addr, tc.check)
			checkResult(t, res, tc.wantOK, tc.wantReason)
			if tc.wantOK {
				if got := sni.Load(); got != tc.wantSNI {
					t.Errorf("server name: got %q, want %q", got, tc.wantSNI)
				}
			}
		})
	}
}

// openFDs counts this process's open file descriptors (-1 where /proc is
// missing).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// Many probes of every kind and outcome leave no goroutine or descriptor
// behind.
func TestProbeNoLeaks(t *testing.T) {
	up := acceptAndClose(t)
	refused := closedPort(t)
	silent := silentListener(t)
	web := newHTTPServer(t)
	webs, _ := newTLSServer(t)
	const short = 100 * time.Millisecond
	probes := []struct {
		prober *NetProber
		addr   netip.AddrPort
		check  api.Check
		wantOK bool
	}{
		{&NetProber{}, up, api.Check{Type: api.CheckTCP}, true},
		{&NetProber{}, refused, api.Check{Type: api.CheckTCP}, false},
		{&NetProber{Dial: blockingDial}, up, api.Check{Type: api.CheckTCP, Timeout: api.Duration(short)}, false},
		{&NetProber{}, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Path: "/ok", ExpectBody: "ok"}, true},
		{&NetProber{}, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Path: "/fail"}, false},
		{&NetProber{}, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Path: "/stall", ExpectBody: "done", Timeout: api.Duration(short)}, false},
		{&NetProber{}, silent, api.Check{Type: api.CheckHTTP, Timeout: api.Duration(short)}, false},
		{&NetProber{Dial: blockingDial}, urlAddr(t, web), api.Check{Type: api.CheckHTTP, Timeout: api.Duration(short)}, false},
		{&NetProber{}, urlAddr(t, webs), api.Check{Type: api.CheckHTTPS, Path: "/ok"}, true},
		{&NetProber{}, urlAddr(t, webs), api.Check{Type: api.CheckTLS}, true},
		{&NetProber{}, up, api.Check{Type: api.CheckTLS}, false},
		{&NetProber{}, silent, api.Check{Type: api.CheckTLS, Timeout: api.Duration(short)}, false},
	}
	run := func(rounds int) {
		var wg sync.WaitGroup
		for range rounds {
			for _, pr := range probes {
				wg.Go(func() {
					if res, _ := runProbe(pr.prober, pr.addr, pr.check); res.OK != pr.wantOK {
						t.Errorf("%s %s %s: got OK %v (%s), want %v", pr.check.Type, pr.addr, pr.check.Path, res.OK, res.Reason, pr.wantOK)
					}
				})
			}
		}
		wg.Wait()
	}
	// No garbage collection while counting: a leaked socket's finalizer
	// would close it and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()

	run(1) // warm up: package-level state (TLS, http) is set up once
	settle := func(cond func() bool) {
		for deadline := time.Now().Add(3 * time.Second); !cond() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Let the warm-up's server-side goroutines wind down before counting.
	prev := -1
	settle(func() bool { g := runtime.NumGoroutine(); steady := g == prev; prev = g; return steady })
	g0, fd0 := runtime.NumGoroutine(), openFDs()

	run(10)

	const slack = 3
	settle(func() bool { return runtime.NumGoroutine() <= g0+slack && openFDs() <= fd0+slack })
	if g := runtime.NumGoroutine(); g > g0+slack {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: got %d, want at most %d\n%s", g, g0+slack, buf[:runtime.Stack(buf, true)])
	}
	if fd := openFDs(); fd > fd0+slack {
		t.Errorf("open fds: got %d, want at most %d", fd, fd0+slack)
	}
}
