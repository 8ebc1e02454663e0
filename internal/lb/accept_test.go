package lb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/upgrade"
)

// TestAcceptedSocketsInheritNoDelay: the listening socket's TCP_NODELAY is
// what spares a setsockopt per accepted connection; this kernel must pass
// it on.
func TestAcceptedSocketsInheritNoDelay(t *testing.T) {
	fd, err := bindListener(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", sockaddrPort(sa).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var nfd int
	for {
		nfd, _, err = syscall.Accept4(fd, syscall.SOCK_CLOEXEC)
		if err != syscall.EAGAIN {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	v, err := unix.GetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || v == 0 {
		t.Fatalf("accepted socket: TCP_NODELAY %d, %v; want it inherited from the listening socket", v, err)
	}
}

// TestHandoverToSuccessor: a second balancer (the successor of an upgrade)
// takes a port's listening socket from the first one's descriptor instead
// of binding; the first hands off; clients connecting all along are never
// refused, and its open connection goes on until it ends.
func TestHandoverToSuccessor(t *testing.T) {
	old := newEnvWith(t, func(o *Options) { o.Handover, _, _ = upgrade.FromEnv() })
	old.service("app")
	old.node("app", "a", startBackendProc(t, "a").addr, 1)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	old.sync(old.listener(api.Listener{Name: "h", Port: port, Service: "app"}))
	if got, err := roundTrip(addr, "x", 5*time.Second); err != nil || got != "a" {
		t.Fatalf("before: %q, %v", got, err)
	}
	long, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	readLine(t, long)

	// What Spawn passes: a duplicate of the listening socket, named by key.
	var dup int
	old.lb.mu.Lock()
	for k, p := range old.lb.ports {
		p.lfd.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) })
		t.Setenv(upgrade.Env, fmt.Sprintf("lb/%s=%d", k.addr, dup))
	}
	old.lb.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	next := newEnvWith(t, func(o *Options) {
		var uerr error
		if o.Handover, _, uerr = upgrade.FromEnv(); uerr != nil {
			t.Fatal(uerr)
		}
	})
	next.service("app")
	next.node("app", "b", startBackendProc(t, "b").addr, 1)
	next.sync(next.listener(api.Listener{Name: "h", Port: port, Service: "app"}))
	if st := next.lb.Stats(); len(st) != 1 || st[0].State != api.ListenerListening {
		t.Fatalf("successor: %+v", st)
	}

	// Clients all along; the old one hands off in the middle.
	stop := make(chan struct{})
	var served, failed atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := roundTrip(addr, "x", 5*time.Second); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			} else {
				served.Add(1)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	handoff := make(chan error, 1)
	go func() { handoff <- old.lb.Handoff(hctx) }()
	time.Sleep(300 * time.Millisecond)
	for i := range 5 {
		if got, err := roundTrip(addr, "x", 5*time.Second); err != nil || got != "b" {
			t.Fatalf("after the handoff, client %d: %q, %v; want the successor's backend", i, got, err)
		}
	}
	close(stop)
	<-done
	if failed.Load() != 0 {
		t.Fatalf("%d of %d clients failed during the handover; first: %v", failed.Load(), failed.Load()+served.Load(), firstErr.Load())
	}
	// The old process's open connection still works, then ends the drain.
	echo(t, long, "still here\n")
	long.Close()
	if err := <-handoff; err != nil {
		t.Fatalf("handoff: %v", err)
	}
}
