package lb

import (
	"sync"

	"golang.org/x/sys/unix"
)

// poller puts every listening socket into every relay loop's epoll set
// (level triggered: ready while its accept queue is not empty; exclusive:
// a new client wakes one waiting loop, not all), so that the loop that
// takes a client accepts it and relays it, with no hand-over between
// threads. A loop that is busy finds the ready port on its next wait.
//
// Events carry a slot of the poller's table and the slot's generation, not
// a pointer nor a descriptor, so an event read just before its port closed
// finds a stale generation and is dropped.
type poller struct {
	loops []*evloop

	mu    sync.Mutex
	slots []pslot
	free  []int32
}

// pollee is what a slot dispatches to: a port.
type pollee interface {
	ready(l *evloop)
}

type pslot struct {
	h   pollee
	gen int32
}

// pref names a slot: its index and its generation.
type pref struct{ idx, gen int32 }

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

// Listener events' Pad is listenTag minus the slot's generation (a
// connection's is its positive generation, the eventfd's efdTag).
const listenTag = -2

// arm adds listening socket fd, for r, to every loop's set; on an error it
// is in none.
func (pl *poller) arm(fd int, r pref) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: r.idx, Pad: listenTag - r.gen}
	for i, l := range pl.loops {
		if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			for _, l := range pl.loops[:i] {
				epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			}
			return err
		}
	}
	return nil
}

// disarm takes listening socket fd out of every loop's set.
func (pl *poller) disarm(fd int) {
	for _, l := range pl.loops {
		epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}
