package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSdNotify: a server run by systemd with Type=notify says READY=1 once it
// serves, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM,
// and pets the watchdog it was asked for.
func TestSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	cfg := filepath.Join(t.TempDir(), "seamark.yaml")
	writeFile(t, cfg, "zones: [notify.test]\n")
	s := startServer(t, "server", "--config", cfg, "--data-dir", t.TempDir())

	var got []string
	next := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		buf := make([]byte, 4096)
		for time.Now().Before(deadline) {
			c.SetReadDeadline(deadline)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v; got so far %q", want, err, got)
			}
			msg := string(buf[:n])
			got = append(got, msg)
			if strings.HasPrefix(msg, want) {
				return
			}
		}
		t.Fatalf("no %s within 20s; got %q", want, got)
	}
	next("READY=1\n")
	next("WATCHDOG=1\n")
	next("WATCHDOG=1\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1\nMONOTONIC_USEC=")
	next("READY=1\nSTATUS=serving: reloaded")
	writeFile(t, cfg, "zones: [notify.test\n") // broken: rejected, old state kept
	s.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1\n")
	next("READY=1\nSTATUS=reload failed")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1\n")
}
