package lb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestProxyHeaderRoundTrip(t *testing.T) {
	tests := []struct{ src, dst string }{
		{"192.0.2.1:56324", "198.51.100.7:9001"},
		{"[2001:db8::1]:443", "[2001:db8::2]:9002"},
		{"192.0.2.1:1", "[2001:db8::2]:65535"}, // mixed families widen to IPv6
	}
	for _, v := range []string{"v1", "v2"} {
		for _, tc := range tests {
			t.Run(v+" "+tc.src, func(t *testing.T) {
				src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
				b := appendProxyHeader(nil, v, src, dst)
				payload := []byte("GET / HTTP/1.0\r\n\r\n")
				h, n, err := parseProxyHeader(append(b, payload...))
				if err != nil || n != len(b) {
					t.Fatalf("got n %d err %v, want %d", n, err, len(b))
				}
				wantSrc, wantDst := src, dst
				if src.Addr().Is4() != dst.Addr().Is4() {
					wantSrc = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
				}
				if h.Src != wantSrc || h.Dst != wantDst {
					t.Errorf("got %v -> %v, want %v -> %v", h.Src, h.Dst, wantSrc, wantDst)
				}
				// Every strict prefix is incomplete, never an error.
				for i := range len(b) {
					if _, _, err := parseProxyHeader(b[:i]); !errors.Is(err, errProxyShort) {
						t.Fatalf("prefix of %d bytes: got %v, want incomplete", i, err)
					}
				}
			})
		}
	}
}

func TestProxyHeaderKnownBytes(t *testing.T) {
	v1 := appendProxyHeader(nil, "v1", netip.MustParseAddrPort("192.0.2.1:56324"), netip.MustParseAddrPort("198.51.100.7:443"))
	if got, want := string(v1), "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"; got != want {
		t.Errorf("v1: got %q, want %q", got, want)
	}
	v2 := appendProxyHeader(nil, "v2", netip.MustParseAddrPort("192.0.2.1:56324"), netip.MustParseAddrPort("198.51.100.7:443"))
	want := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x07\xdc\x04\x01\xbb")
	if !bytes.Equal(v2, want) {
		t.Errorf("v2: got % x, want % x", v2, want)
	}
}

func TestProxyHeaderErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no header", "GET / HTTP/1.1\r\n"},
		{"v1 unknown proto", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"},
		{"v1 family mismatch", "PROXY TCP4 ::1 ::2 1 2\r\n"},
		{"v1 bad port", "PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n"},
		{"v1 leading zero port", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"},
		{"v1 missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"},
		{"v1 too long", "PROXY TCP4 " + string(bytes.Repeat([]byte("1"), 120))},
		{"v2 bad version", "\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c000000000000"},
		{"v2 short ipv4", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd"},
		{"v2 bad command", "\r\n\r\n\x00\r\nQUIT\n\x25\x11\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseProxyHeader([]byte(tc.in))
			if err == nil || errors.Is(err, errProxyShort) {
				t.Errorf("got %v, want an error", err)
			}
		})
	}
	// LOCAL and UNKNOWN keep the socket's addresses.
	for _, in := range []string{"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"} {
		h, n, err := parseProxyHeader([]byte(in))
		if err != nil || n != len(in) || h.Src.IsValid() {
			t.Errorf("%q: got %+v %d %v, want no addresses", in, h, n, err)
		}
	}
}

// TestReadProxyHeaderLeavesThePayload sends the header in pieces, with the
// payload right behind it, and checks that exactly the header is consumed.
func TestReadProxyHeaderLeavesThePayload(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			hdr := appendProxyHeader(nil, v, netip.MustParseAddrPort("[2001:db8::1]:1234"), netip.MustParseAddrPort("[2001:db8::2]:80"))
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				c.Write(hdr[:5])
				time.Sleep(20 * time.Millisecond)
				c.Write(hdr[5:20])
				time.Sleep(20 * time.Millisecond)
				c.Write(append(hdr[20:], "payload"...))
				time.Sleep(100 * time.Millisecond)
			}()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			rc, _ := c.(*net.TCPConn).SyscallConn()
			var r proxyRead
			var h proxyHeader
			var herr error
			if err := rc.Read(func(fd uintptr) bool {
				var done bool
				h, done, herr = r.step(int(fd))
				return done || herr != nil
			}); err != nil {
				t.Fatal(err)
			}
			if herr != nil || h.Src.String() != "[2001:db8::1]:1234" {
				t.Fatalf("got %+v, %v", h, herr)
			}
			buf := make([]byte, 7)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "payload" {
				t.Fatalf("payload: got %q, %v", buf, err)
			}
		})
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	for _, v := range []string{"v1", "v2"} {
		f.Add(appendProxyHeader(nil, v, netip.MustParseAddrPort("192.0.2.1:5"), netip.MustParseAddrPort("192.0.2.2:6")))
		f.Add(appendProxyHeader(nil, v, netip.MustParseAddrPort("[::1]:5"), netip.MustParseAddrPort("[::2]:6")))
	}
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0f000000000000\x03\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyHeader(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		if !h.Src.IsValid() {
			return
		}
		// What parses re-encodes to a header that parses to the same.
		v := "v2"
		if b[0] == 'P' {
			v = "v1"
		}
		again, m, err := parseProxyHeader(appendProxyHeader(nil, v, h.Src, h.Dst))
		if err != nil || m == 0 || again.Src.Port() != h.Src.Port() || again.Dst.Port() != h.Dst.Port() {
			t.Fatalf("re-encoding %+v: got %+v, %v", h, again, err)
		}
		_ = fmt.Sprint(again)
	})
}
