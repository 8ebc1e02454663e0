package main

// Load generated in this process: request latency through each balancer and
// directly (one request at a time, targets interleaved so drift hits all of
// them alike), and idle connections held open through a balancer to a hold
// server that lives here too.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// latTarget is one address the latency client measures.
type latTarget struct {
	name string
	addr string
}

// latResult is a target's round-trip times, sorted.
type latResult struct {
	keepAlive []time.Duration // one request on an open connection
	fresh     []time.Duration // connect, one request, the answer to its end
	errors    int
}

func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

var (
	keepAliveReq = []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	closeReq     = []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
)

// measureLatency runs two interleaved loops over targets for d each: burst
// requests on a kept-alive connection per target, then burst new connections
// with one request each; no more than maxSamples per target and mode.
func measureLatency(ctx context.Context, targets []latTarget, d time.Duration, maxSamples int) (map[string]*latResult, error) {
	res := map[string]*latResult{}
	for _, t := range targets {
		res[t.name] = &latResult{keepAlive: make([]time.Duration, 0, maxSamples), fresh: make([]time.Duration, 0, maxSamples)}
	}
	// Kept-alive connections.
	conns := make([]net.Conn, len(targets))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, t := range targets {
		c, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("latency: dial %s (%s): %w", t.addr, t.name, err)
		}
		conns[i] = c
	}
	buf := make([]byte, 4096)
	const burst = 50
	end := time.Now().Add(d)
	for round := 0; time.Now().Before(end) && ctx.Err() == nil; round++ {
		full := true
		for k := range targets {
			i := (k + round) % len(targets)
			r := res[targets[i].name]
			for range burst {
				if len(r.keepAlive) >= maxSamples {
					break
				}
				full = false
				t0 := time.Now()
				if err := oneRequest(conns[i], keepAliveReq, buf, false); err != nil {
					return nil, fmt.Errorf("latency: request to %s (%s): %w", targets[i].addr, targets[i].name, err)
				}
				r.keepAlive = append(r.keepAlive, time.Since(t0))
			}
		}
		if full {
			break
		}
	}
	// A new connection per request.
	const freshBurst = 20
	end = time.Now().Add(d)
	for round := 0; time.Now().Before(end) && ctx.Err() == nil; round++ {
		full := true
		for k := range targets {
			i := (k + round) % len(targets)
			r := res[targets[i].name]
			for range freshBurst {
				if len(r.fresh) >= maxSamples {
					break
				}
				full = false
				t0 := time.Now()
				c, err := net.DialTimeout("tcp", targets[i].addr, 5*time.Second)
				if err == nil {
					err = oneRequest(c, closeReq, buf, true)
					c.Close()
				}
				if err != nil {
					r.errors++
					if r.errors > 100 {
						return nil, fmt.Errorf("latency: new connections to %s (%s) keep failing: %w", targets[i].addr, targets[i].name, err)
					}
					continue
				}
				r.fresh = append(r.fresh, time.Since(t0))
			}
		}
		if full {
			break
		}
	}
	for _, r := range res {
		slices.Sort(r.keepAlive)
		slices.Sort(r.fresh)
	}
	return res, ctx.Err()
}

// oneRequest writes req and reads one whole answer (headers and a body of
// Content-Length bytes; with toEOF, to the end of the connection).
func oneRequest(c net.Conn, req, buf []byte, toEOF bool) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	n := 0
	want := -1
	for {
		if n == len(buf) {
			return errors.New("answer larger than the buffer")
		}
		m, err := c.Read(buf[n:])
		n += m
		if want < 0 {
			if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
				cl, ok := contentLength(buf[:i])
				if !ok {
					return errors.New("answer without Content-Length")
				}
				want = i + 4 + cl
			}
		}
		if !toEOF && want >= 0 && n >= want {
			return nil
		}
		if err == io.EOF && toEOF && want >= 0 && n >= want {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func contentLength(h []byte) (int, bool) {
	for line := range bytes.SplitSeq(h, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			return n, err == nil
		}
	}
	return 0, false
}

// holdServer accepts connections, answers one byte with one byte, and then
// holds them until the other side closes.
type holdServer struct {
	ln     *net.TCPListener
	active atomic.Int64
	wg     sync.WaitGroup
}

func startHold() (*holdServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &holdServer{ln: ln.(*net.TCPListener)}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := h.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			h.active.Add(1)
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer h.active.Add(-1)
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
				io.Copy(io.Discard, c) // until the client closes
			}()
		}
	}()
	return h, nil
}

func (h *holdServer) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

func (h *holdServer) close() {
	h.ln.Close()
	h.wg.Wait()
}

// waitIdle waits until the hold server holds at most n connections.
func (h *holdServer) waitActive(ctx context.Context, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for h.active.Load() > n {
		if time.Now().After(deadline) {
			return fmt.Errorf("hold server: %d connections open after %v, want %d", h.active.Load(), timeout, n)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// openIdle opens n connections to addr, each passing one byte each way, with
// a few dialers at once. It stops early once 50 have failed (out of
// descriptors, say) and returns the open ones and the first error.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, int, error) {
	var (
		mu       sync.Mutex
		conns    = make([]net.Conn, 0, n)
		failed   int
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				mu.Lock()
				stop := failed >= 50
				mu.Unlock()
				if stop {
					return
				}
				c, err := net.DialTimeout("tcp", addr, 3*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(5 * time.Second))
					var b [1]byte
					if _, err = c.Write([]byte{'x'}); err == nil {
						_, err = io.ReadFull(c, b[:])
					}
					c.SetDeadline(time.Time{})
					if err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns, failed, firstErr
}
