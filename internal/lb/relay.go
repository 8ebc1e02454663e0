package lb

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// relayDir is one direction of a conn: what it read and could not write
// yet, whether it splices, and whether its source ended.
//
// Small messages are read into the loop's one buffer and written out at
// once; only what the destination could not take is kept, in a buffer of
// its own from a pool, until it can. Once a read fills the whole buffer the
// stream is bulk, and from then on each chunk is spliced through the loop's
// pipe, as HAProxy's splice-auto does; a chunk the destination could not
// take stays in that pipe, which the direction keeps until it is out. So an
// idle connection holds neither buffer nor pipe: two descriptors and its
// structs.
type relayDir struct {
	pend []byte  // what the destination has yet to take, in pbuf
	pbuf *[]byte // from chunkBufs
	pipe *splicePipe
	left int // bytes in pipe
	bulk bool
	done bool  // the end was passed on
	n    int64 // bytes written to the destination
}

// release gives back what d holds (c is closing).
func (d *relayDir) release() {
	if d.pipe != nil {
		putPipe(d.pipe, d.left == 0)
		d.pipe, d.left = nil, 0
	}
	if d.pbuf != nil {
		chunkBufs.Put(d.pbuf)
		d.pbuf, d.pend = nil, nil
	}
}

// moveBudget bounds the chunks one direction moves in a turn; a direction
// with more waits for the loop's next round, after the other connections'
// events.
const moveBudget = 16

// pump moves both directions of c as far as their sockets allow.
func (l *evloop) pump(c *conn) {
	for d := 0; d < 2 && c.state == stRelay; d++ {
		if !c.dir[d].done {
			l.move(c, d)
		}
	}
}

// move relays direction d of c: what is left from before first, then new
// chunks until its source is drained, its destination full, its source
// ended or its budget spent. A failed read or write cuts c.
func (l *evloop) move(c *conn, d int) {
	ds := &c.dir[d]
	src, dst := c.sock(d), c.sock(1-d)
	if ds.pipe != nil || ds.pbuf != nil {
		if !c.wr[1-d] || !l.flush(c, d, dst) {
			return
		}
	}
	for budget := moveBudget; c.rd[d]; budget-- {
		if budget == 0 {
			l.requeue(c)
			return
		}
		var more bool
		if ds.bulk {
			more = l.spliceChunk(c, d, src, dst)
		} else {
			more = l.copyChunk(c, d, src, dst)
		}
		if !more {
			return
		}
	}
}

// copyChunk reads one chunk of direction d into the loop's buffer and
// writes it on, and reports whether to go on reading.
//
// A read shorter than the buffer took everything the socket held, so the
// socket is drained: anything arriving later raises a new event, and the
// read that would find nothing (EAGAIN) is saved, as nginx does. Only when
// the peer's end was seen is the socket read on, to find that end.
func (l *evloop) copyChunk(c *conn, d, src, dst int) bool {
	ds := &c.dir[d]
	n, err := readNB(src, l.buf)
	if !l.gotChunk(c, d, n, err) {
		return false
	}
	// The last chunk before a clean FIN is written corked (MSG_MORE): the
	// end passed on right after goes out in its packet, one packet less.
	last := c.fin[d] && n < len(l.buf)
	var m int
	if last {
		m, err = sendMore(dst, l.buf[:n])
	} else {
		m, err = writeNB(dst, l.buf[:n])
	}
	if err != nil && err != unix.EAGAIN {
		l.fail(c)
		return false
	}
	ds.n += int64(m)
	if m < n {
		// The destination is full: keep the rest until it is writable.
		ds.pbuf = chunkBufs.Get().(*[]byte)
		ds.pend = (*ds.pbuf)[:copy(*ds.pbuf, l.buf[m:n])]
		c.wr[1-d] = false
		return false
	}
	if n == len(l.buf) {
		ds.bulk = true
		return true
	}
	switch {
	case c.fin[d]:
		// The FIN came before this read, behind everything the peer sent:
		// a short read took all of it, so the source ended (one read less
		// per connection than reading on to find the end).
		l.endDir(c, d)
		return false
	case !c.hup[d]:
		c.rd[d] = false
		return false
	}
	return true
}

