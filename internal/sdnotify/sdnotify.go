// Package sdnotify tells systemd (or any supervisor that speaks its notify
// protocol) how the process is doing: READY=1 once every role serves,
// RELOADING=1 while a SIGHUP is applied, STOPPING=1 on the way out, and
// WATCHDOG=1 at half the watchdog interval.
//
// What it reads: the environment variables NOTIFY_SOCKET, WATCHDOG_USEC and
// WATCHDOG_PID, once, in New. What it writes: datagrams to that socket, each
// with a deadline. Without NOTIFY_SOCKET every call does nothing, so the
// server runs the same under `Type=simple`, a container or a test.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state changes to the supervisor's socket.
type Notifier struct {
	addr     *net.UnixAddr // nil: nobody listens
	watchdog time.Duration // 0: no watchdog asked for
}

// New reads the notify protocol's environment. getenv is os.Getenv outside
// tests.
func New(getenv func(string) string) *Notifier {
	n := &Notifier{}
	if s := getenv("NOTIFY_SOCKET"); s != "" {
		name := s
		if strings.HasPrefix(s, "@") { // abstract namespace
			name = "\x00" + s[1:]
		}
		n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	}
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// Enabled says whether a supervisor listens.
func (n *Notifier) Enabled() bool { return n.addr != nil }

// Send writes one datagram of newline-separated assignments
// ("READY=1", "STATUS=..."). It gives up after one second.
func (n *Notifier) Send(states ...string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready says every role serves.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading says a reload began; systemd wants the monotonic clock with it
// (Type=notify-reload) and READY=1 again when it ends.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says the process is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// WatchdogInterval is the watchdog timeout systemd asked for (0: none).
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// RunWatchdog sends WATCHDOG=1 at half the asked interval while alive()
// holds, until ctx ends. A process whose alive() fails stops petting, and
// systemd restarts it when the interval runs out.
func (n *Notifier) RunWatchdog(ctx context.Context, alive func() bool) {
	if n.addr == nil || n.watchdog <= 0 {
		return
	}
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	for {
		if alive == nil || alive() {
			_ = n.Send("WATCHDOG=1")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
