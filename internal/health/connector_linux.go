//go:build linux

package health

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Timing of a connector's loop.
const (
	// connectorIdleExit is how long a loop with nothing in flight and no
	// probe started lives on; the next probe starts a new one.
	connectorIdleExit = 2 * time.Second
	// connectorIdleTick bounds a loop's sleep while nothing is in flight, so
	// that a probe started then need not wake it (only one whose timeout is
	// shorter than this does).
	connectorIdleTick = 100 * time.Millisecond
	// connectorEvents is how many events one epoll_wait returns at most.
	connectorEvents = 256
)

// connector runs tcp probes without a goroutine, a net.Conn or a timer of
// their own. The caller opens a non-blocking socket (TCP_QUICKACK off,
// SO_LINGER 0), starts the connect and asks at once whether it is done, as
// HAProxy does: on loopback, or to a host on the same machine, the handshake
// is over by the time connect returns. Otherwise the socket joins the
// connector's epoll set (one-shot EPOLLOUT), and one loop goroutine per
// connector closes each socket as soon as its connect ends (a reset: the
// target never accepts the probe, and no TIME_WAIT is left) and ends those
// still in flight at their deadline, kept in a heap.
//
// The loop does not sleep in epoll_wait: the epoll descriptor itself sits in
// the Go runtime's netpoller, so the loop parks like any goroutine waiting
// for a socket, with its deadline as the file's read deadline, and wakes on
// the thread that polled the network anyway. It starts with the first
// probe that needs it and ends when idle for connectorIdleExit, or on close,
// so an unused connector holds no goroutine and no descriptor.
//
// It is the runtime's netpoller without what a probe does not need: the
// per-connection poll descriptor, finalizer, timers and goroutine, the
// getsockname/getpeername and TCP_NODELAY calls after connect, and the
// epoll_ctl(DEL) before close.
type connector struct {
	mu      sync.Mutex
	running bool          // a loop owns epfd and file
	closing bool          // close asked the loop to end
	exited  chan struct{} // closed when the running loop has ended
	epfd    int
	file    *os.File // epfd, in the runtime's netpoller
	slots   []probeSlot
	free    []int32
	dl      deadlineHeap // slots in flight by deadline
	// wakeAt is when the parked loop wakes up by itself (mono ns); a probe
	// due to time out earlier moves the file's deadline (fileDeadline).
	wakeAt       int64
	fileDeadline int64
	lastUsed     int64 // mono ns of the last start
	registering  int   // starts between alloc and the deadline heap

	// idleExit replaces connectorIdleExit (tests set it before first use).
	idleExit time.Duration
}

// probeSlot is one connect in flight. Its index and generation are the
// epoll event's data, so an event of a finished probe is recognized.
type probeSlot struct {
	fd       int32 // -1 when the slot is free
	gen      uint32
	hi       int32 // index in the deadline heap, -1 when not in it
	start    int64 // mono ns
	deadline int64 // mono ns, math.MaxInt64 for none
	timeout  time.Duration
	done     func(Result)
}

// probeID names a probe in flight, for cancel.
type probeID struct {
	slot int32
	gen  uint32
}

// finished is a probe the loop has taken out of the table and finishes
// outside the lock.
type finished struct {
	fd      int32
	events  uint32 // epoll events; 0 when timed out or canceled
	start   int64
	timeout time.Duration
	done    func(Result)
	why     finishReason
}

type finishReason uint8

const (
	finishEvent finishReason = iota
	finishTimeout
	finishCanceled
)

// supported reports whether the connector can probe addr (it leaves IPv6
// addresses with a zone to the net package, which resolves the zone).
func (c *connector) supported(addr netip.AddrPort) bool {
	a := addr.Addr()
	return a.IsValid() && a.Zone() == ""
}

