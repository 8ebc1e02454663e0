package main

// The targets: a child process (this binary run again with childFlag) that
// listens on n loopback addresses with one common port and accepts and closes
// every connection. Being a separate process, its CPU and descriptors are not
// counted against the checker under test. It also measures, from the target's
// side, how regularly each address is probed: the time between two accepted
// connections on the same listener, minus the 1 s interval. That figure means
// the same thing for seamark and for HAProxy.
//
// Protocol on the child's stdin/stdout, one line each:
//
//	child -> parent  "ready <port>" once listening, or "error <message>"
//	parent -> child  "reset"  start a new measurement (answers "ok")
//	parent -> child  "stats"  answers one JSON line (targetStats)
//	stdin closed     the child exits

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	childFlag = "-bench-health-targets" // hidden: run as the targets child
	// maxTargets is how many addresses 127.1.x.y (y in 1..254) there are.
	maxTargets = 256 * 254
)

// targetAddr is the address of target i: 127.1.x.y, skipping .0 and .255.
func targetAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 254), byte(i%254 + 1)})
}

// raiseNoFile lifts the soft open-file limit to the hard one and returns both.
func raiseNoFile() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", r.Max, err)
		}
	}
	return r.Cur, r.Max, nil
}

// durHist is a histogram of durations, safe for concurrent use: 10 µs
// buckets up to 100 ms, then 1 ms buckets up to 3 s, then one for the rest.
// It is small (100 KB) and fixed, so recording does not grow the heap of the
// process being measured.
type durHist struct {
	buckets [fineBuckets + coarseBuckets + 1]atomic.Uint64
	n       atomic.Uint64
	sumNs   atomic.Int64
}

const (
	fineWidth     = 10 * time.Microsecond
	fineBuckets   = int(100 * time.Millisecond / fineWidth)
	coarseWidth   = time.Millisecond
	coarseBuckets = int((3*time.Second - 100*time.Millisecond) / coarseWidth)
)

func (h *durHist) add(d time.Duration) {
	var b int
	switch {
	case d < 0:
		b = 0
	case d < 100*time.Millisecond:
		b = int(d / fineWidth)
	default:
		b = min(fineBuckets+int((d-100*time.Millisecond)/coarseWidth), fineBuckets+coarseBuckets)
	}
	h.buckets[b].Add(1)
	h.n.Add(1)
	h.sumNs.Add(int64(d))
}

func (h *durHist) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.n.Store(0)
	h.sumNs.Store(0)
}

func (h *durHist) count() uint64 { return h.n.Load() }

func (h *durHist) mean() time.Duration {
	if n := h.n.Load(); n > 0 {
		return time.Duration(h.sumNs.Load() / int64(n))
	}
	return 0
}

// quantile returns the upper bound of the bucket holding quantile q, or -1
// when it lies beyond 3 s.
func (h *durHist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := max(uint64(q*float64(n)+0.5), 1)
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		if cum >= want {
			switch {
			case i < fineBuckets:
				return time.Duration(i+1) * fineWidth
			case i < fineBuckets+coarseBuckets:
				return 100*time.Millisecond + time.Duration(i-fineBuckets+1)*coarseWidth
			}
			return -1
		}
	}
	return -1
}

// spacing records how far the interval between two probes of one target is
// from 1 s, and the mean interval.
type spacing struct {
	gen   atomic.Int64 // bumped by reset; intervals across a reset are dropped
	dev   durHist      // |interval - 1s|
	sumNs atomic.Int64 // of intervals
}

func (s *spacing) reset() {
	s.gen.Add(1)
	s.dev.reset()
	s.sumNs.Store(0)
}

func (s *spacing) add(interval time.Duration) {
	s.dev.add((interval - time.Second).Abs())
	s.sumNs.Add(int64(interval))
}

func (s *spacing) mean() time.Duration {
	if n := s.dev.count(); n > 0 {
		return time.Duration(s.sumNs.Load() / int64(n))
	}
	return 0
}

