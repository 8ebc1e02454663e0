package lb

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// evloop is one of the balancer's relay loops (one per core): an epoll set
// of every listening socket (poller.go) and of its connections' sockets
// (edge triggered), and the one goroutine that owns them. It accepts the
// clients of ports that are ready, dials their backends, relays both
// directions as the sockets become ready, and closes the sockets: nothing
// else reads, writes or closes them, so a descriptor number cannot be
// reused under it. Other goroutines reach it through tasks (cut a
// connection, stop), an eventfd waking it when it sleeps.
//
// A connection costs no goroutine, idle or busy: an event costs a read and
// a write, with no wake-up of a goroutine per direction, and a connection
// costs two epoll_ctl (the kernel removes a socket from the set when it is
// closed).
type evloop struct {
	s    *Server
	epfd int
	efd  int // eventfd: tasks wait
	// The gate (see wait), in Go's netpoller as f: an idle loop parks its
	// goroutine there (no thread blocks in epoll_wait), until the set has
	// an event or the first timer's deadline (waitDL) passes.
	gate   int
	f      *os.File
	rc     syscall.RawConn
	waitDL time.Time
	// The gate's read callback and what it reads into and found, made
	// once: a closure per wait would be an allocation per wait.
	waitFn   func(uintptr) bool
	waitInto []unix.EpollEvent
	waitN    int
	waitErr  error

	mu       sync.Mutex
	tasks    []task
	stopped  bool        // no more tasks
	sleeping atomic.Bool // in epoll_wait with a timeout: a poster wakes it

	// Owned by the loop's goroutine.
	byFD     []*conn     // each socket of the loop, by descriptor number
	gen      int32       // the last generation given to a connection
	again    []*conn     // connections with work left after their turn
	accepted []*conn     // clients a port's event just accepted, to start
	timers   timerHeap   // connections waiting for a connect or a PROXY header
	buf      []byte      // the copy buffer of every small message
	pipe     *splicePipe // an empty pipe for the next spliced chunk

	// Its share of the connections, for metrics.
	total  atomic.Uint64
	active atomic.Int64
}

// task is work handed to a loop: cut c for a reason, or stop.
type task struct {
	c      *conn
	cut    *string
	closed bool // stop the loop
}

// efdTag marks the eventfd's events (a connection's Pad is its generation,
// never negative).
const efdTag = -1

func newLoop(s *Server) (*evloop, error) {
	var fds []int
	fail := func(op string, err error) (*evloop, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fail("epoll_create1", err)
	}
	fds = append(fds, epfd)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fail("eventfd", err)
	}
	fds = append(fds, efd)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd), Pad: efdTag}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		return fail("epoll_ctl", err)
	}
	// The gate: an epoll set holding only the loop's, one shot, in Go's
	// netpoller (non-blocking, so that os.NewFile hands it over).
	gate, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fail("epoll_create1", err)
	}
	fds = append(fds, gate)
	ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(epfd)}
	if err := unix.EpollCtl(gate, unix.EPOLL_CTL_ADD, epfd, &ev); err != nil {
		return fail("epoll_ctl", err)
	}
	if err := unix.SetNonblock(gate, true); err != nil {
		return fail("epoll set non-blocking", err)
	}
	f := os.NewFile(uintptr(gate), "lb-loop-gate")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	l := &evloop{s: s, epfd: epfd, efd: efd, gate: gate, f: f, rc: rc, buf: make([]byte, chunkSize)}
	l.waitFn = func(uintptr) bool {
		l.waitN, l.waitErr = epollWaitNB(l.epfd, l.waitInto)
		return l.waitN > 0 || l.waitErr != nil
	}
	return l, nil
}

// wait returns the events ready in the set: at once, or with block after
// waiting for one, or for the first timer's deadline (then none).
//
// A blocked loop parks its goroutine in Go's netpoller, through the gate:
// the loop's set is in the gate one shot, armed only for the wait. Were
// the set itself in the netpoller, every event of a busy loop would wake
// the thread waiting in the netpoller, for nothing; and a loop blocking
// its thread in epoll_wait has its P taken away and handed back by Go's
// scheduler at every wait.
func (l *evloop) wait(events []unix.EpollEvent, block bool) (int, error) {
	if !block {
		return epollWaitNB(l.epfd, events)
	}
	// Armed first: events that came before are found by the wait below.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(l.epfd)}
	if err := epollCtl(l.gate, unix.EPOLL_CTL_MOD, l.epfd, &ev); err != nil {
		return 0, fmt.Errorf("epoll_ctl: %w", err)
	}
	var dl time.Time
	if len(l.timers) > 0 {
		dl = l.timers[0].deadline
	}
	if !dl.Equal(l.waitDL) {
		l.f.SetReadDeadline(dl)
		l.waitDL = dl
	}
	l.waitInto = events
	err := l.rc.Read(l.waitFn)
	n, werr := l.waitN, l.waitErr
	l.waitInto, l.waitN, l.waitErr = nil, 0, nil
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	if err == nil {
		err = werr
	}
	return n, err
}

