package main

// Processes: starting the peers as children with their output in a file,
// stopping them by PID, and reading a process's CPU time, RSS and open
// descriptors from /proc.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/bench/internal/procstat"
)

// proc is a child process this program started.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logf   string
	exited chan struct{}
}

// startProc starts path with args, its stdout and stderr in dir/<name>.log.
// The child is killed if this program dies.
func startProc(dir, name, path string, args ...string) (*proc, error) {
	logf := filepath.Join(dir, name+".log")
	lf, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := execCommand(path, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logf: logf, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// execCommand is exec.Command for a child that dies with this program.
func execCommand(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// tail is the end of the process's own output, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logf)
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}

// stop ends the process by its PID: sig, then SIGKILL after 5 s.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return
	case <-time.After(5 * time.Second):
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// waitDial waits until addr accepts a TCP connection, the process exits, or
// timeout passes.
func (p *proc) waitDial(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start: %s", p.name, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not accepting after %v: %s", p.name, addr, timeout, p.tail())
		}
	}
}

// toolVersion runs path with args and returns the first line of its output.
func toolVersion(path string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, args...).CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(first)
}

// lookTools finds every program the benchmark runs, or names the missing
// Debian packages in one error.
func lookTools() (map[string]string, error) {
	paths := map[string]string{}
	var missing []string
	for _, t := range []struct{ bin, pkg string }{
		{"haproxy", "haproxy"}, {"nginx", "nginx"}, {"iperf3", "iperf3"}, {"wrk", "wrk"},
	} {
		p, err := exec.LookPath(t.bin)
		if err != nil {
			missing = append(missing, t.pkg)
			continue
		}
		paths[t.bin] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing programs: %s (install with: apt-get install -y %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return paths, nil
}

// cpuTime is a process's CPU time so far.
type cpuTime struct{ user, sys time.Duration }

func (c cpuTime) total() time.Duration { return c.user + c.sys }

func (c cpuTime) sub(o cpuTime) cpuTime { return cpuTime{c.user - o.user, c.sys - o.sys} }

// procCPU is a process's utime+stime (all its threads).
func procCPU(pid int) cpuTime {
	u, st := procstat.CPU(strconv.Itoa(pid))
	return cpuTime{user: u, sys: st}
}

// treeCPU is procCPU summed over pid and its descendants (nginx's workers).
func treeCPU(pid int) cpuTime {
	c := procCPU(pid)
	for _, child := range children(pid) {
		c2 := treeCPU(child)
		c.user += c2.user
		c.sys += c2.sys
	}
	return c
}

func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// selfCPU is this process's CPU time (getrusage RUSAGE_SELF).
func selfCPU() cpuTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}
	}
	return cpuTime{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

// exitedCPU is the CPU time of a finished child.
func exitedCPU(ps *os.ProcessState) cpuTime {
	if ps == nil {
		return cpuTime{}
	}
	return cpuTime{user: ps.UserTime(), sys: ps.SystemTime()}
}

// procRSS is VmRSS of /proc/<pid>/status in bytes.
func procRSS(pid int) uint64 { return procstat.RSS(strconv.Itoa(pid)) }

// fdCount is how many descriptors pid has open.
func fdCount(pid int) int {
	d, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(d)
}

// socketCount is how many sockets pid has open.
func socketCount(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	d, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, f := range d {
		if l, err := os.Readlink(dir + "/" + f.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// machineTime is what all cores did so far, from /proc/stat.
type machineTime struct {
	procs time.Duration // user, nice, system: processes and the kernel on their behalf
	irq   time.Duration // irq and softirq (on lo, much of TCP's receive work, charged to no process)
	idle  time.Duration // idle and iowait: no core had anything to run
}

func machineBusy() machineTime {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTime{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTime{}
	}
	v := func(i int) time.Duration {
		x, _ := strconv.ParseUint(f[i], 10, 64)
		return time.Duration(x) * 10 * time.Millisecond
	}
	// cpu user nice system idle iowait irq softirq steal ...
	return machineTime{procs: v(1) + v(2) + v(3) + v(8), irq: v(6) + v(7), idle: v(4) + v(5)}
}

func cpuPct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freeRange finds n consecutive ports on 127.0.0.1 below the ephemeral range
// (where port-0 listeners of other programs land) that are all free now.
func freeRange(addr string, n int) (int, error) {
	lo, hi := 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v-n > lo {
				hi = v
			}
		}
	}
	for base := hi - n - 500; base >= lo; base -= 250 {
		if err := rangeFree(addr, base, n); err == nil {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on %s between %d and %d (try another -many-addr)", n, addr, lo, hi)
}

func rangeFree(addr string, base, n int) error {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			if errors.Is(err, syscall.EMFILE) {
				return fmt.Errorf("checking ports: %w (raise the open-file limit)", err)
			}
			return err
		}
		lns = append(lns, ln)
	}
	return nil
}
