package lb

import (
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAcceptedSocketsInheritNoDelay: the listening socket's TCP_NODELAY is
// what spares a setsockopt per accepted connection; this kernel must pass
// it on.
func TestAcceptedSocketsInheritNoDelay(t *testing.T) {
	fd, err := bindListener(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", sockaddrPort(sa).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var nfd int
	for {
		nfd, _, err = syscall.Accept4(fd, syscall.SOCK_CLOEXEC)
		if err != syscall.EAGAIN {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	v, err := unix.GetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || v == 0 {
		t.Fatalf("accepted socket: TCP_NODELAY %d, %v; want it inherited from the listening socket", v, err)
	}
}