// bursts counts probe starts per 10 ms since a reset, to show whether
// probes are spread evenly (n/100 per bin at a 1 s interval) or come in
// clumps. It covers 10 minutes; later starts are not counted.
type bursts struct {
	origin atomic.Int64 // ns; 0 until the first start after a reset
	bins   [60000]atomic.Uint32
	last   atomic.Int64 // highest bin used
}

const binWidth = 10 * time.Millisecond

func (b *bursts) reset() {
	b.origin.Store(0)
	for i := range b.bins {
		b.bins[i].Store(0)
	}
	b.last.Store(0)
}

func (b *bursts) add(ns int64) {
	o := b.origin.Load()
	if o == 0 {
		b.origin.CompareAndSwap(0, ns)
		o = b.origin.Load()
	}
	i := (ns - o) / int64(binWidth)
	if i < 0 || i >= int64(len(b.bins)) {
		return
	}
	b.bins[i].Add(1)
	for {
		l := b.last.Load()
		if i <= l || b.last.CompareAndSwap(l, i) {
			return
		}
	}
}

// summary returns the mean, p99 and max of starts per 10 ms bin, over the
// complete bins.
func (b *bursts) summary() burstStats {
	n := int(b.last.Load()) // the last bin is partial: left out
	if n == 0 {
		return burstStats{}
	}
	counts := make([]int, n)
	sum := 0
	for i := range n {
		counts[i] = int(b.bins[i].Load())
		sum += counts[i]
	}
	slices.Sort(counts)
	return burstStats{Mean: float64(sum) / float64(n), P99: counts[min(n-1, n*99/100)], Max: counts[n-1], Bins: n}
}

type burstStats struct {
	Mean     float64 `json:"mean"`
	P99, Max int
	Bins     int `json:"bins"`
}

// targetStats is the child's answer to "stats".
type targetStats struct {
	// Source of the intervals: "syn" (each probe's SYN, timestamped by the
	// kernel, seen by a packet socket on lo) or "accept" when no packet
	// socket could be opened. HAProxy's checks reset before the handshake
	// completes, so only SYNs show them.
	Source    string        `json:"source"`
	SYNs      uint64        `json:"syns"`
	Accepts   uint64        `json:"accepts"`
	Intervals uint64        `json:"intervals"`
	Mean      time.Duration `json:"mean"`
	P50, P99  time.Duration // of |interval - 1s|, bucket upper bounds
	Bursts    burstStats    // SYNs per 10 ms
}

// serveTargets is the child's main.
func serveTargets(args []string) {
	n, err := strconv.Atoi(strings.TrimSpace(strings.Join(args, "")))
	if err != nil || n < 1 || n > maxTargets {
		fmt.Printf("error targets: want a count of 1..%d, got %q\n", maxTargets, args)
		os.Exit(2)
	}
	if err := runTargets(n, os.Stdin, os.Stdout); err != nil {
		fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

func runTargets(n int, in io.Reader, out io.Writer) error {
	soft, hard, err := raiseNoFile()
	if err != nil {
		return err
	}
	// Stay below the ephemeral range, so no client socket of the machine can
	// hold our port by chance.
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				low = v
			}
		}
	}
	var ls []net.Listener
	var port int
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			return fmt.Errorf("targets: no port free on all %d addresses after %d tries", n, attempt)
		}
		port = 10000 + rand.IntN(low-10000)
		ls, err = listenAll(n, port)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return fmt.Errorf("targets: %w: %d listeners need at least %d descriptors, RLIMIT_NOFILE is soft %d hard %d; run with a smaller -n or raise the hard limit", err, n, n+64, soft, hard)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("targets: %w", err)
		}
	}
	sp := &spacing{}
	var accepts, syns atomic.Uint64
	source := "syn"
	bu := &bursts{}
	capErr := captureSYNs(n, port, sp, bu, &syns)
	if capErr != nil {
		source = "accept"
		fmt.Fprintf(os.Stderr, "targets: no SYN capture (%v); probe intervals are taken from accepted connections, which HAProxy's checks never complete\n", capErr)
	}
	for _, l := range ls {
		go func() {
			var last time.Time
			gen := sp.gen.Load()
			for {
				c, err := l.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off
					continue
				}
				now := time.Now()
				c.Close()
				accepts.Add(1)
				if source != "accept" {
					continue
				}
				if g := sp.gen.Load(); g != gen {
					gen, last = g, time.Time{}
				}
				if !last.IsZero() {
					sp.add(now.Sub(last))
				}
				last = now
			}
		}()
	}
	var mu sync.Mutex
	reply := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	reply("ready %d", port)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "reset":
			sp.reset()
			accepts.Store(0)
			syns.Store(0)
			bu.reset()
			reply("ok")
		case "stats":
			st := targetStats{Source: source, SYNs: syns.Load(), Accepts: accepts.Load(),
				Intervals: sp.dev.count(), Mean: sp.mean(), P50: sp.dev.quantile(0.5), P99: sp.dev.quantile(0.99), Bursts: bu.summary()}
			b, _ := json.Marshal(st)
			reply("%s", b)
		default:
			reply("error unknown command %q", sc.Text())
		}
	}
	for _, l := range ls {
		l.Close()
	}
	return nil
}

