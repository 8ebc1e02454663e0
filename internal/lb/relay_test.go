package lb

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestRelayCopiesToTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"a pipe's worth and one", 64<<10 + 1},
		{"several chunks", 3<<20 + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// client -> src ==relay==> dst -> server
			client, src := tcpPair(t)
			dst, server := tcpPair(t)
			payload := make([]byte, tc.size)
			for i := range payload {
				payload[i] = byte(rand.N(256))
			}
			go func() {
				client.Write(payload)
				client.CloseWrite()
			}()
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := relay(dst, src)
				dst.CloseWrite()
				done <- result{n, err}
			}()
			server.SetDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(server)
			if err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil || r.n != int64(tc.size) {
				t.Errorf("relay: got %d, %v; want %d, nil", r.n, r.err, tc.size)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("got %d bytes, want the %d sent", len(got), len(payload))
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
	defer func() { pipe2 = unix.Pipe2 }()
	client, src := tcpPair(t)
	dst, server := tcpPair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() {
		client.Write(payload)
		client.CloseWrite()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := relay(dst, src)
		dst.CloseWrite()
		done <- err
	}()
	server.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("relay: got %v, want nil", err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("got %d bytes, want the %d sent", len(got), len(payload))
	}
}

func TestRelayReportsAReset(t *testing.T) {
	client, src := tcpPair(t)
	dst, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := relay(dst, src)
		done <- err
	}()
	client.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
	client.SetLinger(0)
	client.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("relay after a reset: got nil, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after the source was reset")
	}
}

func TestRelayStopsWhenItsConnectionIsClosed(t *testing.T) {
	_, src := tcpPair(t)
	dst, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := relay(dst, src)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	src.Close() // what cut does
	select {
	case err := <-done:
		if err == nil {
			t.Error("relay on a closed connection: got nil, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after its connection was closed")
	}
}

// Idle relays hold no pipe: io.Copy would hold one pipe (two descriptors)
// per relay for its whole life.
func TestIdleRelaysHoldNoPipe(t *testing.T) {
	const n = 50
	pipes0 := countPipes(t)
	type pair struct{ client, server *net.TCPConn }
	var pairs []pair
	errs := make(chan error, n)
	for range n {
		client, src := tcpPair(t)
		dst, server := tcpPair(t)
		go func() {
			_, err := relay(dst, src)
			errs <- err
		}()
		pairs = append(pairs, pair{client, server})
	}
	// One byte through each, then idle.
	for _, p := range pairs {
		p.client.Write([]byte("x"))
		p.server.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		if _, err := io.ReadFull(p.server, b[:]); err != nil {
			t.Fatal(err)
		}
	}
	if got := countPipes(t) - pipes0; got >= n {
		t.Errorf("%d idle relays hold %d more pipe descriptors, want fewer than %d (a pool's few)", n, got, n)
	}
	for _, p := range pairs {
		p.client.CloseWrite()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("relay did not end at the source's end")
		}
	}
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

func BenchmarkRelay(b *testing.B) {
	for _, size := range []int{128, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			client, src := tcpPair(b)
			dst, server := tcpPair(b)
			go relay(dst, src)
			msg := make([]byte, size)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(server, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