// start begins a tcp connect to addr that ends after timeout (none when
// timeout <= 0: the caller then cancels it). done is called exactly once
// with the result: from the connector's loop, or before start returns when
// the connect ends at once. ok reports that it did not: the probe is in
// flight and id names it.
//
// epollOnly skips the question right after connect, so that the connect
// ends through the epoll loop as one across a network does.
func (c *connector) start(addr netip.AddrPort, timeout time.Duration, epollOnly bool, done func(Result)) (id probeID, ok bool) {
	begin := mono()
	fd, err := openProbe(addr)
	if err == nil && !epollOnly {
		// On a fast path (loopback, a host on the same machine) the
		// handshake is done by the time connect returns: ask at once, as
		// HAProxy does, rather than through epoll.
		var inProgress bool
		if inProgress, err = connected(fd, addr); err == nil && !inProgress {
			rawClose(fd)
			done(Result{OK: true, Reason: "ok", Latency: time.Duration(mono() - begin)})
			return probeID{}, false
		}
		if err != nil {
			rawClose(fd)
		}
	}
	if err != nil {
		done(Result{Reason: connectReason(err), Local: localError(err), Latency: time.Duration(mono() - begin)})
		return probeID{}, false
	}
	deadline := int64(math.MaxInt64)
	if timeout > 0 {
		deadline = begin + int64(timeout)
	}
	c.mu.Lock()
	if err := c.ensureLoop(); err != nil {
		c.mu.Unlock()
		rawClose(fd)
		done(Result{Reason: "tcp connect: " + err.Error(), Local: true, Latency: time.Duration(mono() - begin)}) // no epoll: this machine's trouble
		return probeID{}, false
	}
	i := c.alloc()
	s := &c.slots[i]
	s.fd, s.start, s.deadline, s.timeout, s.done = int32(fd), begin, deadline, timeout, done
	id = probeID{slot: i, gen: s.gen}
	c.lastUsed = begin
	// The descriptor joins the epoll set outside the lock: the loop, woken
	// by it, need not wait for the lock. Until the slot is in the deadline
	// heap nothing but its event can end it, and the loop does not end
	// while a slot is being registered, so the descriptor and epfd stay
	// open meanwhile.
	c.registering++
	epfd := c.epfd
	c.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: i, Pad: int32(id.gen)}
	err = epollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	c.mu.Lock()
	c.registering--
	if c.slots[i].gen != id.gen {
		// Its event came first: the loop has ended it already.
		c.mu.Unlock()
		return id, true
	}
	if err != nil {
		c.release(i)
		c.mu.Unlock()
		rawClose(fd)
		done(Result{Reason: "tcp connect: epoll: " + err.Error(), Local: true, Latency: time.Duration(mono() - begin)})
		return probeID{}, false
	}
	c.dl.push(c.slots, i)
	switch {
	case c.closing:
		c.setDeadline(math.MinInt64) // the loop cancels it, and ends
	case deadline < c.wakeAt:
		c.wakeAt = deadline
		c.setDeadline(deadline)
	}
	c.mu.Unlock()
	return id, true
}

// cancel ends the probe id if it is still in flight: its descriptor is
// closed and done is never called. It reports false when the probe has
// already ended (done has been or is being called).
func (c *connector) cancel(id probeID) bool {
	c.mu.Lock()
	if int(id.slot) >= len(c.slots) || c.slots[id.slot].gen != id.gen || c.slots[id.slot].fd < 0 {
		c.mu.Unlock()
		return false
	}
	fd := c.slots[id.slot].fd
	c.release(id.slot)
	c.mu.Unlock()
	rawClose(int(fd))
	return true
}

// close ends every probe in flight ("probe canceled") and the loop, and
// waits for it. The connector stays usable: a later start starts a new loop.
func (c *connector) close() {
	c.mu.Lock()
	exited := c.exited
	if c.running {
		c.closing = true
		c.setDeadline(math.MinInt64)
	}
	c.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// ensureLoop starts the loop if none runs. Called with c.mu held.
func (c *connector) ensureLoop() error {
	if c.running {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	// Non-blocking, so that os.NewFile puts it in the runtime's netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		rawClose(epfd)
		return err
	}
	f := os.NewFile(uintptr(epfd), "health-probes-epoll")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Time{}) // fails unless the netpoller took it
	}
	if err != nil {
		f.Close()
		return err
	}
	c.epfd, c.file, c.running, c.closing = epfd, f, true, false
	c.fileDeadline = 0 // none
	c.exited = make(chan struct{})
	// The loop works out its first wait itself, with every slot in view.
	c.wakeAt = math.MinInt64
	go c.loop(f, rc, c.exited)
	return nil
}

// setDeadline makes the parked loop wake at mono time at (math.MaxInt64:
// only for an event). Called with c.mu held, so the file is open.
func (c *connector) setDeadline(at int64) {
	if at == c.fileDeadline {
		return
	}
	c.fileDeadline = at
	var t time.Time
	switch {
	case at == math.MaxInt64:
		// zero: no deadline
	case at == math.MinInt64:
		t = time.Unix(1, 0) // long past: at once
	default:
		t = monoBase.Add(time.Duration(at))
	}
	c.file.SetReadDeadline(t)
}

// alloc takes a free slot. Called with c.mu held.
func (c *connector) alloc() int32 {
	if n := len(c.free); n > 0 {
		i := c.free[n-1]
		c.free = c.free[:n-1]
		return i
	}
	c.slots = append(c.slots, probeSlot{fd: -1, hi: -1})
	return int32(len(c.slots) - 1)
}