// synSocket opens a packet socket on lo that sees every SYN to port (a BPF
// filter drops the rest in the kernel), with the kernel's receive
// timestamps.
func synSocket(port int) (int, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return -1, err
	}
	const ethPIP = 0x0800
	proto := int(ethPIP>>8 | (ethPIP&0xff)<<8) // htons
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	const (
		ldAbsB, ldAbsH = 0x30, 0x28 // BPF_LD|BPF_B|BPF_ABS, BPF_LD|BPF_H|BPF_ABS
		ldIndB, ldIndH = 0x50, 0x48 // BPF_LD|BPF_B|BPF_IND, BPF_LD|BPF_H|BPF_IND
		ldxMSH         = 0xb1       // BPF_LDX|BPF_B|BPF_MSH
		jeq, jset      = 0x15, 0x45 // BPF_JMP|BPF_JEQ|BPF_K, BPF_JMP|BPF_JSET|BPF_K
		and, ret       = 0x54, 0x06 // BPF_ALU|BPF_AND|BPF_K, BPF_RET|BPF_K
	)
	prog := []syscall.SockFilter{ // offsets from the IP header (SOCK_DGRAM)
		{Code: ldAbsB, K: 9},                // 0: protocol
		{Code: jeq, K: 6, Jf: 9},            // 1: tcp, else drop
		{Code: ldAbsH, K: 6},                // 2: flags and fragment offset
		{Code: jset, K: 0x1fff, Jt: 7},      // 3: a later fragment: drop
		{Code: ldxMSH, K: 0},                // 4: x = IP header length
		{Code: ldIndH, K: 2},                // 5: destination port
		{Code: jeq, K: uint32(port), Jf: 4}, // 6: ours, else drop
		{Code: ldIndB, K: 13},               // 7: tcp flags
		{Code: and, K: 0x12},                // 8: SYN|ACK bits
		{Code: jeq, K: 0x02, Jf: 1},         // 9: SYN alone, else drop
		{Code: ret, K: 64},                  // 10: keep 64 bytes
		{Code: ret, K: 0},                   // 11: drop
	}
	if err := syscall.AttachLsf(fd, prog); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("attach filter: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind packet socket to lo: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soTimestampNS, 1); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<20)
	return fd, nil
}

const soTimestampNS = 35 // SO_TIMESTAMPNS, also the control message's type

// readSYN reads the next SYN from a synSocket: the destination address and
// the kernel's receive time (ns). ok is false for a packet to skip.
func readSYN(fd int, buf, oob []byte) (dst [4]byte, ts int64, ok bool, err error) {
	nb, oobn, _, from, err := syscall.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return dst, 0, false, err
	}
	if ll, isLL := from.(*syscall.SockaddrLinklayer); !isLL || ll.Pkttype != syscall.PACKET_HOST {
		return dst, 0, false, nil // lo shows each packet twice: outgoing and received
	}
	if nb < 20 || buf[9] != 6 {
		return dst, 0, false, nil
	}
	copy(dst[:], buf[16:20])
	if cms, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cms {
			if cm.Header.Level == syscall.SOL_SOCKET && cm.Header.Type == soTimestampNS && len(cm.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(cm.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(cm.Data[8:16]))
				ts = sec*1e9 + nsec
			}
		}
	}
	if ts == 0 {
		ts = time.Now().UnixNano()
	}
	return dst, ts, true, nil
}

