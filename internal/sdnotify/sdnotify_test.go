package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a notify socket the way systemd does and returns a reader of
// its datagrams.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notify message: %v", err)
		}
		return string(buf[:n])
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestMessages(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@seamark-sdnotify-test-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.socket
			if strings.HasPrefix(name, "@") {
				name = "\x00" + name[1:]
			}
			read := listen(t, name)
			n := New(env(map[string]string{"NOTIFY_SOCKET": tc.socket}))
			if !n.Enabled() {
				t.Fatal("not enabled with NOTIFY_SOCKET set")
			}
			if err := n.Ready("serving"); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), "READY=1\nSTATUS=serving\n"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := read()
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
				t.Errorf("got %q, want RELOADING=1 and MONOTONIC_USEC", got)
			}
			if us, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")), 10, 64); us <= 0 {
				t.Errorf("MONOTONIC_USEC in %q is not a positive number", got)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), "STOPPING=1\n"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestDisabledWithoutSocket(t *testing.T) {
	n := New(env(nil))
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready without a socket: %v, want nil", err)
	}
	n.RunWatchdog(context.Background(), nil) // returns at once
}

func TestWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	read := listen(t, sock)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"asked", map[string]string{"WATCHDOG_USEC": "40000"}, 40 * time.Millisecond},
		{"for us", map[string]string{"WATCHDOG_USEC": "40000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}, 40 * time.Millisecond},
		{"for another process", map[string]string{"WATCHDOG_USEC": "40000", "WATCHDOG_PID": "1"}, 0},
		{"garbage", map[string]string{"WATCHDOG_USEC": "soon"}, 0},
	} {
		tc.env["NOTIFY_SOCKET"] = sock
		if got := New(env(tc.env)).WatchdogInterval(); got != tc.want {
			t.Errorf("%s: interval %v, want %v", tc.name, got, tc.want)
		}
	}
	n := New(env(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "40000"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.RunWatchdog(ctx, func() bool { return true }) }()
	for range 3 {
		if got := read(); got != "WATCHDOG=1\n" {
			t.Errorf("got %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	<-done
}

func FuzzNew(f *testing.F) {
	f.Add("@x", "1000000", "")
	f.Add("/run/systemd/notify", "-5", "12")
	f.Fuzz(func(t *testing.T, sock, usec, pid string) {
		n := New(env(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": usec, "WATCHDOG_PID": pid}))
		if n.WatchdogInterval() < 0 {
			t.Fatalf("negative watchdog interval from %q", usec)
		}
	})
}
