package lb

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestDialRefusedIsRefused: a connect to a closed port fails as refused,
// never as a timeout, however fast the reset comes (the netpoller's
// readiness may arrive before the dialer starts waiting).
func TestDialRefusedIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	s := &Server{ctx: context.Background()}
	for i := range 300 {
		f, err := s.dial(a, 2*time.Second)
		if err == nil {
			f.Close()
			t.Fatalf("dial %d: connected to a closed port", i)
		}
		if k := connectFailure(err); k != failRefused {
			t.Fatalf("dial %d: got %v (kind %d), want refused", i, err, k)
		}
	}
}
