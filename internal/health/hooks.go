package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
)

// Hook defaults and limits.
const (
	defaultHookTimeout   = 10 * time.Second
	defaultHookRetries   = 5
	defaultHookBackoff   = time.Second
	defaultHookQueueSize = 1000
	// maxHookBackoff caps the delay between two attempts.
	maxHookBackoff = time.Minute
	// hookWorkers bounds the attempts running at once, over every hook.
	hookWorkers = 8
	// hookOutputTail is how much of a command's stdout and stderr is kept (the end).
	hookOutputTail = 512
	// hookWaitDelay bounds the wait for a command's pipes once it has exited or
	// been killed (a background child that left its own process group may
	// still hold them).
	hookWaitDelay = 2 * time.Second
	// hookDropWarnEvery spaces the warnings about a full queue.
	hookDropWarnEvery = 10 * time.Second
)

func newHookRuns(reg prometheus.Registerer) *prometheus.CounterVec {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seamark_hook_runs_total",
		Help: "on_change hook runs by result: ok and failed count every attempt (retries included); dropped counts events never delivered (queue full, or seamark stopping).",
	}, []string{"result"})
	if reg != nil {
		reg.MustRegister(runs)
	}
	return runs
}

// Hooks runs on_change hooks in the background: a command (sh -c) with the
// event as JSON on stdin, or an http(s) URL POSTed the event as JSON. A failure
// is logged and retried with exponential backoff; hooks never block the caller.
//
// Events for one hook are delivered in the order they were fired, each after
// the previous one succeeded or gave up; different hooks proceed
// independently, at most 8 attempts running at once.
type Hooks struct {
	o      HookOptions
	log    *slog.Logger
	client *http.Client
	runs   *prometheus.CounterVec
	// slots holds a token for every running attempt.
	slots chan struct{}
	// wake tells Run that an event was queued or a slot was freed.
	wake chan struct{}

	mu    sync.Mutex
	queue []hookDelivery  // pending, oldest first
	busy  map[string]bool // hooks with a delivery under way
	// drops counts events dropped since lastDropWarn.
	drops        int
	lastDropWarn time.Time
}

// HookOptions configure Hooks. Zero values mean the defaults.
type HookOptions struct {
	// Logger receives failures, retries and drops. Default: discard.
	Logger *slog.Logger
	// Timeout bounds one attempt: a command still running is killed, with its
	// children. Default 10s.
	Timeout time.Duration
	// Retries is how many times a failed delivery is tried again after the
	// first attempt. Default 5; a negative value means never retry.
	Retries int
	// Backoff is the delay before the first retry; it doubles at every retry,
	// with ±20% jitter, and is capped at 1m. Default 1s.
	Backoff time.Duration
	// QueueSize is how many events may wait for delivery. When the queue is
	// full the oldest event is dropped, with a warning (at most one every
	// 10s, with the count). Default 1000.
	QueueSize int
	// HTTPClient posts to URL hooks. Default: a client of its own.
	HTTPClient *http.Client
	// Registerer, when set, gets seamark_hook_runs_total.
	Registerer prometheus.Registerer
}

type hookDelivery struct {
	hook  string
	event api.Event
}

// NewHooks returns Hooks that deliver nothing until Run is called; events fired
// before are queued.
func NewHooks(o HookOptions) *Hooks {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultHookTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = defaultHookRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = defaultHookBackoff
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultHookQueueSize
	}
	client := o.HTTPClient
	if client == nil {
		// A transport of its own, so Run can close its idle connections
		// without touching anyone else's.
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Hooks{
		o:      o,
		log:    o.Logger.With("component", "hooks"),
		client: client,
		runs:   newHookRuns(o.Registerer),
		slots:  make(chan struct{}, hookWorkers),
		wake:   make(chan struct{}, 1),
		busy:   make(map[string]bool),
	}
}

// Fire queues e for delivery to hook and returns at once. An empty hook does
// nothing. When the queue is full the oldest pending event is dropped.
func (h *Hooks) Fire(hook string, e api.Event) {
	if h == nil || hook == "" {
		return
	}
	h.mu.Lock()
	var dropped hookDelivery
	full := len(h.queue) >= h.o.QueueSize
	warn, n := false, 0
	if full {
		dropped = h.queue[0]
		h.queue[0] = hookDelivery{}
		h.queue = h.queue[1:]
		h.drops++
		if now := time.Now(); now.Sub(h.lastDropWarn) >= hookDropWarnEvery {
			warn, n = true, h.drops
			h.drops, h.lastDropWarn = 0, now
		}
	}
	h.queue = append(h.queue, hookDelivery{hook: hook, event: e})
	h.mu.Unlock()
	if full {
		h.runs.WithLabelValues("dropped").Inc()
	}
	if warn {
		h.log.Warn("hook queue full, dropped the oldest events",
			"dropped", n, "queue_size", h.o.QueueSize,
			"last_hook", redactHook(dropped.hook), "last_service", dropped.event.Service, "last_node", dropped.event.Node)
	}
	h.poke()
}

// Run delivers queued events until ctx ends. It returns when every goroutine
// it started has stopped: running commands are killed (their whole process
// group) and requests aborted. Events still queued stay queued.
func (h *Hooks) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		h.client.CloseIdleConnections()
		h.mu.Lock()
		pending := len(h.queue)
		h.mu.Unlock()
		h.log.Debug("hooks stopped", "pending", pending)
	}()
	for {
		h.dispatch(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
	}
}

