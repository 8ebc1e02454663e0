package store

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogger hands embedded etcd a zap logger that writes its warnings and
// errors to seamark's slog logger (etcd's info logs are loud and say nothing a
// seamark operator acts on). Messages etcd prints as errors while it is being
// stopped on purpose, or that a fresh single member always prints, are
// dropped.
//
// contain turns etcd's Fatal (a failed WAL write, a failed file purge: "too
// many open files", "no space left on device") into the exit of the
// goroutine that logged it instead of os.Exit, so an etcd running inside the
// server process cannot end it that way. The store is then stuck, not gone:
// the readers keep the last snapshot. A child etcd (the server's default, see
// supervise.go) is not contained: it exits and its supervisor restarts it.
func etcdLogger(log *slog.Logger, closing *atomic.Bool, contain bool) *zap.Logger {
	core := &slogCore{log: log, closing: closing, level: zapcore.WarnLevel}
	if contain {
		return zap.New(core, zap.WithFatalHook(zapcore.WriteThenGoexit))
	}
	return zap.New(core)
}

type slogCore struct {
	log     *slog.Logger
	closing *atomic.Bool
	level   zapcore.Level
	fields  []zapcore.Field
}

// benign are messages etcd logs as errors that mean nothing is wrong.
var benign = []string{
	"setting up serving from embedded etcd failed", // printed for every listener on a clean stop
	"failed to update storage version",             // a fresh member has no term yet
	"Failed to detect schema version",              // the same, said again
	"Running http and grpc server on single port",  // the embedded client port is loopback only
	"simple token is not cryptographically signed", // etcd auth is not used
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	n := *c
	n.fields = append(append([]zapcore.Field(nil), c.fields...), fs...)
	return &n
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	if c.closing.Load() {
		return nil
	}
	for _, b := range benign {
		if strings.HasPrefix(e.Message, b) {
			return nil
		}
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(c.fields, fs...) {
		f.AddTo(enc)
	}
	// Sorted, so a line reads the same every time; zap's "error" is "err"
	// here, as in every other seamark log line.
	keys := slices.Sorted(maps.Keys(enc.Fields))
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		name := k
		if k == "error" {
			name = "err"
		}
		attrs = append(attrs, slog.Any(name, enc.Fields[k]))
	}
	level := slog.LevelWarn
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelError
	}
	c.log.LogAttrs(context.Background(), level, "etcd: "+e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

var _ zapcore.Core = (*slogCore)(nil)