// post hands t to the loop and reports whether it took it (false once the
// loop stopped).
func (l *evloop) post(t task) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.tasks = append(l.tasks, t)
	l.mu.Unlock()
	if l.sleeping.CompareAndSwap(true, false) {
		var one = [8]byte{1}
		unix.Write(l.efd, one[:])
	}
	return true
}

// run is the loop's goroutine: it waits for events, tasks and timers until
// a stop task, then closes whatever connections are left.
func (l *evloop) run() {
	events := make([]unix.EpollEvent, 256)
	var tasks []task
	for {
		block := len(l.again) == 0
		if block {
			l.mu.Lock()
			if len(l.tasks) > 0 {
				block = false
			} else {
				l.sleeping.Store(true)
			}
			l.mu.Unlock()
		}
		n, err := l.wait(events, block)
		if block {
			l.sleeping.Store(false)
		}
		if err != nil {
			l.s.log.Error("lb relay loop: epoll_wait failed", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		for i := range events[:max(n, 0)] {
			ev := &events[i]
			if ev.Pad == efdTag {
				var b [8]byte
				unix.Read(l.efd, b[:])
				continue
			}
			if ev.Pad <= listenTag {
				if h := l.s.poll.lookup(ev.Fd, listenTag-ev.Pad); h != nil {
					h.ready(l)
					for i, c := range l.accepted {
						l.start(c)
						l.accepted[i] = nil
					}
					l.accepted = l.accepted[:0]
				}
				continue
			}
			fd := int(ev.Fd)
			if fd >= len(l.byFD) {
				continue
			}
			if c := l.byFD[fd]; c != nil && c.gen == ev.Pad {
				l.event(c, fd, ev.Events)
			}
		}
		l.mu.Lock()
		tasks, l.tasks = l.tasks, tasks[:0]
		l.mu.Unlock()
		stop := false
		for i := range tasks {
			t := &tasks[i]
			if t.closed {
				stop = true
			} else {
				l.cut(t.c, t.cut)
			}
			tasks[i] = task{}
		}
		if stop {
			l.close()
			return
		}
		if len(l.again) > 0 {
			again := l.again
			l.again = nil
			for _, c := range again {
				c.queued = false
				l.pump(c)
			}
		}
		if len(l.timers) > 0 {
			now := time.Now()
			for len(l.timers) > 0 && !l.timers[0].deadline.After(now) {
				c := heap.Pop(&l.timers).(*conn)
				l.expire(c)
			}
		}
	}
}

// stop ends the loop: connections still open are cut (shutdown).
func (l *evloop) stop() {
	l.mu.Lock()
	l.tasks = append(l.tasks, task{closed: true})
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.efd, one[:])
}

// close cuts every connection left and releases the loop's descriptors.
func (l *evloop) close() {
	l.mu.Lock()
	l.stopped = true
	l.tasks = nil
	l.mu.Unlock()
	for _, c := range l.byFD {
		if c != nil && c.state != stDone {
			l.cut(c, &endShutdown)
		}
	}
	if l.pipe != nil {
		putPipe(l.pipe, true)
		l.pipe = nil
	}
	l.f.Close()
	unix.Close(l.epfd)
	unix.Close(l.efd)
}

// watch adds fd (a socket of c) to the set, edge triggered, for reading
// and writing, and to the loop's table.
func (l *evloop) watch(c *conn, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: c.gen}
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	if fd >= len(l.byFD) {
		n := max(2*len(l.byFD), fd+1, 64)
		grown := make([]*conn, n)
		copy(grown, l.byFD)
		l.byFD = grown
	}
	l.byFD[fd] = c
	return nil
}

// forget drops fd from the table (it is about to be closed, which takes it
// out of the set).
func (l *evloop) forget(fd int) {
	if fd >= 0 && fd < len(l.byFD) {
		l.byFD[fd] = nil
	}
}

// requeue gives c another turn after the next wait (it stopped with work
// left, so that one busy connection does not hold the others).
func (l *evloop) requeue(c *conn) {
	if !c.queued {
		c.queued = true
		l.again = append(l.again, c)
	}
}

// setTimer sets c's one deadline (a connect or a PROXY header's).
func (l *evloop) setTimer(c *conn, at time.Time) {
	c.deadline = at
	if c.tidx >= 0 {
		heap.Fix(&l.timers, c.tidx)
		return
	}
	heap.Push(&l.timers, c)
}

// clearTimer drops c's deadline.
func (l *evloop) clearTimer(c *conn) {
	if c.tidx >= 0 {
		heap.Remove(&l.timers, c.tidx)
	}
}

// timerHeap orders connections by deadline; each knows its index.
type timerHeap []*conn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tidx, h[j].tidx = i, j
}
func (h *timerHeap) Push(x any) {
	c := x.(*conn)
	c.tidx = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.tidx = -1
	return c
}