// release frees slot i: out of the deadline heap, a new generation. Called
// with c.mu held; the caller closes the descriptor.
func (c *connector) release(i int32) {
	s := &c.slots[i]
	if s.hi >= 0 {
		c.dl.remove(c.slots, s.hi)
	}
	s.fd, s.done, s.hi = -1, nil, -1
	s.gen++
	c.free = append(c.free, i)
}

// take moves slot i into out and frees it. Called with c.mu held.
func (c *connector) take(out []finished, i int32, events uint32, why finishReason) []finished {
	s := &c.slots[i]
	out = append(out, finished{fd: s.fd, events: events, start: s.start, timeout: s.timeout, done: s.done, why: why})
	c.release(i)
	return out
}

// loop waits for connects and deadlines until it is idle or closed.
func (c *connector) loop(f *os.File, rc syscall.RawConn, exited chan struct{}) {
	events := make([]unix.EpollEvent, connectorEvents)
	n := 0
	// poll takes the events that are ready, without waiting: the runtime
	// waits for the epoll descriptor to be readable (rc.Read).
	poll := func(fd uintptr) bool {
		r, _, errno := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if errno != 0 {
			n = 0
			return errno != unix.EAGAIN && errno != unix.EINTR
		}
		n = int(r)
		return n > 0
	}
	var out []finished
	idleExit := connectorIdleExit
	if c.idleExit > 0 {
		idleExit = c.idleExit
	}
	for {
		c.mu.Lock()
		now := mono()
		for _, ev := range events[:n] {
			if int(ev.Fd) >= len(c.slots) {
				continue
			}
			if s := &c.slots[ev.Fd]; s.fd >= 0 && s.gen == uint32(ev.Pad) {
				out = c.take(out, ev.Fd, ev.Events, finishEvent)
			}
		}
		for len(c.dl) > 0 && c.slots[c.dl[0]].deadline <= now {
			out = c.take(out, c.dl[0], 0, finishTimeout)
		}
		exit := false
		switch {
		case c.closing:
			for len(c.dl) > 0 {
				out = c.take(out, c.dl[0], 0, finishCanceled)
			}
			// A start still registering puts its slot in the heap and
			// wakes the loop again to cancel it.
			exit = c.registering == 0
			c.wakeAt = math.MaxInt64
		case len(c.dl) > 0:
			c.wakeAt = c.slots[c.dl[0]].deadline
		case c.registering > 0:
			c.wakeAt = math.MaxInt64 // its push wakes the loop if need be
		case now-c.lastUsed >= int64(idleExit):
			exit = true
		default:
			c.wakeAt = min(now+int64(connectorIdleTick), c.lastUsed+int64(idleExit))
		}
		if exit {
			c.running, c.closing, c.file = false, false, nil
			c.wakeAt = math.MinInt64
		} else {
			c.setDeadline(c.wakeAt)
		}
		c.mu.Unlock()

		finish(out, now)
		clear(out)
		out = out[:0]
		if exit {
			f.Close()
			close(exited)
			return
		}
		n = 0
		if err := rc.Read(poll); errors.Is(err, os.ErrDeadlineExceeded) {
			// The file stays past its deadline until it gets a new one.
			c.mu.Lock()
			c.fileDeadline = math.MinInt64
			c.mu.Unlock()
		}
	}
}

// finish closes each probe's socket and reports its result.
func finish(out []finished, now int64) {
	for i := range out {
		f := &out[i]
		res := Result{OK: true, Reason: "ok", Latency: time.Duration(now - f.start)}
		switch {
		case f.why == finishTimeout:
			res = Result{Reason: timeoutReason(f.timeout), Latency: res.Latency}
		case f.why == finishCanceled:
			res = Result{Reason: "probe canceled", Latency: res.Latency}
		case f.events&(unix.EPOLLERR|unix.EPOLLHUP) != 0:
			// A connect that failed: the socket's error says why.
			err := socketError(int(f.fd))
			if err == nil {
				res = Result{Reason: "tcp connect: connection closed by the server", Latency: res.Latency}
			} else {
				res = Result{Reason: connectReason(err), Local: localError(err), Latency: res.Latency}
			}
		}
		rawClose(int(f.fd))
		f.done(res)
	}
}

