package lb

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// relay moves src's bytes to dst until src ends, like io.Copy(dst, src)
// between two bare *net.TCPConn, and returns the bytes written and nil at
// src's clean end. It holds nothing while src is idle, copies small
// messages through a pooled buffer, and splices a bulk stream, as HAProxy's
// splice-auto does.
//
// io.Copy (net's spliceFrom) takes a pipe pair for the whole copy, so an idle
// proxied connection holds two pipes: six descriptors instead of two, and a
// balancer under a 20 000 open-file limit runs out at about 3 300
// connections. It also splices every message, and for a request of a few
// hundred bytes two splices through a pipe cost the kernel more than a read
// and a write. relay waits for src to be readable holding neither buffer nor
// pipe. Each chunk is read into a buffer from a pool and written out; once a
// read fills the whole buffer the stream is bulk, and from then on each
// chunk is spliced through a pipe taken from a pool for that chunk only.
func relay(dst, src rawConner) (int64, error) { return relayMarking(dst, src, nil) }

// rawConner is a socket relay can wait on through Go's netpoller: a
// *net.TCPConn or an *os.File holding a socket.
type rawConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// relayMarking is relay, setting moved (when not nil) whenever a chunk
// moved: the reaper parks connections that moved nothing for a while. A
// read deadline on src (the reaper's request to park) ends it with
// os.ErrDeadlineExceeded, after a whole chunk: it can be called again.
func relayMarking(dst, src rawConner, moved *atomic.Bool) (int64, error) {
	rsrc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	rdst, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	// One chunk's state, shared with the callbacks so that they are made
	// once per relay, not once per chunk.
	var (
		bp      *[]byte
		p       *splicePipe
		n, left int
		serr    error
	)
	var (
		wbuf    []byte // what write has left to write
		werr    error  // a write's error (serr is a read's)
		written int64
		bulk    bool
	)
	write := func(fd uintptr) bool {
		for len(wbuf) > 0 {
			m, err := unix.Write(int(fd), wbuf)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				werr = err
				return true
			}
			wbuf = wbuf[m:]
			written += int64(m)
		}
		return true
	}
	writeNow := func(fd uintptr) { write(fd) }
	mark := func() {
		if moved != nil && !moved.Load() {
			moved.Store(true)
		}
	}

	// read reads chunks and writes each on at once, staying in one
	// RawConn.Read from message to message. It reads until EAGAIN: a short
	// read does not prove src drained, as a FIN behind the data shows only
	// on the next read, and its readiness may have come with the data's. It
	// returns (true) at src's end, on an error, after a full buffer (the
	// stream turns bulk) and when dst is full (wbuf is left).
	read := func(fd uintptr) bool {
		for {
			if bp == nil {
				bp = chunkBufs.Get().(*[]byte)
			}
			for n, serr = unix.Read(int(fd), *bp); serr == unix.EINTR; {
				n, serr = unix.Read(int(fd), *bp)
			}
			if serr == unix.EAGAIN {
				// Nothing to read: wait holding no buffer.
				chunkBufs.Put(bp)
				bp = nil
				return false
			}
			if serr != nil || n <= 0 {
				return true
			}
			mark()
			wbuf = (*bp)[:n]
			if err := rdst.Control(writeNow); err != nil && werr == nil {
				werr = err
			}
			if werr != nil || len(wbuf) > 0 || n == len(*bp) {
				return true
			}
		}
	}
	drain := func(fd uintptr) bool {
		if p == nil {
			if p = getPipe(); p == nil {
				serr = errNoPipe
				return true
			}
		}
		n, serr = spliceNB(int(fd), p.w, pipeSize)
		if serr == unix.EAGAIN {
			// Nothing to read: wait holding no pipe.
			putPipe(p, true)
			p = nil
			return false
		}
		return true
	}
	pump := func(fd uintptr) bool {
		n, serr = spliceNB(p.r, int(fd), left)
		return serr != unix.EAGAIN
	}

	putBuf := func() {
		if bp != nil {
			chunkBufs.Put(bp)
			bp = nil
		}
		wbuf = nil
	}
	for {
		serr, werr = nil, nil
		if !bulk {
			err := rsrc.Read(read)
			if err == nil {
				err = serr
			}
			if err == nil && werr == nil && n <= 0 {
				putBuf()
				return written, nil // src's end
			}
			if err == nil && werr == nil && len(wbuf) > 0 {
				// dst is full: wait for it.
				if e := rdst.Write(write); e != nil && werr == nil {
					werr = e
				}
			}
			if werr != nil {
				putBuf()
				return written, os.NewSyscallError("write", werr)
			}
			if err != nil {
				putBuf()
				return written, os.NewSyscallError("read", err)
			}
			bulk = n == len(*bp)
			putBuf()
			continue
		}

		err := rsrc.Read(drain)
		if err == nil {
			err = serr
		}
		if errors.Is(err, errNoPipe) {
			// Out of descriptors for a pipe: copy this chunk instead.
			bulk = false
			continue
		}
		if err != nil {
			if p != nil {
				putPipe(p, true) // a failed splice moved nothing
				p = nil
			}
			return written, os.NewSyscallError("splice", err)
		}
		if n == 0 { // src's end
			putPipe(p, true)
			p = nil
			return written, nil
		}
		// Splice all of it out to dst.
		mark()
		for left = n; left > 0; {
			serr = nil
			err := rdst.Write(pump)
			if err == nil {
				err = serr
			}
			if err == nil && n == 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				putPipe(p, false)
				p = nil
				return written, os.NewSyscallError("splice", err)
			}
			left -= n
			written += int64(n)
		}
		putPipe(p, true)
		p = nil
	}
}

// spliceNB is one non-blocking splice(2), retried on EINTR.
func spliceNB(in, out, max int) (int, error) {
	for {
		n, err := unix.Splice(in, nil, out, nil, max, unix.SPLICE_F_NONBLOCK)
		if err != unix.EINTR {
			return int(n), err
		}
	}
}

var errNoPipe = errors.New("no pipe")

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
