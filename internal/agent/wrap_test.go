package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

var (
	childOnce sync.Once
	childBin  string
	childErr  error
)

// buildChild builds testdata/child once per test run.
func buildChild(t *testing.T) string {
	t.Helper()
	childOnce.Do(func() {
		dir, err := os.MkdirTemp("", "seamark-agent-child-")
		if err != nil {
			childErr = err
			return
		}
		childBin = filepath.Join(dir, "child")
		out, err := exec.Command("go", "build", "-o", childBin, "./testdata/child").CombinedOutput()
		if err != nil {
			childErr = fmt.Errorf("build the test child: %v\n%s", err, out)
		}
	})
	if childErr != nil {
		t.Fatal(childErr)
	}
	return childBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if childBin != "" {
		os.RemoveAll(filepath.Dir(childBin))
	}
	os.Exit(code)
}

// syncBuffer is a child's output, read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) wait(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("child did not print %q within 5s:\n%s", want, b.String())
		}
	}
}

type wrapped struct {
	child *Child
	out   *syncBuffer
	sigs  chan os.Signal
	done  chan struct{}
	code  int
	err   error
}

// startWrapped runs Wrap with a new test child started with args.
func startWrapped(t *testing.T, cfg Config, args ...string) *wrapped {
	t.Helper()
	a, err := newAgent(cfg, testLogger(t), os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	w := &wrapped{out: &syncBuffer{}, sigs: make(chan os.Signal, 1), done: make(chan struct{})}
	w.child, err = StartChild(append([]string{buildChild(t)}, args...), w.out, w.out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.child.Signal(syscall.SIGKILL)
		<-w.child.Done()
	})
	go func() {
		defer close(w.done)
		w.code, w.err = Wrap(context.Background(), a, w.child, w.sigs)
	}()
	return w
}

func (w *wrapped) wait(t *testing.T) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("Wrap did not return within 15s; child output:\n%s", w.out.String())
	}
	select {
	case <-w.child.Done():
	default:
		t.Fatal("Wrap returned while the child still runs")
	}
}

// The child's port opens late: the node registers after it; signals reach
// the child once each; SIGTERM deregisters first, then reaches the child, and
// the agent's code is the child's.
func TestWrapForwardsSignalsAndDeregistersFirst(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	cfg := testConfig(srv.url)
	cfg.Port = freePort(t)
	checkLeaks := leakCheck(t, srv.port(), cfg.Port)
	w := startWrapped(t, cfg, "-listen", fmt.Sprintf("127.0.0.1:%d", cfg.Port), "-delay", "300ms", "-term-code", "42",
		"-nodes-url", srv.url+"/v1/services/app/nodes")
	w.out.wait(t, "child started")
	if n, _, _ := srv.client.Nodes(context.Background(), "app", nil); len(n) != 0 {
		t.Fatalf("registered before the child listened: %+v", n)
	}
	w.out.wait(t, "child listening")
	waitNode(t, srv.client, "app-1", 5*time.Second, present)

	for _, s := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP} {
		w.sigs <- s
		w.out.wait(t, "child got "+s.String())
	}
	if n, _, _ := srv.client.Nodes(context.Background(), "app", nil); len(n) != 1 {
		t.Fatalf("after SIGUSR1 and SIGHUP: got nodes %+v, want still registered", n)
	}
	w.sigs <- syscall.SIGTERM
	w.wait(t)
	out := w.out.String()
	if w.code != 42 || w.err != nil {
		t.Fatalf("Wrap returned %d, %v; want the child's 42:\n%s", w.code, w.err, out)
	}
	if !strings.Contains(out, "child saw 0 nodes") {
		t.Fatalf("the child did not see its node gone when SIGTERM reached it:\n%s", out)
	}
	if strings.Count(out, "child got user defined signal 1") != 1 || strings.Count(out, "child got terminated") != 1 {
		t.Fatalf("want each signal once:\n%s", out)
	}
	srv.tr.CloseIdleConnections()
	checkLeaks()
}

// A child that exits by itself is deregistered, and its code is the agent's.
func TestWrapChildExits(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	cfg := testConfig(srv.url)
	cfg.Port = freePort(t)
	w := startWrapped(t, cfg, "-listen", fmt.Sprintf("127.0.0.1:%d", cfg.Port), "-exit-after", "800ms", "-code", "7")
	waitNode(t, srv.client, "app-1", 5*time.Second, present)
	w.wait(t)
	if w.code != 7 || w.err != nil {
		t.Fatalf("Wrap returned %d, %v; want 7:\n%s", w.code, w.err, w.out.String())
	}
	if n, _, _ := srv.client.Nodes(context.Background(), "app", nil); len(n) != 0 {
		t.Fatalf("after the child exited: got nodes %+v, want none", n)
	}
}

// A child killed by a signal gives 128 plus the signal, as a shell reports it.
func TestWrapChildKilled(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	cfg := testConfig(srv.url)
	cfg.Port = freePort(t)
	w := startWrapped(t, cfg, "-listen", fmt.Sprintf("127.0.0.1:%d", cfg.Port))
	waitNode(t, srv.client, "app-1", 5*time.Second, present)
	syscall.Kill(w.child.Pid(), syscall.SIGKILL)
	w.wait(t)
	if w.code != 128+9 {
		t.Fatalf("Wrap returned %d, %v; want 137", w.code, w.err)
	}
	waitNode(t, srv.client, "app-1", 2*time.Second, absent)
}

// When the port never opens within WaitTimeout, the child is stopped and the
// agent fails with the reason.
func TestWrapPortNeverOpens(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	cfg := testConfig(srv.url)
	cfg.Port = freePort(t)
	cfg.WaitTimeout = api.Duration(300 * time.Millisecond)
	w := startWrapped(t, cfg, "-term-code", "3")
	w.wait(t)
	if w.code != 1 || !errors.Is(w.err, ErrPortTimeout) {
		t.Fatalf("Wrap returned %d, %v; want 1 and ErrPortTimeout", w.code, w.err)
	}
	if !strings.Contains(w.out.String(), "child got terminated") {
		t.Fatalf("the child was not asked to stop:\n%s", w.out.String())
	}
}