// captureSYNs feeds the interval between two SYNs to the same target into
// sp, from the kernel's receive timestamps (synSocket).
func captureSYNs(n, port int, sp *spacing, bu *bursts, syns *atomic.Uint64) error {
	fd, err := synSocket(port)
	if err != nil {
		return err
	}
	go func() {
		last := make([]int64, n) // kernel time of the last SYN per target, ns
		gen := sp.gen.Load()
		buf := make([]byte, 128)
		oob := make([]byte, 128)
		for {
			dst, ts, ok, err := readSYN(fd, buf, oob)
			if err != nil {
				if err == syscall.EINTR {
					continue
				}
				fmt.Fprintf(os.Stderr, "targets: SYN capture: %v\n", err)
				return
			}
			if !ok || dst[0] != 127 || dst[1] != 1 || dst[3] == 0 || dst[3] == 255 {
				continue
			}
			i := int(dst[2])*254 + int(dst[3]) - 1
			if i >= n {
				continue
			}
			syns.Add(1)
			bu.add(ts)
			if g := sp.gen.Load(); g != gen {
				gen = g
				clear(last)
			}
			if last[i] != 0 {
				sp.add(time.Duration(ts - last[i]))
			}
			last[i] = ts
		}
	}()
	return nil
}

// listenAll listens on port at every target address, or on none.
func listenAll(n, port int) ([]net.Listener, error) {
	ls := make([]net.Listener, 0, n)
	for i := range n {
		l, err := net.Listen("tcp4", netip.AddrPortFrom(targetAddr(i), uint16(port)).String())
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// targets is the parent's handle on the child.
type targets struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // the child's stdout, closed when it ends
	port  int
	n     int
}

// startTargets runs the child and waits until it listens.
func startTargets(n int, timeout time.Duration) (*targets, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start targets: %w", err)
	}
	cmd := exec.Command(exe, childFlag, strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start targets: %w", err)
	}
	t := &targets{cmd: cmd, in: in, lines: make(chan string, 16), n: n}
	go func() {
		defer close(t.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			t.lines <- sc.Text()
		}
	}()
	line, err := t.readLine(timeout)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("start targets: %w", err)
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		t.close()
		return nil, errors.New(msg)
	}
	p, ok := strings.CutPrefix(line, "ready ")
	if t.port, err = strconv.Atoi(p); !ok || err != nil {
		t.close()
		return nil, fmt.Errorf("start targets: unexpected line %q", line)
	}
	return t, nil
}

func (t *targets) pid() int { return t.cmd.Process.Pid }

// readLine reads one line from the child within timeout.
func (t *targets) readLine(timeout time.Duration) (string, error) {
	select {
	case line, ok := <-t.lines:
		if !ok {
			return "", errors.New("targets child ended")
		}
		return line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("targets child did not answer within %v", timeout)
	}
}

func (t *targets) command(cmd string) (string, error) {
	if _, err := fmt.Fprintln(t.in, cmd); err != nil {
		return "", fmt.Errorf("targets %s: %w", cmd, err)
	}
	return t.readLine(10 * time.Second)
}

func (t *targets) reset() error {
	line, err := t.command("reset")
	if err == nil && line != "ok" {
		err = fmt.Errorf("targets reset: %s", line)
	}
	return err
}

func (t *targets) stats() (targetStats, error) {
	var st targetStats
	line, err := t.command("stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return st, fmt.Errorf("targets stats %q: %w", line, err)
	}
	return st, nil
}

// close ends the child: stdin closed, then killed by its PID.
func (t *targets) close() {
	t.in.Close()
	done := make(chan struct{})
	go func() { t.cmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(3 * time.Second):
	}
	t.cmd.Process.Kill()
	<-done
}
