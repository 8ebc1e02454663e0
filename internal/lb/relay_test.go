package lb

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
)

// relayEnv is a balancer with one listener in front of an echo backend
// named "e" (in this process, or in its own with proc); it returns the
// listener's address.
func relayEnv(t testing.TB, proc bool) (*env, string) {
	t.Helper()
	e := newEnv(t)
	e.service("app")
	be := startBackendProc
	if !proc {
		be = func(t testing.TB, name string) *backendProc { return &backendProc{addr: echoBackend(t, name)} }
	}
	e.node("app", "e", be(t, "e").addr, 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "relay", Port: port, Service: "app"}))
	return e, fmt.Sprintf("127.0.0.1:%d", port)
}

// echoThrough sends payload through the balancer to the echo backend,
// half-closing after it, and returns everything that came back after the
// greeting. With lag, the client starts reading only after lag: the
// balancer's destinations fill up and it holds what they cannot take.
func echoThrough(t testing.TB, addr string, payload []byte, lag time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	time.Sleep(lag)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("e\n")) {
		t.Fatalf("no greeting: got %.20q", got)
	}
	return got[2:]
}

// waitIdle waits until the balancer counted every connection out and
// returns its listener's stats.
func waitIdle(t *testing.T, e *env) api.ListenerStats {
	t.Helper()
	var st api.ListenerStats
	waitFor(t, 10*time.Second, "every connection counted out", func() bool {
		st = e.lb.Stats()[0]
		return st.Active == 0
	})
	return st
}

// Every byte goes through both ways and to the end, in copy mode (small
// streams), once a stream turns bulk (spliced), and when the client reads
// late so that the balancer holds what its destination cannot take; the
// relays' byte counts are exact.
func TestRelayCopiesToTheEnd(t *testing.T) {
	e, addr := relayEnv(t, false)
	var sent uint64
	for _, tc := range []struct {
		name string
		size int
		lag  time.Duration
	}{
		{"empty", 0, 0},
		{"one byte", 1, 0},
		{"a buffer's worth", chunkSize, 0},
		{"a pipe's worth and one", 64<<10 + 1, 0},
		{"several chunks", 3<<20 + 7, 0},
		{"several chunks, read late", 8<<20 + 3, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.size)
			for i := range payload {
				payload[i] = byte(rand.N(256))
			}
			got := echoThrough(t, addr, payload, tc.lag)
			if !bytes.Equal(got, payload) {
				t.Errorf("got %d bytes back, want the %d sent", len(got), len(payload))
			}
			sent += uint64(tc.size)
			st := waitIdle(t, e)
			if st.BytesIn != sent || st.BytesOut != st.BytesIn+2*st.Total {
				t.Errorf("bytes: in %d, out %d; want in %d, out %d (the echo and each greeting)", st.BytesIn, st.BytesOut, sent, sent+2*st.Total)
			}
			if st.Resets != 0 {
				t.Errorf("resets: %d", st.Resets)
			}
		})
	}
}

// Without descriptors for a pipe, a bulk stream is copied through a buffer.
func TestRelayCopiesWhenNoPipeCanBeMade(t *testing.T) {
	for p, ok := pipes.Get().(*splicePipe); ok; p, ok = pipes.Get().(*splicePipe) {
		putPipe(p, false) // close the pooled ones
	}
	pipe2 = func([]int, int) error { return unix.EMFILE }
	// Put back after the balancer stopped (cleanups run last first).
	t.Cleanup(func() { pipe2 = unix.Pipe2 })
	_, addr := relayEnv(t, false)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if got := echoThrough(t, addr, payload, 100*time.Millisecond); !bytes.Equal(got, payload) {
		t.Errorf("got %d bytes, want the %d sent", len(got), len(payload))
	}
}

// A client's reset cuts its connection and is counted.
func TestRelayReportsAReset(t *testing.T) {
	e, addr := relayEnv(t, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, c); got != "e" {
		t.Fatalf("greeting %q", got)
	}
	echo(t, c, "x")
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if st := waitIdle(t, e); st.Resets != 1 {
		t.Errorf("resets: got %d, want 1", st.Resets)
	}
}

// Idle connections hold no pipe: io.Copy would hold one pipe (two
// descriptors) per direction for its whole life.
func TestIdleRelaysHoldNoPipe(t *testing.T) {
	const n = 50
	e, addr := relayEnv(t, true) // io.Copy in an in-process echo holds pipes
	pipes0 := countPipes(t)
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := readLine(t, c); got != "e" {
			t.Fatalf("greeting %q", got)
		}
		// A bulk stream through each, then idle.
		go c.Write(bytes.Repeat([]byte("x"), 256<<10))
		back := make([]byte, 256<<10)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Each loop keeps one pipe; those of the burst go once the pool is
	// emptied, and no idle connection holds one.
	waitFor(t, 5*time.Second, "the pool's pipes to close", func() bool {
		runtime.GC()
		return countPipes(t)-pipes0 < 2*len(e.lb.loops)+2
	})
	for _, c := range conns {
		c.(*net.TCPConn).CloseWrite()
		if _, err := io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, e)
}

func countPipes(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// BenchmarkRelay: one connection's round trips through the balancer.
func BenchmarkRelay(b *testing.B) {
	_, addr := relayEnv(b, false)
	for _, size := range []int{128, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var g [2]byte
			io.ReadFull(c, g[:])
			msg := make([]byte, size)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A client that speaks first has its first bytes sent with the connect
// (speculate); when that connect is refused they go to the next backend,
// whole and once.
func TestFirstBytesGoToTheBackendThatAnswers(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	e.node("app", "dead", refusingAddr(t), 5)
	e.node("app", "live", echoBackend(t, "live"), 1)
	port := freePorts(t, 1)[0]
	e.sync(e.listener(api.Listener{Name: "first", Port: port, Service: "app"}))
	for i := range 12 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hello %d\n", i)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "live\n"+msg {
			t.Fatalf("connection %d: got %q, %v; want the greeting and the echo", i, got, err)
		}
	}
	st := waitIdle(t, e)
	if st.ConnectRefused == 0 || st.Resets != 0 {
		t.Errorf("stats: %d connects refused (want some), %d resets (want none)", st.ConnectRefused, st.Resets)
	}
}