// openProbe opens a non-blocking socket for a probe of addr and starts its
// connect. TCP_QUICKACK off: connect completes on the SYN-ACK and the
// handshake's last ACK waits, so the reset of SO_LINGER 0 on close reaches
// the target before the connection could be accepted.
//
// The calls of a probe never block, so they are raw system calls: the Go
// scheduler need not hand the goroutine's P to another thread meanwhile
// (a loopback connect runs the whole handshake and takes tens of µs, long
// enough for the runtime to do so), and the loop's epoll_wait is the only
// call that sleeps.
func openProbe(addr netip.AddrPort) (int, error) {
	a := addr.Addr().Unmap()
	family := unix.AF_INET6
	if a.Is4() {
		family = unix.AF_INET
	}
	r, _, errno := syscall.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if errno != 0 {
		return -1, errno
	}
	fd := int(r)
	zero := int32(0)
	if errno := setsockopt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, unsafe.Pointer(&zero), 4); errno != 0 {
		rawClose(fd)
		return -1, errno
	}
	linger := unix.Linger{Onoff: 1, Linger: 0} // close resets the connection
	if errno := setsockopt(fd, unix.SOL_SOCKET, unix.SO_LINGER, unsafe.Pointer(&linger), unix.SizeofLinger); errno != 0 {
		rawClose(fd)
		return -1, errno
	}
	if errno := connect(fd, a, addr.Port()); errno != 0 && errno != unix.EINPROGRESS {
		rawClose(fd)
		return -1, errno
	}
	return fd, nil
}

// connected asks a socket whose connect has started how it went, by
// connecting again: done (0 or EISCONN), still in progress (EALREADY), or
// failed (the connect's error, such as ECONNREFUSED).
func connected(fd int, addr netip.AddrPort) (inProgress bool, err error) {
	switch errno := connect(fd, addr.Addr().Unmap(), addr.Port()); errno {
	case 0, unix.EISCONN:
		return false, nil
	case unix.EALREADY, unix.EINPROGRESS:
		return true, nil
	default:
		return false, errno
	}
}

// connect calls connect(2) for a (not IPv4-mapped) and port.
func connect(fd int, a netip.Addr, port uint16) syscall.Errno {
	var errno syscall.Errno
	if a.Is4() {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		_, _, errno = syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	} else {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		_, _, errno = syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)
	}
	return errno
}

func setsockopt(fd, level, opt int, v unsafe.Pointer, n uintptr) syscall.Errno {
	_, _, errno := syscall.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(v), n, 0)
	return errno
}

// socketError reads and clears the socket's pending error (SO_ERROR).
func socketError(fd int) error {
	var v int32
	n := uint32(4)
	_, _, errno := syscall.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	if v != 0 {
		return syscall.Errno(v)
	}
	return nil
}

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, errno := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// rawClose closes fd. A probe's socket has SO_LINGER 0, so its close does
// not wait.
func rawClose(fd int) {
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// reasons caches the words of connect failures and timeouts, so that a
// failing probe, like a passing one, allocates nothing.
var reasons sync.Map // syscall.Errno or time.Duration -> string

// connectReason words a failed connect as the net package's path does:
// "tcp connect: connection refused".
func connectReason(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "tcp connect: " + err.Error()
	}
	if r, ok := reasons.Load(errno); ok {
		return r.(string)
	}
	r := "tcp connect: " + errno.Error()
	reasons.Store(errno, r)
	return r
}

// timeoutReason is "timeout after 1s".
func timeoutReason(d time.Duration) string {
	if r, ok := reasons.Load(d); ok {
		return r.(string)
	}
	r := "timeout after " + d.String()
	reasons.Store(d, r)
	return r
}

// deadlineHeap is a min-heap of slot indices by deadline; each slot keeps
// its index in hi.
type deadlineHeap []int32

func (h *deadlineHeap) push(slots []probeSlot, i int32) {
	*h = append(*h, i)
	slots[i].hi = int32(len(*h) - 1)
	h.up(slots, len(*h)-1)
}

// remove takes out the entry at heap index j.
func (h *deadlineHeap) remove(slots []probeSlot, j int32) {
	q := *h
	last := len(q) - 1
	if int(j) != last {
		q[j] = q[last]
		slots[q[j]].hi = j
	}
	*h = q[:last]
	if int(j) < last {
		if !h.down(slots, int(j)) {
			h.up(slots, int(j))
		}
	}
}

func (h deadlineHeap) up(slots []probeSlot, j int) {
	for j > 0 {
		p := (j - 1) / 2
		if slots[h[p]].deadline <= slots[h[j]].deadline {
			return
		}
		h[p], h[j] = h[j], h[p]
		slots[h[p]].hi, slots[h[j]].hi = int32(p), int32(j)
		j = p
	}
}

func (h deadlineHeap) down(slots []probeSlot, j int) bool {
	j0 := j
	for {
		l := 2*j + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && slots[h[r]].deadline < slots[h[l]].deadline {
			m = r
		}
		if slots[h[j]].deadline <= slots[h[m]].deadline {
			break
		}
		h[j], h[m] = h[m], h[j]
		slots[h[j]].hi, slots[h[m]].hi = int32(j), int32(m)
		j = m
	}
	return j > j0
}
