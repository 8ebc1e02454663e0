// Command udpio is an experiment for internal/dns's UDP workers: how much of
// a cached answer's cost is the per-packet I/O, and what batching it with
// recvmmsg/sendmmsg (golang.org/x/net/ipv4 ReadBatch/WriteBatch) would save.
//
//	go run ./bench/dns/udpio [-d 10s] [-rounds 2] [-sockets 2] [-batch 32] [-c 4]
//
// One responder answers run.sh's query mix from answers packed ahead of time
// (as internal/dns's worker cache does: key the question, copy, patch the ID),
// with its I/O done two ways, alternated in one run so machine noise falls on
// both alike:
//
//	single  one ReadFromUDPAddrPort and one WriteToUDPAddrPort per query
//	        (internal/dns/udp.go today)
//	batch   ReadBatch up to -batch packets (recvmmsg), answer them, then
//	        WriteBatch the answers (sendmmsg)
//
// Each mode gets -sockets SO_REUSEPORT sockets with one goroutine each.
// Traffic stays on 127.0.0.1; dnsperf is bounded by -l and a timeout.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/seamark/seamark/bench/dns/dnsload"
)

const zone = "bench.test."

func main() {
	n := flag.Int("n", 100, "services (3 nodes each)")
	dur := flag.Duration("d", 10*time.Second, "dnsperf run time per mode and round")
	rounds := flag.Int("rounds", 2, "rounds; each runs every mode once")
	sockets := flag.Int("sockets", 2, "SO_REUSEPORT sockets per mode")
	batch := flag.Int("batch", 32, "packets per recvmmsg/sendmmsg in batch mode")
	clients := flag.Int("c", 4, "dnsperf clients (-c)")
	modes := flag.String("modes", "single,batch", "modes to run, comma separated")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/dns/udpio: ")

	answers := packAnswers(*n)
	dir, err := os.MkdirTemp("", "seamark-dns-udpio")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	qfile := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qfile, []byte(dnsload.Queries(*n)), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("| round | mode | sockets | QPS | avg latency ms | server CPU (user+sys) | µs CPU per answer | syscalls per answer |\n|---|---|---|---|---|---|---|---|\n")
	for r := 1; r <= *rounds; r++ {
		for _, mode := range strings.Split(*modes, ",") {
			res, err := runMode(mode, answers, *sockets, *batch, qfile, *clients, *dur)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("| %d | %s | %d | %.0f | %.3f | %.2f s (%.0f %%) | %.2f | %.2f |\n", r, mode, *sockets, res.qps, res.latency*1000,
				res.cpu.Seconds(), 100*res.cpu.Seconds()/dur.Seconds(), res.cpu.Seconds()*1e6/max(res.completed, 1), float64(res.syscalls)/max(res.completed, 1))
		}
	}
}

type result struct {
	qps, latency, completed float64
	cpu                     time.Duration
	syscalls                int64
}

