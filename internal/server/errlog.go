package server

import (
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// limitedWriter turns the http.Server's error log (one line per bad
// connection: TLS handshake failures, malformed requests) into slog warnings,
// at most burst lines per interval; the lines dropped are counted in the next
// line that gets through. Outside packets must not flood the log.
type limitedWriter struct {
	log      *slog.Logger
	burst    int
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int
}

func newHTTPErrorLog(l *slog.Logger) *log.Logger {
	return log.New(&limitedWriter{log: l, burst: 10, interval: time.Second, now: time.Now}, "", 0)
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	now := w.now()
	if now.Sub(w.start) >= w.interval {
		w.start, w.n = now, 0
	}
	if w.n >= w.burst {
		w.dropped++
		w.mu.Unlock()
		return len(p), nil
	}
	w.n++
	dropped := w.dropped
	w.dropped = 0
	w.mu.Unlock()
	msg := strings.TrimSpace(string(p))
	if dropped > 0 {
		w.log.Warn(msg, "suppressed_before", dropped)
	} else {
		w.log.Warn(msg)
	}
	return len(p), nil
}
