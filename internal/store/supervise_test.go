package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/seamark/seamark/api"
)

// TestMain lets this test binary be the embedded etcd child, as
// `seamark __etcd` is for the server.
func TestMain(m *testing.M) {
	if os.Getenv("SEAMARK_TEST_ETCD_CHILD") == "1" {
		os.Exit(RunChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func openSupervised(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", CallTimeout: testCallTimeout,
		EtcdCommand: []string{"/usr/bin/env", "SEAMARK_TEST_ETCD_CHILD=1", os.Args[0]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testCallTimeout: the child is this test binary, several times slower
// under -race.
const testCallTimeout = 3 * time.Second

// waitStopped waits until every thread of process pid is stopped: kill
// returns when SIGSTOP is sent, and on a loaded machine a thread already
// running may still answer a request before it takes the signal.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		stopped := 0
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			// The state follows the command's closing parenthesis.
			if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: %d of %d threads stopped 5s after SIGSTOP", pid, stopped, len(tasks))
		}
	}
}

func testService(name string) api.Service {
	s := api.Service{Name: name, Port: 3000, Source: api.SourceAPI}
	s.SetDefaults()
	return s
}

// The embedded etcd child dies (kill -9) and comes back by itself on the
// same ports and data; while it is away a write fails with ErrUnavailable
// within the call timeout, and Down says why.
func TestSupervisedChildRestarts(t *testing.T) {
	s := openSupervised(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.PutService(ctx, testService("before"), true); err != nil {
		t.Fatal(err)
	}
	pid := s.sup.pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, pid)
	t0 := time.Now()
	_, err := s.PutService(ctx, testService("stopped"), true)
	took := time.Since(t0)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write to a stopped store: got %v, want ErrUnavailable", err)
	}
	if took > testCallTimeout+time.Second {
		t.Fatalf("write to a stopped store failed after %v, want about %v", took, testCallTimeout)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Down() == "" && s.sup.pid() == pid {
		if time.Now().After(deadline) {
			t.Fatal("the supervisor did not notice its child died")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, err := s.PutService(ctx, testService("after"), true)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted 20s after the child died: %v (down: %q)", err, s.Down())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Down() != "" || s.sup.pid() == pid {
		t.Fatalf("after the restart: down %q, pid %d (was %d)", s.Down(), s.sup.pid(), pid)
	}
	items, _, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The write that timed out may or may not have been applied (its
	// outcome is unknown, as a 503's is); the acknowledged ones are there.
	have := map[string]bool{}
	for _, it := range items {
		if sv, ok := it.Value.(*api.Service); ok {
			have[sv.Name] = true
		}
	}
	if !have["before"] || !have["after"] {
		t.Fatalf("got services %v, want before and after", have)
	}
}

// Store errors that mean "could not answer" are ErrUnavailable; a caller's
// own cancellation and a plain "not found" are not.
func TestUnavailableClassifies(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"deadline", bg, context.DeadlineExceeded, true},
		{"no space", bg, rpctypes.ErrNoSpace, true},
		{"no leader", bg, rpctypes.ErrNoLeader, true},
		{"caller canceled", canceled, context.Canceled, false},
		{"not found", bg, ErrNotFound, false},
		{"nil", bg, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(unavailable(tc.ctx, tc.err), ErrUnavailable); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Upgrade in place: the etcd child is handed over to a second store (the
// successor) which adopts it and then owns it; the first store's Close
// leaves it running,
// writes through the successor work, and when the adopted child dies the
// successor starts a child of its own on the same data.
func TestSupervisedChildHandover(t *testing.T) {
	dir := t.TempDir()
	old := openSupervised(t, dir)
	ctx := context.Background()
	if _, err := old.PutService(ctx, testService("before"), true); err != nil {
		t.Fatal(err)
	}
	h, err := old.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	succ, err := Open(octx, Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", CallTimeout: testCallTimeout,
		EtcdCommand: []string{"/usr/bin/env", "SEAMARK_TEST_ETCD_CHILD=1", os.Args[0]}, Adopt: h})
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	succ.Own()
	old.Close()
	if err := syscall.Kill(h.Pid, 0); err != nil {
		t.Fatalf("the handed-over etcd child is gone after the old store closed: %v", err)
	}
	if _, err := succ.PutService(ctx, testService("after"), true); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(h.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := succ.PutService(ctx, testService("restarted"), true); err == nil && succ.sup.pid() != h.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new child after the adopted one died: %s", succ.Down())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A successor that adopted the etcd child but fails before it owns it
// leaves the child to its predecessor, which takes it back.
func TestSupervisedChildHandoverFails(t *testing.T) {
	dir := t.TempDir()
	old := openSupervised(t, dir)
	ctx := context.Background()
	h, err := old.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	succ, err := Open(octx, Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", CallTimeout: testCallTimeout,
		EtcdCommand: []string{"/usr/bin/env", "SEAMARK_TEST_ETCD_CHILD=1", os.Args[0]}, Adopt: h})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	succ.Close()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("closing the successor took %v (it waited for a child not its own)", d)
	}
	old.TakeBack()
	if err := syscall.Kill(h.Pid, 0); err != nil {
		t.Fatalf("the etcd child died with the failed successor: %v", err)
	}
	if _, err := old.PutService(ctx, testService("still"), true); err != nil {
		t.Fatal(err)
	}
}