func runMode(mode string, answers map[string][]byte, sockets, batch int, qfile string, clients int, dur time.Duration) (result, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
		return errors.Join(err, serr)
	}}
	var conns []*net.UDPConn
	addr := "127.0.0.1:0"
	for range sockets {
		c, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			return result{}, err
		}
		uc := c.(*net.UDPConn)
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
		conns = append(conns, uc)
		addr = c.LocalAddr().String()
	}
	var calls sync.Map // per-socket *int64 syscall counts
	var wg sync.WaitGroup
	for i, c := range conns {
		cnt := new(int64)
		calls.Store(i, cnt)
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch mode {
			case "single":
				serveSingle(c, answers, cnt)
			case "batch":
				serveBatch(c, answers, batch, cnt)
			default:
				log.Fatalf("unknown mode %q", mode)
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	port := strconv.Itoa(int(netip.MustParseAddrPort(addr).Port()))
	base := []string{"-s", "127.0.0.1", "-p", port, "-d", qfile, "-c", strconv.Itoa(clients), "-n", "100000"}
	if _, err := dnsload.Dnsperf(append(base, "-l", "2"), 32*time.Second); err != nil { // warm-up
		return result{}, err
	}
	var c0 int64
	calls.Range(func(_, v any) bool { c0 += *v.(*int64); return true })
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	out, err := dnsload.Dnsperf(append(base, "-l", strconv.Itoa(max(int(dur/time.Second), 1))), dur+30*time.Second)
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	if err != nil {
		return result{}, err
	}
	var c1 int64
	calls.Range(func(_, v any) bool { c1 += *v.(*int64); return true })
	cpu := time.Duration(syscall.TimevalToNsec(r1.Utime) - syscall.TimevalToNsec(r0.Utime) + syscall.TimevalToNsec(r1.Stime) - syscall.TimevalToNsec(r0.Stime))
	return result{qps: dnsload.Stat(out, "Queries per second:"), latency: dnsload.Stat(out, "Average Latency (s):"), completed: dnsload.Stat(out, "Queries completed:"), cpu: cpu, syscalls: c1 - c0}, nil
}

// answer writes the cached answer to req into out and returns it, or nil.
// The counts are not atomic: each socket's goroutine owns its own.
func answer(answers map[string][]byte, key, out, req []byte) ([]byte, []byte) {
	if len(req) < 17 {
		return nil, key
	}
	key = key[:0]
	i := 12
	for i < len(req) && req[i] != 0 {
		l := int(req[i])
		if i+1+l > len(req) {
			return nil, key
		}
		for _, c := range req[i : i+1+l] {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		i += 1 + l
	}
	if i+5 > len(req) {
		return nil, key
	}
	key = append(key, 0, req[i+1], req[i+2])
	v := answers[string(key)]
	if v == nil {
		return nil, key
	}
	out = append(out[:0], v...)
	copy(out[0:2], req[0:2])
	copy(out[12:i], req[12:i])
	return out, key
}

func serveSingle(c *net.UDPConn, answers map[string][]byte, calls *int64) {
	buf := make([]byte, 65536)
	out := make([]byte, 0, 4096)
	key := make([]byte, 0, 300)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		*calls++
		if err != nil {
			return
		}
		var resp []byte
		if resp, key = answer(answers, key, out, buf[:n]); resp != nil {
			c.WriteToUDPAddrPort(resp, from)
			*calls++
		}
	}
}

func serveBatch(c *net.UDPConn, answers map[string][]byte, size int, calls *int64) {
	pc := ipv4.NewPacketConn(c)
	in := make([]ipv4.Message, size)
	out := make([]ipv4.Message, size)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
		out[i].Buffers = [][]byte{make([]byte, 0, 4096)}
	}
	key := make([]byte, 0, 300)
	for {
		n, err := pc.ReadBatch(in, 0)
		*calls++
		if err != nil {
			return
		}
		k := 0
		for _, m := range in[:n] {
			var resp []byte
			if resp, key = answer(answers, key, out[k].Buffers[0][:0], m.Buffers[0][:m.N]); resp != nil {
				out[k].Buffers[0] = resp
				out[k].Addr = m.Addr
				k++
			}
		}
		for sent := 0; sent < k; {
			w, err := pc.WriteBatch(out[sent:k], 0)
			*calls++
			if err != nil {
				return
			}
			sent += w
		}
	}
}

// packAnswers packs, with ID 0, every answer run.sh's query mix asks for,
// keyed by lower-case wire name, 0, qtype.
func packAnswers(n int) map[string][]byte {
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 5},
		Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 60, Retry: 10, Expire: 3600, Minttl: 5}
	m := map[string][]byte{}
	add := func(name string, qtype uint16, rcode int, ans []dns.RR, ns []dns.RR) {
		msg := new(dns.Msg)
		msg.SetQuestion(name, qtype)
		msg.Response, msg.Authoritative, msg.RecursionDesired, msg.Compress = true, true, true, true
		msg.Rcode, msg.Answer, msg.Ns = rcode, ans, ns
		b, err := msg.Pack()
		if err != nil {
			log.Fatal(err)
		}
		binary.BigEndian.PutUint16(b, 0)
		wire := make([]byte, 256)
		off, err := dns.PackDomainName(name, wire, 0, nil, false)
		if err != nil {
			log.Fatal(err)
		}
		key := append(wire[:off-1], 0, byte(qtype>>8), byte(qtype))
		m[string(key)] = b
	}
	a := func(name string, ip netip.Addr) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip.AsSlice()}
	}
	for i := 1; i <= n; i++ {
		s := fmt.Sprintf("svc%04d.%s", i, zone)
		var rrs []dns.RR
		for k := range 3 {
			rrs = append(rrs, a(s, netip.AddrFrom4([4]byte{127, byte(2 + k), byte(i / 256), byte(i % 256)})))
		}
		add(s, dns.TypeA, dns.RcodeSuccess, rrs, nil)
		node := fmt.Sprintf("svc%04d-a.node.%s", i, zone)
		add(node, dns.TypeA, dns.RcodeSuccess, []dns.RR{a(node, netip.AddrFrom4([4]byte{127, 2, byte(i / 256), byte(i % 256)}))}, nil)
		add(s, dns.TypeAAAA, dns.RcodeSuccess, nil, []dns.RR{soa})
		add("nx"+s, dns.TypeA, dns.RcodeNameError, nil, []dns.RR{soa})
	}
	return m
}