// dispatch starts a delivery for the oldest pending event of every idle hook,
// while slots are free.
func (h *Hooks) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 0; i < len(h.queue); {
		if ctx.Err() != nil {
			return
		}
		d := h.queue[i]
		if h.busy[d.hook] {
			i++
			continue
		}
		select {
		case h.slots <- struct{}{}:
		default:
			return // every slot taken; a finishing attempt wakes Run
		}
		h.queue = slices.Delete(h.queue, i, i+1)
		h.busy[d.hook] = true
		wg.Go(func() {
			h.deliver(ctx, d)
			h.mu.Lock()
			delete(h.busy, d.hook)
			h.mu.Unlock()
			h.poke()
		})
	}
}

// deliver runs d's attempts. It is called holding a slot.
func (h *Hooks) deliver(ctx context.Context, d hookDelivery) {
	log := h.log.With("hook", redactHook(d.hook), "service", d.event.Service, "node", d.event.Node,
		"old", d.event.Old, "new", d.event.New)
	body, err := json.Marshal(d.event)
	if err != nil {
		<-h.slots
		h.runs.WithLabelValues("failed").Inc()
		log.Error("hook not run: encode event", "err", err)
		return
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			select {
			case h.slots <- struct{}{}:
			case <-ctx.Done():
				h.abandon(log, attempt)
				return
			}
		}
		start := time.Now()
		attrs, err := h.attempt(ctx, d, body)
		<-h.slots
		h.poke()
		if err == nil {
			h.runs.WithLabelValues("ok").Inc()
			log.Debug("hook ran", append(attrs, "attempt", attempt, "took", time.Since(start))...)
			return
		}
		if ctx.Err() != nil {
			h.abandon(log, attempt)
			return
		}
		h.runs.WithLabelValues("failed").Inc()
		attrs = append(attrs, "attempt", attempt, "err", err)
		if attempt > h.o.Retries {
			log.Error("hook failed, giving up", attrs...)
			return
		}
		wait := h.backoff(attempt)
		log.Warn("hook failed, will retry", append(attrs, "retry_in", wait)...)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			h.abandon(log, attempt+1)
			return
		}
	}
}

func (h *Hooks) abandon(log *slog.Logger, attempt int) {
	h.runs.WithLabelValues("dropped").Inc()
	log.Warn("hook abandoned: stopping", "attempt", attempt)
}

// backoff returns the delay after the given failed attempt (1 for the first).
func (h *Hooks) backoff(attempt int) time.Duration {
	d := h.o.Backoff
	for i := 1; i < attempt && d < maxHookBackoff; i++ {
		d *= 2
	}
	d = min(d, maxHookBackoff)
	if j := int64(d / 5); j > 0 {
		d += time.Duration(rand.Int64N(2*j+1) - j)
	}
	return min(d, maxHookBackoff)
}

// attempt runs d once, within the timeout. attrs describe the run for the log.
func (h *Hooks) attempt(ctx context.Context, d hookDelivery, body []byte) (attrs []any, err error) {
	actx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	if isURLHook(d.hook) {
		attrs, err = h.post(actx, d.hook, body)
	} else {
		attrs, err = h.command(actx, d.hook, d.event, body)
	}
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timeout after %s: %w", h.o.Timeout, err)
	}
	return attrs, err
}

// command runs hook with sh -c in a process group of its own; ctx ending kills
// the group.
func (h *Hooks) command(ctx context.Context, hook string, e api.Event, body []byte) ([]any, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", hook)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(),
		"SEAMARK_EVENT_KIND="+e.Kind,
		"SEAMARK_SERVICE="+e.Service,
		"SEAMARK_NODE="+e.Node,
		"SEAMARK_ADDRESS="+e.Address,
		"SEAMARK_OLD_STATE="+string(e.Old),
		"SEAMARK_NEW_STATE="+string(e.New),
		"SEAMARK_REASON="+e.Reason,
		"SEAMARK_CHECKER="+e.Checker,
		"SEAMARK_GROUP="+e.Group,
		"SEAMARK_MEMBER="+e.Member,
		"SEAMARK_ROLE="+e.Role,
		"SEAMARK_FENCING="+strconv.FormatInt(e.Fencing, 10),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
	cmd.WaitDelay = hookWaitDelay
	err := cmd.Run()
	attrs := []any{}
	if cmd.ProcessState != nil {
		attrs = append(attrs, "exit_code", cmd.ProcessState.ExitCode())
	}
	if err != nil {
		attrs = append(attrs, "stderr", stderr.String())
		return attrs, fmt.Errorf("run command: %w", err)
	}
	if s := stdout.String(); s != "" {
		attrs = append(attrs, "stdout", s)
	}
	return attrs, nil
}

// post sends body to the URL hook; a 2xx answer is success.
func (h *Hooks) post(ctx context.Context, hook string, body []byte) ([]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("post: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "seamark-hook")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	// Read a little of the body so the connection can be reused.
	var tail tailBuffer
	_, _ = io.Copy(&tail, io.LimitReader(resp.Body, 64<<10))
	attrs := []any{"status", resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return append(attrs, "body", tail.String()), fmt.Errorf("post: status %s", resp.Status)
	}
	return attrs, nil
}

// poke wakes Run without blocking.
func (h *Hooks) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func isURLHook(hook string) bool {
	l := strings.ToLower(hook)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// redactHook hides a password in a URL hook, for logs.
func redactHook(hook string) string {
	if !isURLHook(hook) {
		return hook
	}
	u, err := url.Parse(hook)
	if err != nil {
		return hook
	}
	return u.Redacted()
}

// tailBuffer keeps the last hookOutputTail bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= hookOutputTail {
		t.b = append(t.b[:0], p[len(p)-hookOutputTail:]...)
		return n, nil
	}
	if over := len(t.b) + len(p) - hookOutputTail; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}

// String returns the kept bytes as valid UTF-8, without surrounding space.
func (t *tailBuffer) String() string {
	return strings.TrimSpace(strings.ToValidUTF8(string(t.b), "\uFFFD"))
}
