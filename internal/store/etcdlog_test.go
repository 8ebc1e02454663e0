package store

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

// etcd's lines come out with seamark's field names (err, not error), in a
// stable order, and its benign or shutdown noise not at all.
func TestEtcdLogFields(t *testing.T) {
	var buf bytes.Buffer
	var closing atomic.Bool
	log := slog.New(slog.NewTextHandler(&buf, nil)).With("component", "store")
	z := etcdLogger(log, &closing, true)
	z.Info("loud and useless")
	z.Warn("slow fdatasync", zap.String("took", "1.2s"), zap.Error(errors.New("disk busy")), zap.String("expected", "1s"))
	z.Error("failed to update storage version")
	closing.Store(true)
	z.Error("stopped on purpose")
	got := buf.String()
	want := `level=WARN msg="etcd: slow fdatasync" component=store err="disk busy" expected=1s took=1.2s` + "\n"
	if !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("got\n%s\nwant one line ending\n%s", got, want)
	}
}

// An etcd running in this process (tests) whose Fatal would os.Exit ends
// only the goroutine that logged it: the process, and its readers, stay.
func TestContainedFatalEndsTheGoroutineOnly(t *testing.T) {
	var closing atomic.Bool
	z := etcdLogger(slog.New(slog.DiscardHandler), &closing, true)
	done := make(chan struct{})
	after := false
	go func() {
		defer close(done)
		z.Fatal("failed to purge file", zap.Error(errors.New("too many open files")))
		after = true
	}()
	<-done
	if after {
		t.Fatal("the goroutine went on after Fatal")
	}
}
