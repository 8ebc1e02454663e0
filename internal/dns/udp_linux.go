//go:build linux && (amd64 || arm64)

package dns

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg takes and one sendmmsg sends.
// Under load batches fill (16 was full on average in dnsperf runs), so a
// larger one halves the system calls; a quiet socket returns what it has.
const batchSize = 32

// yieldEvery: a worker that never finds its socket empty lets the
// scheduler run other goroutines after this many batches (see the loop).
const yieldEvery = 16

// batchBuf is the largest query a batch slot takes; a larger datagram is
// cut (MSG_TRUNC) and dropped. UDP queries are small; an UPDATE that does
// not fit goes over TCP.
const batchBuf = 16 << 10

// serveUDPBatch is the UDP loop with recvmmsg/sendmmsg: up to batchSize
// queries read in one system call, their answers sent in one, replying to
// each query's own source address as received (no address parsing on the
// way back). It reports false when the socket cannot be used this way.
//
// Both calls are non-blocking (MSG_DONTWAIT; an empty socket parks the
// goroutine on the network poller) and made as raw system calls: a few
// microseconds each, they do not tell the scheduler they block. The
// scheduler's bookkeeping for a blocking call (entersyscall: waking the
// system monitor, which then hands this P to another thread whenever a
// call outlasts its 20 µs tick) cost more CPU per answer than the
// answering (runtime.sysmon was 9 % of the server's samples under
// dnsperf). The price: a worker that always finds queries waiting keeps its
// P, so it yields every yieldEvery batches for other goroutines (health
// checks, leases) to run without waiting for preemption.
func (s *Server) serveUDPBatch(w *worker) bool {
	rc, err := w.conn.SyscallConn()
	if err != nil {
		return false
	}
	var (
		rh    [batchSize]unix.Mmsghdr
		riov  [batchSize]unix.Iovec
		names [batchSize]unix.RawSockaddrInet6
		bufs  = make([]byte, batchSize*batchBuf)
		sh    [batchSize]unix.Mmsghdr
		siov  [batchSize]unix.Iovec
		outs  = make([]byte, batchSize*dnsMaxOut)
	)
	for i := range batchSize {
		riov[i].Base = &bufs[i*batchBuf]
		riov[i].SetLen(batchBuf)
		rh[i].Hdr.Iov = &riov[i]
		rh[i].Hdr.SetIovlen(1)
		rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		sh[i].Hdr.Iov = &siov[i]
		sh[i].Hdr.SetIovlen(1)
	}
	for batches := 1; ; batches++ {
		if batches%yieldEvery == 0 {
			runtime.Gosched()
		}
		for i := range batchSize {
			rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
			rh[i].Hdr.Flags = 0
			rh[i].Len = 0
		}
		var n int
		var errno unix.Errno
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rh[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
			n, errno = int(r), e
			return e != unix.EAGAIN && e != unix.EINTR
		})
		if err != nil {
			return true // closed
		}
		if errno != 0 {
			if errno == unix.ENOSYS {
				return false
			}
			continue
		}
		ns, t0 := 0, s.o.Now()
		w.now = t0.UnixNano()
		for i := range n {
			if rh[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				continue
			}
			from, ok := sockaddrAddrPort(&names[i], rh[i].Hdr.Namelen)
			if !ok {
				continue
			}
			pkt := bufs[i*batchBuf : i*batchBuf+int(rh[i].Len)]
			// The answer is built in its send slot (no copy) when it
			// fits; the full path's answers are copied in.
			slot := outs[ns*dnsMaxOut : (ns+1)*dnsMaxOut : (ns+1)*dnsMaxOut]
			w.out = slot[:0]
			out := w.handle(pkt, from)
			if out == nil {
				continue
			}
			if len(out) > dnsMaxOut {
				w.conn.WriteToUDPAddrPort(out, from) // a TCP-sized answer: rare
				continue
			}
			dst := slot[:len(out)]
			if &out[0] != &dst[0] {
				copy(dst, out)
			}
			siov[ns].Base = &dst[0]
			siov[ns].SetLen(len(out))
			sh[ns].Hdr.Name = rh[i].Hdr.Name
			sh[ns].Hdr.Namelen = rh[i].Hdr.Namelen
			ns++
		}
		for sent := 0; sent < ns; {
			var m int
			var errno unix.Errno
			err := rc.Write(func(fd uintptr) bool {
				r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&sh[sent])), uintptr(ns-sent), unix.MSG_DONTWAIT, 0, 0)
				m, errno = int(r), e
				return e != unix.EAGAIN && e != unix.EINTR
			})
			if err != nil {
				return true
			}
			if errno != 0 {
				// This datagram cannot be sent (e.g. a bad address): skip it.
				sent++
				continue
			}
			sent += m
		}
		w.flush()
		if ns > 0 {
			// One observation per batch: the time from its read to its
			// answers sent, which every answer in it waited.
			s.m.seconds.Observe(s.o.Now().Sub(t0).Seconds())
		}
		// Our answers point into names: those slots are reused only on the
		// next read, after every answer has gone.
	}
}

// dnsMaxOut is a batch slot's answer room: the largest UDP answer allowed.
const dnsMaxOut = 4096

// sockaddrAddrPort turns a received sockaddr into an address and port.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
