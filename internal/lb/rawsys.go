package lb

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw system calls for the relay loops' sockets. Every one is
// non-blocking and short, so a loop makes it without telling Go's
// scheduler (no entersyscall and exitsyscall). Told, the scheduler's
// monitor takes the loop's P away whenever one call spans two of its ticks
// (a connect or a close on loopback does the peer's work too, and can),
// hands the P to another thread and takes it back after: wake-ups and
// context switches that cost more than the call, and that keep the monitor
// itself waking every 20 µs.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func bufPtr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// readNB and writeNB are one non-blocking read or write, retried on EINTR;
// a write that took nothing returns 0.
func readNB(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), bufPtr(b), uintptr(len(b)))
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

func writeNB(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), bufPtr(b), uintptr(len(b)))
		if e != unix.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(n), nil
		}
	}
}

// sendMore is writeNB with MSG_MORE: the data waits in the socket for
// what comes next (a FIN) to go in one packet.
func sendMore(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), bufPtr(b), uintptr(len(b)), unix.MSG_MORE|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		if e != unix.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(n), nil
		}
	}
}

// spliceNB is one non-blocking splice(2), retried on EINTR.
func spliceNB(in, out, max int) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(max), unix.SPLICE_F_NONBLOCK)
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

// closeFD closes fd.
func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// shutdownWrite sends fd's FIN.
func shutdownWrite(fd int) {
	unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
}

// epollCtl is epoll_ctl(2).
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// epollWaitNB is epoll_wait without waiting, retried on EINTR.
func epollWaitNB(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

// socketNB opens a non-blocking TCP socket of family.
func socketNB(family int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	return int(fd), errnoErr(e)
}

// setNoDelay sets TCP_NODELAY on fd.
func setNoDelay(fd int) {
	one := int32(1)
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0)
}

// rawSockaddr is a socket address as the kernel takes it.
type rawSockaddr struct {
	any unix.RawSockaddrAny
	len uint32
}

func sockaddrOf(addr netip.AddrPort) (rawSockaddr, int) {
	var rs rawSockaddr
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rs.any))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		sa.Addr = a.Unmap().As4()
		rs.len = unix.SizeofSockaddrInet4
		return rs, unix.AF_INET
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rs.any))
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
	sa.Addr = addr.Addr().As16()
	rs.len = unix.SizeofSockaddrInet6
	return rs, unix.AF_INET6
}

// connectNB starts a connect of non-blocking fd to rs, retried on EINTR.
func connectNB(fd int, rs *rawSockaddr) error {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&rs.any)), uintptr(rs.len))
		if e != unix.EINTR {
			return errnoErr(e)
		}
	}
}

// accept4NB accepts a client of listening socket fd, non-blocking and
// close-on-exec, with its address.
func accept4NB(fd int) (int, netip.AddrPort, error) {
	var rs unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rs)), uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(nfd), rawAddrPort(&rs), nil
}

func rawAddrPort(rs *unix.RawSockaddrAny) netip.AddrPort {
	switch rs.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rs))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rs))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}
