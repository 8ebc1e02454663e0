package seedtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Blackhole is a set of loopback addresses whose SYNs are dropped: each
// address has a listener whose accept queue is full and is never drained,
// and Linux drops a SYN to a listener with a full accept queue (whatever the
// syncookies setting), so a connect to it sees no answer at all, exactly as
// when a dead machine's address is still in DNS. No root is needed.
type Blackhole struct {
	lns     []net.Listener
	fillers []net.Conn
}

// NewBlackhole blackholes ip:port for every ip.
func NewBlackhole(ips []netip.Addr, port uint16) (*Blackhole, error) {
	b := &Blackhole{}
	for _, ip := range ips {
		if err := b.add(netip.AddrPortFrom(ip, port)); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

func (b *Blackhole) add(ap netip.AddrPort) error {
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("blackhole %s: %w", ap, err)
	}
	b.lns = append(b.lns, ln)
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	// Listening again only changes the backlog: 0 lets one connection wait
	// in the accept queue.
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), 0) }); err != nil {
		return err
	}
	if lerr != nil {
		return fmt.Errorf("blackhole %s: shrink backlog: %w", ap, lerr)
	}
	// Fill the queue: the first connection fits and is never accepted.
	c, err := net.DialTimeout("tcp", ap.String(), 2*time.Second)
	if err != nil {
		return fmt.Errorf("blackhole %s: fill accept queue: %w", ap, err)
	}
	b.fillers = append(b.fillers, c)
	// The next SYN must go unanswered.
	c, err = net.DialTimeout("tcp", ap.String(), 50*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("blackhole %s: accept queue did not fill (connections still answered)", ap)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return fmt.Errorf("blackhole %s: want an unanswered SYN, got %w", ap, err)
	}
	return nil
}

// Close releases every address.
func (b *Blackhole) Close() error {
	for _, c := range b.fillers {
		c.Close()
	}
	for _, ln := range b.lns {
		ln.Close()
	}
	b.fillers, b.lns = nil, nil
	return nil
}

// Loopbacks returns n addresses 127.0.third.start, 127.0.third.start+1, ...
func Loopbacks(third, start byte, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, third, start + byte(i)}))
	}
	return out
}

// ListenSamePort listens on ip:port on every ip with one port the kernel
// chose (free on all of them), as nodes of one service do on their own
// machines. It tries a few ports before giving up.
func ListenSamePort(ips []netip.Addr) ([]net.Listener, uint16, error) {
	var lastErr error
	for try := 0; try < 20; try++ {
		first, err := net.Listen("tcp", netip.AddrPortFrom(ips[0], 0).String())
		if err != nil {
			return nil, 0, err
		}
		port := uint16(first.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns, port, nil
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	return nil, 0, fmt.Errorf("no port free on all of %v: %w", ips, lastErr)
}

// FreePort returns a port free on every ip (nothing listens on it when it
// returns).
func FreePort(ips []netip.Addr) (uint16, error) {
	lns, port, err := ListenSamePort(ips)
	if err != nil {
		return 0, err
	}
	for _, ln := range lns {
		ln.Close()
	}
	return port, nil
}
