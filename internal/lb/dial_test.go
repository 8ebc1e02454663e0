package lb

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDialRefusedIsRefused: a connect to a closed port fails as refused,
// never as a timeout, however fast the reset comes (the netpoller's
// readiness may arrive before the dialer starts waiting).
func TestDialRefusedIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	for i := range 300 {
		fd, done, err := dial(a)
		if err == nil && done {
			unix.Close(fd)
			t.Fatalf("dial %d: connected to a closed port", i)
		}
		if err == nil {
			// Wait as the loop does: the socket turns writable (with an
			// error) once the connect is over.
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if _, perr := unix.Poll(pfd, 2000); perr != nil || pfd[0].Revents == 0 {
				unix.Close(fd)
				t.Fatalf("dial %d: no answer (%v)", i, perr)
			}
			err = connectError(fd)
			unix.Close(fd)
		}
		if k := connectFailure(err); k != failRefused {
			t.Fatalf("dial %d: got %v (kind %d), want refused", i, err, k)
		}
	}
}
