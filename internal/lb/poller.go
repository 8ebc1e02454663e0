package lb

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is the balancer's one epoll set: every listening socket (level
// triggered: ready while its accept queue is not empty) and every parked
// connection's sockets (one shot: a connection idle long enough gives up
// its relay goroutines and waits here). One goroutine (loop) waits for it
// through Go's own netpoller, the epoll descriptor being readable while any
// of its members is ready, and dispatches the events: it accepts on ready
// ports and starts a relay for a parked connection that has data.
//
// Events carry a slot of the poller's table and the slot's generation, not
// a pointer nor a descriptor, so an event read just before its port closed
// (or its connection ended) finds a stale generation and is dropped.
type poller struct {
	f  *os.File // the epoll descriptor, as Go's netpoller waits on it
	rc syscall.RawConn

	mu    sync.Mutex
	slots []pslot
	free  []int32
}

// pollee is what a slot dispatches to: a port or a parked connection.
type pollee interface {
	ready(s *Server, events uint32, sub int32)
}

type pslot struct {
	h   pollee
	gen int32
}

// pref names a slot: its index and its generation.
type pref struct{ idx, gen int32 }

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile hands it to Go's netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lb-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{f: f, rc: rc}, nil
}

// add takes a slot for h.
func (pl *poller) add(h pollee) pref {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var i int32
	if n := len(pl.free); n > 0 {
		i = pl.free[n-1]
		pl.free = pl.free[:n-1]
	} else {
		pl.slots = append(pl.slots, pslot{})
		i = int32(len(pl.slots) - 1)
	}
	sl := &pl.slots[i]
	sl.h = h
	sl.gen = (sl.gen + 1) & (1<<30 - 1)
	return pref{i, sl.gen}
}

// remove frees r's slot; events still in flight for it are dropped.
func (pl *poller) remove(r pref) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if sl := &pl.slots[r.idx]; sl.gen == r.gen && sl.h != nil {
		sl.h = nil
		pl.free = append(pl.free, r.idx)
	}
}

func (pl *poller) lookup(idx, gen int32) pollee {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if idx < 0 || int(idx) >= len(pl.slots) || pl.slots[idx].gen != gen {
		return nil
	}
	return pl.slots[idx].h
}

// ctl adds (op EPOLL_CTL_ADD) or modifies fd in the set, with events, for
// r and sub (0 or 1: which side of a connection).
// The poller's descriptor is used under Control, so that it cannot be
// closed (and its number reused) meanwhile.
func (pl *poller) ctl(op, fd int, events uint32, r pref, sub int32) error {
	ev := unix.EpollEvent{Events: events, Fd: r.idx, Pad: r.gen<<1 | sub}
	var err error
	if cerr := pl.rc.Control(func(epfd uintptr) { err = unix.EpollCtl(int(epfd), op, fd, &ev) }); cerr != nil {
		return cerr
	}
	return err
}

// del removes fd from the set.
func (pl *poller) del(fd int) error {
	var err error
	if cerr := pl.rc.Control(func(epfd uintptr) { err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, fd, nil) }); cerr != nil {
		return cerr
	}
	return err
}

// loop dispatches events until the poller is closed.
func (pl *poller) loop(s *Server) {
	events := make([]unix.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := pl.rc.Read(func(fd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(fd), events, 0)
				if werr != unix.EINTR {
					break
				}
			}
			return n > 0 || werr != nil
		})
		if err != nil || werr != nil {
			if err != nil && !errors.Is(err, os.ErrClosed) {
				s.log.Error("lb event loop stopped", "err", err)
			}
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			if h := pl.lookup(ev.Fd, ev.Pad>>1); h != nil {
				h.ready(s, ev.Events, ev.Pad&1)
			}
		}
	}
}

func (pl *poller) close() { pl.f.Close() }
