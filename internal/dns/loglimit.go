package dns

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitedLog writes log lines triggered by outside packets at most perSecond
// a second; the rest are counted (dropped) and their number is said on the
// next line written.
type limitedLog struct {
	log       *slog.Logger
	perSecond int
	dropped   func()
	now       func() time.Time

	mu         sync.Mutex
	second     int64
	n          int
	suppressed int
}

func newLimitedLog(log *slog.Logger, perSecond int, dropped func(), now func() time.Time) *limitedLog {
	return &limitedLog{log: log, perSecond: perSecond, dropped: dropped, now: now}
}

func (l *limitedLog) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sec := l.now().Unix()
	if sec != l.second {
		l.second, l.n = sec, 0
	}
	if l.n >= l.perSecond {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}

func (l *limitedLog) write(level slog.Level, msg string, args ...any) {
	ok, suppressed := l.allow()
	if !ok {
		if l.dropped != nil {
			l.dropped()
		}
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed_before", suppressed)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// Warn logs at warning level, rate limited.
func (l *limitedLog) Warn(msg string, args ...any) { l.write(slog.LevelWarn, msg, args...) }

// Info logs at info level, rate limited.
func (l *limitedLog) Info(msg string, args ...any) { l.write(slog.LevelInfo, msg, args...) }
