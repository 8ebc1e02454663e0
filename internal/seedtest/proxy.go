package seedtest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy stands in for a TCP load balancer: every connection it accepts goes
// to the next of its targets in turn, so one address leads to different
// nodes, as behind a cloud balancer.
type Proxy struct {
	ln      net.Listener
	targets []string
	next    atomic.Uint64
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup

	// Accepted counts the connections the proxy accepted.
	Accepted atomic.Int64
}

// NewProxy forwards connections accepted on ln to targets (host:port),
// round robin, until Close.
func NewProxy(ln net.Listener, targets ...string) *Proxy {
	p := &Proxy{ln: ln, targets: targets, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.Accepted.Add(1)
		target := p.targets[int(p.next.Add(1)-1)%len(p.targets)]
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			defer c.Close()
			b, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				return
			}
			p.track(b, true)
			defer p.track(b, false)
			defer b.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(b, c)
				b.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, b)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// Addr is the proxy's address.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops the proxy and cuts its connections.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
