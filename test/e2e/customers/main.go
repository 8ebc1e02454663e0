// Command customers is the port-per-customer application of the end-to-end
// tests: -streams customers, each on its own port of -ports, stream data to
// the balancer group's name and read it back. A customer whose connection
// breaks resolves the name again (through -dns) and reconnects. It prints
// one JSON line per connection when it ends, and on SIGTERM every customer
// ends its stream cleanly (half close, read the rest) before it exits.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// conn is one connection's record.
type conn struct {
	Stream    int    `json:"stream"`
	Port      int    `json:"port"`
	Addr      string `json:"addr"`
	Start     int64  `json:"start"` // unix nanoseconds
	End       int64  `json:"end"`
	Sent      int64  `json:"sent"`
	Received  int64  `json:"received"`
	Clean     bool   `json:"clean"` // ended by the customer, every byte back
	Err       string `json:"err,omitempty"`
	Refused   int    `json:"refused"`   // refused connects before this one succeeded
	Reconnect int64  `json:"reconnect"` // ns from the previous connection's failure to this one's first echo
}

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func emit(c conn) {
	outMu.Lock()
	defer outMu.Unlock()
	out.Encode(c)
}

func main() {
	name := flag.String("name", "lb.cluster.test", "the balancer group's name")
	dnsServer := flag.String("dns", "", "DNS server (host:port)")
	ports := flag.String("ports", "20000-20099", "customer ports, FIRST-LAST")
	streams := flag.Int("streams", 100, "customers, each on its own port")
	chunk := flag.Int("chunk", 1024, "bytes per write")
	every := flag.Duration("every", 20*time.Millisecond, "pause between writes")
	flag.Parse()
	first, last, _ := strings.Cut(*ports, "-")
	lo, _ := strconv.Atoi(first)
	hi, _ := strconv.Atoi(last)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *dnsServer)
	}}
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; close(stop) }()
	var wg sync.WaitGroup
	for i := range *streams {
		port := lo + i*(hi-lo+1) / *streams
		wg.Add(1)
		go func() {
			defer wg.Done()
			customer(i, port, *name, r, *chunk, *every, stop)
		}()
	}
	wg.Wait()
}

func customer(id, port int, name string, r *net.Resolver, size int, every time.Duration, stop <-chan struct{}) {
	buf := bytes.Repeat([]byte{byte('a' + id%26)}, size)
	back := make([]byte, size)
	var failedAt time.Time
	refused := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addrs, err := r.LookupHost(ctx, name)
		cancel()
		if err != nil || len(addrs) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addrs[0], strconv.Itoa(port)), time.Second)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused++
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		rec := conn{Stream: id, Port: port, Addr: addrs[0], Start: time.Now().UnixNano(), Refused: refused}
		refused = 0
		first := true
		var cerr error
		for cerr == nil {
			select {
			case <-stop:
				// End cleanly: half close, everything sent must come back.
				c.(*net.TCPConn).CloseWrite()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := io.Copy(io.Discard, c)
				rec.Received += n
				rec.Clean = err == nil && rec.Received == rec.Sent
				if err != nil {
					rec.Err = err.Error()
				}
				rec.End = time.Now().UnixNano()
				c.Close()
				emit(rec)
				return
			default:
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Write(buf)
			rec.Sent += int64(n)
			if err == nil {
				var m int
				m, err = io.ReadFull(c, back)
				rec.Received += int64(m)
			}
			if err != nil {
				cerr = err
				break
			}
			if first && !failedAt.IsZero() {
				rec.Reconnect = int64(time.Since(failedAt))
			}
			first = false
			time.Sleep(every)
		}
		rec.End, rec.Err = time.Now().UnixNano(), fmt.Sprint(cerr)
		c.Close()
		emit(rec)
		failedAt = time.Now()
	}
}