// gotChunk reports whether a read (or splice) of direction d's source
// brought bytes; else it ends the direction at the source's end, cuts c on
// an error, or marks the source drained.
func (l *evloop) gotChunk(c *conn, d, n int, err error) bool {
	switch {
	case err == unix.EAGAIN:
		c.rd[d] = false
		return false
	case err != nil:
		l.fail(c)
		return false
	case n == 0:
		l.endDir(c, d)
		return false
	}
	return true
}

// spliceChunk splices one chunk of direction d through the loop's pipe,
// and reports whether to go on. A spliced chunk can be short while the
// socket still holds more (the pipe's slots filled first), so a bulk
// source is read until it has nothing.
func (l *evloop) spliceChunk(c *conn, d, src, dst int) bool {
	ds := &c.dir[d]
	p := l.pipe
	if p == nil {
		if p = getPipe(); p == nil {
			// Out of descriptors for a pipe: copy this chunk instead.
			return l.copyChunk(c, d, src, dst)
		}
		l.pipe = p
	}
	n, err := spliceNB(src, p.w, pipeSize)
	if !l.gotChunk(c, d, n, err) {
		return false
	}
	left := n
	for left > 0 {
		m, err := spliceNB(p.r, dst, left)
		if err == unix.EAGAIN {
			break
		}
		if err != nil || m == 0 {
			l.pipe = nil
			putPipe(p, false)
			l.fail(c)
			return false
		}
		left -= m
		ds.n += int64(m)
	}
	if left > 0 {
		// The destination is full: the direction keeps the pipe.
		ds.pipe, ds.left = p, left
		l.pipe = nil
		c.wr[1-d] = false
		return false
	}
	return true
}

// flush writes what direction d kept for its destination, and reports
// whether all of it went (false: still waiting, or c was cut).
func (l *evloop) flush(c *conn, d, dst int) bool {
	ds := &c.dir[d]
	for ds.pipe != nil && ds.left > 0 {
		m, err := spliceNB(ds.pipe.r, dst, ds.left)
		if err == unix.EAGAIN {
			c.wr[1-d] = false
			return false
		}
		if err != nil || m == 0 {
			l.fail(c)
			return false
		}
		ds.left -= m
		ds.n += int64(m)
	}
	if ds.pipe != nil {
		putPipe(ds.pipe, true)
		ds.pipe = nil
	}
	for len(ds.pend) > 0 {
		m, err := writeNB(dst, ds.pend)
		if err == unix.EAGAIN {
			c.wr[1-d] = false
			return false
		}
		if err != nil {
			l.fail(c)
			return false
		}
		ds.pend = ds.pend[m:]
		ds.n += int64(m)
	}
	if ds.pbuf != nil {
		chunkBufs.Put(ds.pbuf)
		ds.pbuf, ds.pend = nil, nil
	}
	return true
}

// chunkSize is the buffer of a copied chunk; a read that fills it marks the
// stream as bulk, to be spliced from then on (HAProxy's default bufsize).
const chunkSize = 16 << 10

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pipeSize is the capacity asked of every pipe, and the most one spliced
// chunk moves. 1 MiB (the default /proc/sys/fs/pipe-max-size) moves a bulk
// stream in few syscalls; the kernel allocates pages only while bytes are in
// the pipe.
const pipeSize = 1 << 20

// splicePipe is a pipe pair for splicing; it lives in pipes while idle.
type splicePipe struct {
	pipeFDs
	cleanup runtime.Cleanup
}

type pipeFDs struct{ r, w int }

// pipe2 makes a pipe (a variable so that tests can run out of descriptors).
var pipe2 = unix.Pipe2

// pipes holds empty pipes between chunks. The GC empties it, and a pipe's
// cleanup closes its descriptors, so an idle balancer keeps none for long.
var pipes sync.Pool

func getPipe() *splicePipe {
	if p, ok := pipes.Get().(*splicePipe); ok {
		return p
	}
	var fds [2]int
	if err := pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	// A smaller pipe works too (more syscalls per chunk): ignore errors.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	p := &splicePipe{pipeFDs: pipeFDs{r: fds[0], w: fds[1]}}
	p.cleanup = runtime.AddCleanup(p, func(f pipeFDs) { f.close() }, p.pipeFDs)
	return p
}

// putPipe gives p back to the pool if it is empty, and closes it otherwise.
func putPipe(p *splicePipe, empty bool) {
	if !empty {
		p.cleanup.Stop()
		p.close()
		return
	}
	pipes.Put(p)
}

func (f pipeFDs) close() {
	unix.Close(f.r)
	unix.Close(f.w)
}
