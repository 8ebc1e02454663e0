package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/seamark/seamark/api"
)

func hookEvent(i int) api.Event {
	return api.Event{
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Kind:    api.EventHealth,
		Service: "web",
		Node:    "n" + strconv.Itoa(i),
		Address: "192.0.2.7:8080",
		Old:     api.StateUnhealthy,
		New:     api.StateHealthy,
		Reason:  "2 of 2 probes passed",
		Checker: "seamark-1",
	}
}

// startHooks runs h until the test ends.
func startHooks(t *testing.T, h *Hooks) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorder is a webhook endpoint that records the nodes of the events it
// accepted, in arrival order.
type recorder struct {
	mu    sync.Mutex
	nodes []string
	calls int
	// status, when set, picks the answer to the n-th call (1-based).
	status func(n int) int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var e api.Event
	if err := json.NewDecoder(req.Body).Decode(&e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	code := http.StatusOK
	if r.status != nil {
		code = r.status(r.calls)
	}
	if code/100 == 2 {
		r.nodes = append(r.nodes, e.Node)
	}
	w.WriteHeader(code)
}

func (r *recorder) got() (nodes []string, calls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.nodes...), r.calls
}

func TestHookCommandStdinAndEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stdin, env := filepath.Join(dir, "stdin.json"), filepath.Join(dir, "env.txt")
	hook := fmt.Sprintf("cat > %s && env | grep '^SEAMARK_' > %s.tmp && mv %s.tmp %s",
		shq(stdin), shq(env), shq(env), shq(env))
	h := NewHooks(HookOptions{Logger: testLogger(t)})
	startHooks(t, h)
	e := hookEvent(1)
	h.Fire(hook, e)
	waitFor(t, 3*time.Second, "the hook to write "+env, func() bool { return fileExists(env) })

	gotStdin, err := os.ReadFile(stdin)
	if err != nil {
		t.Fatal(err)
	}
	wantStdin, _ := json.Marshal(e)
	if !bytes.Equal(gotStdin, wantStdin) {
		t.Errorf("got stdin %s, want %s", gotStdin, wantStdin)
	}

	b, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	gotEnv := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		gotEnv[k] = v
	}
	for _, tc := range []struct{ name, want string }{
		{"SEAMARK_EVENT_KIND", "health"},
		{"SEAMARK_SERVICE", "web"},
		{"SEAMARK_NODE", "n1"},
		{"SEAMARK_ADDRESS", "192.0.2.7:8080"},
		{"SEAMARK_OLD_STATE", "unhealthy"},
		{"SEAMARK_NEW_STATE", "healthy"},
		{"SEAMARK_REASON", "2 of 2 probes passed"},
		{"SEAMARK_CHECKER", "seamark-1"},
	} {
		if got, ok := gotEnv[tc.name]; !ok || got != tc.want {
			t.Errorf("%s: got %q (set: %v), want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestHookWebhookBody(t *testing.T) {
	t.Parallel()
	type request struct {
		method, contentType string
		body                []byte
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.Header.Get("Content-Type"), b}
	}))
	t.Cleanup(srv.Close)
	h := NewHooks(HookOptions{Logger: testLogger(t)})
	startHooks(t, h)
	e := hookEvent(2)
	h.Fire(srv.URL+"/hook", e)

	var r request
	select {
	case r = <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("timed out waiting for the webhook")
	}
	want, _ := json.Marshal(e)
	if r.method != http.MethodPost {
		t.Errorf("got method %s, want POST", r.method)
	}
	if r.contentType != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", r.contentType)
	}
	if !bytes.Equal(r.body, want) {
		t.Errorf("got body %s, want %s", r.body, want)
	}
}

func TestHookRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup returns the hook, whether it has succeeded, and how many
		// times it ran.
		setup func(t *testing.T) (hook string, done func() bool, runs func() int)
	}{
		{"command fails until a marker exists", func(t *testing.T) (string, func() bool, func() int) {
			dir := t.TempDir()
			marker, count, ok := filepath.Join(dir, "marker"), filepath.Join(dir, "count"), filepath.Join(dir, "ok")
			hook := fmt.Sprintf("echo run >> %[2]s; if [ -e %[1]s ]; then touch %[3]s; exit 0; fi; touch %[1]s; echo not yet >&2; exit 3",
				shq(marker), shq(count), shq(ok))
			runs := func() int {
				b, _ := os.ReadFile(count)
				return strings.Count(string(b), "\n")
			}
			return hook, func() bool { return fileExists(ok) }, runs
		}},
		{"webhook answers 500 then 200", func(t *testing.T) (string, func() bool, func() int) {
			rec := &recorder{status: func(n int) int {
				if n == 1 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			done := func() bool { nodes, _ := rec.got(); return len(nodes) > 0 }
			runs := func() int { _, calls := rec.got(); return calls }
			return srv.URL, done, runs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hook, done, runs := tc.setup(t)
			h := NewHooks(HookOptions{Logger: testLogger(t), Backoff: 10 * time.Millisecond, Retries: 3})
			startHooks(t, h)
			h.Fire(hook, hookEvent(1))
			waitFor(t, 3*time.Second, "the hook to succeed", done)
			time.Sleep(50 * time.Millisecond) // a retry after success would show by now
			if got := runs(); got != 2 {
				t.Errorf("got %d runs, want 2", got)
			}
		})
	}
}

func TestHookFailureIsLogged(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name    string
		hook    string
		timeout time.Duration
		want    []string
		notWant string
	}{
		{
			name: "exit code and stderr tail",
			hook: `printf '%0600d' 0 >&2; echo last words >&2; exit 7`,
			want: []string{"exit_code=7", `last words"`},
			// Only the tail of stderr is kept.
			notWant: strings.Repeat("0", hookOutputTail),
		},
		{name: "timeout", hook: "sleep 5", timeout: 100 * time.Millisecond, want: []string{"timeout after 100ms"}},
		{name: "webhook status", hook: srv.URL, want: []string{"status=503", "503 Service Unavailable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			h := NewHooks(HookOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Timeout: tc.timeout, Retries: -1})
			startHooks(t, h)
			start := time.Now()
			h.Fire(tc.hook, hookEvent(1))
			waitFor(t, 3*time.Second, "the failure to be logged", func() bool {
				return strings.Contains(logs.String(), "giving up")
			})
			if tc.timeout > 0 && time.Since(start) > time.Second {
				t.Errorf("got failure after %s, want it soon after the %s timeout", time.Since(start), tc.timeout)
			}
			got := logs.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got log %q, want it to contain %q", got, w)
				}
			}
			if tc.notWant != "" && strings.Contains(got, tc.notWant) {
				t.Errorf("got log of %d bytes with the whole stderr, want only its last %d bytes", len(got), hookOutputTail)
			}
		})
	}
}

func TestHookOrderPerHook(t *testing.T) {
	t.Parallel()
	// The first call fails, so every later event must wait for its retry.
	rec := &recorder{status: func(n int) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	h := NewHooks(HookOptions{Logger: testLogger(t), Backoff: 10 * time.Millisecond})
	startHooks(t, h)
	const n = 20
	var want []string
	for i := range n {
		h.Fire(srv.URL, hookEvent(i))
		want = append(want, hookEvent(i).Node)
	}
	waitFor(t, 3*time.Second, "every event", func() bool { nodes, _ := rec.got(); return len(nodes) == n })
	got, _ := rec.got()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got order %v, want %v", got, want)
	}
}

func TestHookSlowDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slowStarted := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		slowStarted <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fast := &recorder{}
	fastSrv := httptest.NewServer(fast)
	t.Cleanup(fastSrv.Close)
	h := NewHooks(HookOptions{Logger: testLogger(t)})
	startHooks(t, h)
	defer close(release)

	h.Fire(slow.URL, hookEvent(0))
	select {
	case <-slowStarted:
	case <-time.After(3 * time.Second):
		t.Fatal("timed out waiting for the slow hook to start")
	}
	h.Fire(slow.URL, hookEvent(1)) // queued behind the slow one
	for i := range 3 {
		h.Fire(fastSrv.URL, hookEvent(i))
	}
	waitFor(t, time.Second, "the fast hook while the slow one hangs", func() bool {
		nodes, _ := fast.got()
		return len(nodes) == 3
	})
}

func TestHookConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int32
	var delivered atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		running.Add(-1)
		delivered.Add(1)
	}))
	t.Cleanup(srv.Close)
	h := NewHooks(HookOptions{Logger: testLogger(t)})
	startHooks(t, h)
	const hooks = 20
	for i := range hooks {
		h.Fire(fmt.Sprintf("%s/?hook=%d", srv.URL, i), hookEvent(i))
	}
	waitFor(t, 3*time.Second, "every slot to be taken", func() bool { return running.Load() == hookWorkers })
	time.Sleep(50 * time.Millisecond) // room for a ninth to start, if it could
	if got := most.Load(); got != hookWorkers {
		t.Errorf("got %d deliveries at once, want %d", got, hookWorkers)
	}
	close(release)
	waitFor(t, 3*time.Second, "every hook to be delivered", func() bool { return delivered.Load() == hooks })
}

// Its own registry: the counter is this Hooks' alone, so it may run in
// parallel with the other tests.
func TestHookFireFullQueue(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	var logs syncBuffer
	h := NewHooks(HookOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), QueueSize: 3, Registerer: prometheus.NewRegistry()})
	var nilHooks *Hooks
	nilHooks.Fire(srv.URL, hookEvent(0)) // a nil Hooks ignores events
	h.Fire("", hookEvent(0))             // so does an empty hook

	droppedBefore := hookRuns(t, h, "dropped")
	const n = 1000
	start := time.Now()
	for i := range n {
		h.Fire(srv.URL, hookEvent(i))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("got %d Fire calls on a full queue taking %s, want them not to block", n, took)
	}
	if got := hookRuns(t, h, "dropped") - droppedBefore; got != n-3 {
		t.Errorf("got %v dropped, want %d", got, n-3)
	}
	if got := strings.Count(logs.String(), "hook queue full"); got != 1 {
		t.Errorf("got %d warnings about the full queue, want 1 (they are spaced out)", got)
	}

	startHooks(t, h)
	waitFor(t, 3*time.Second, "the queued events", func() bool { nodes, _ := rec.got(); return len(nodes) == 3 })
	time.Sleep(20 * time.Millisecond)
	got, _ := rec.got()
	want := []string{"n997", "n998", "n999"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v delivered, want %v (the newest)", got, want)
	}
}

// Not parallel: it counts goroutines.
func TestHookRunStopsAndKills(t *testing.T) {
	before := runtime.NumGoroutine()

	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server see the client go away
		<-r.Context().Done()
	}))
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The sleep is a child of the shell: killing only the shell would leave it.
	hook := fmt.Sprintf("sleep 30 & echo $! > %[1]s.tmp && mv %[1]s.tmp %[1]s; wait", shq(pidFile))

	h := NewHooks(HookOptions{Logger: testLogger(t), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.Run(ctx)
		close(done)
	}()
	h.Fire(hook, hookEvent(1))
	h.Fire(hang.URL, hookEvent(2))
	waitFor(t, 3*time.Second, "the command to start", func() bool { return fileExists(pidFile) })
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("read pid: %v", err)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("got Run still running 3s after cancel, want it to return")
	}
	hang.Close()

	waitFor(t, 2*time.Second, fmt.Sprintf("sleep (pid %d) to be killed", pid), func() bool { return processGone(pid) })

	var after int
	for range 200 {
		if after = runtime.NumGoroutine(); after <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("got %d goroutines after Run returned, want at most %d as before\n%s", after, before, buf)
	}
}

// hookRuns reads seamark_hook_runs_total{result=result}.
func hookRuns(t *testing.T, h *Hooks, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := h.runs.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses: "123 (sleep) Z ...".
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}

func TestHookBackoff(t *testing.T) {
	t.Parallel()
	h := NewHooks(HookOptions{Backoff: time.Second})
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 800 * time.Millisecond, 1200 * time.Millisecond},
		{2, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{4, 6400 * time.Millisecond, 9600 * time.Millisecond},
		{7, 48 * time.Second, time.Minute}, // 64s, capped
		{100, 48 * time.Second, time.Minute},
	} {
		t.Run(strconv.Itoa(tc.attempt), func(t *testing.T) {
			for range 100 {
				if got := h.backoff(tc.attempt); got < tc.min || got > tc.max {
					t.Fatalf("got %s after attempt %d, want %s to %s", got, tc.attempt, tc.min, tc.max)
				}
			}
		})
	}
}
