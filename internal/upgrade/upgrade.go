// Package upgrade hands a running `seamark server`'s listening sockets to a
// new binary: upgrade in place, no connection refused.
//
// The old process (Spawn) starts the new binary as its child with every
// listening socket it registered here (balancer ports, DNS UDP sockets and
// TCP listener, the HTTP API) passed by descriptor, fd 3 onwards, and the
// environment variable SEAMARK_UPGRADE naming which fd is which, plus two
// pipes: "ready" (child to parent) and "go" (parent to child). The new
// process takes each socket it is handed instead of binding (Listen,
// ListenPacket); it writes "ready" once its store snapshot is loaded and its
// roles serve, and waits for "go" before it campaigns for its balancer
// groups, so the old process can first freeze its own campaigns. A child
// that exits, or says nothing within the timeout, is killed and the old
// process serves on: the sockets never left it.
//
// It is a utility the roles take as an option (a nil *Sockets binds
// normally); it imports no role.
package upgrade

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Env names the environment variable that lists the inherited descriptors:
// "ready=3,go=4,api/127.0.0.1:9400=5,dns/tcp/127.0.0.1:53=6,
// dns/udp/127.0.0.1:53/0=7,lb/127.0.0.1:8080=8,etcd/stdin=9" (key=fd, comma
// separated; keys name the configured address, so a changed one binds anew).
const Env = "SEAMARK_UPGRADE"

// MaxSockets bounds the descriptors one upgrade passes (and the env var's
// entries a new process accepts).
const MaxSockets = 100000

// Sockets is the set of listening sockets a process serves on: the ones it
// inherited from its predecessor (taken once each by Listen/ListenPacket)
// and every one it opened, which Spawn passes on to its successor.
type Sockets struct {
	mu         sync.Mutex
	inherited  map[string]*os.File
	live       map[string]syscall.Conn
	ready, go_ *os.File
}

// FromEnv returns the sockets named by SEAMARK_UPGRADE (none when unset), and
// unsets it so the process's own children do not see it. upgraded says this
// process is a successor.
func FromEnv() (s *Sockets, upgraded bool, err error) {
	s = &Sockets{inherited: map[string]*os.File{}, live: map[string]syscall.Conn{}}
	v, ok := os.LookupEnv(Env)
	if !ok {
		return s, false, nil
	}
	os.Unsetenv(Env)
	spec, err := ParseSpec(v)
	if err != nil {
		return s, true, err
	}
	for k, fd := range spec {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), k)
		switch k {
		case "ready":
			s.ready = f
		case "go":
			s.go_ = f
		default:
			s.inherited[k] = f
		}
	}
	return s, true, nil
}

// ParseSpec parses SEAMARK_UPGRADE's value: key=fd entries, comma
// separated, each fd at least 3 and named once.
func ParseSpec(v string) (map[string]int, error) {
	entries := strings.Split(v, ",")
	if len(entries) > MaxSockets+3 {
		return nil, fmt.Errorf("%s has %d entries, more than %d", Env, len(entries), MaxSockets+3)
	}
	out := make(map[string]int, len(entries))
	seen := make(map[int]bool, len(entries))
	for _, e := range entries {
		if e == "" {
			continue
		}
		k, fdS, ok := strings.Cut(e, "=")
		fd, err := strconv.Atoi(fdS)
		if !ok || err != nil || fd < 3 || fd > 1<<24 || k == "" || len(k) > 256 {
			return nil, fmt.Errorf("%s: entry %q is not key=fd (fd 3 or more)", Env, e)
		}
		if _, dup := out[k]; dup || seen[fd] {
			return nil, fmt.Errorf("%s: entry %q repeats a key or descriptor", Env, e)
		}
		out[k], seen[fd] = fd, true
	}
	return out, nil
}

// Listen returns the inherited TCP listener named key, or else the one
// listen opens; either way it is passed on at the next upgrade.
func (s *Sockets) Listen(key string, listen func() (net.Listener, error)) (net.Listener, error) {
	if s == nil {
		return listen()
	}
	return adopt(s, key, net.FileListener, listen)
}

// ListenPacket is Listen for a UDP socket.
func (s *Sockets) ListenPacket(key string, listen func() (net.PacketConn, error)) (net.PacketConn, error) {
	if s == nil {
		return listen()
	}
	return adopt(s, key, net.FilePacketConn, listen)
}

// Adopt is Listen for a socket type of the caller's own (the balancer keeps
// bare descriptors in its epoll set): fromFile turns the inherited
// descriptor named key into one (it must duplicate what it keeps: the file
// is closed afterwards), open makes a new one when none was inherited. A T
// that is a syscall.Conn is passed on at the next upgrade; its RawConn's
// Control must fail once it is closed.
func Adopt[T any](s *Sockets, key string, fromFile func(*os.File) (T, error), open func() (T, error)) (T, error) {
	if s == nil {
		return open()
	}
	return adopt(s, key, fromFile, open)
}

// adopt turns the inherited descriptor named key into a socket with
// fromFile, or opens one with open when none was inherited, and keeps it to
// pass on at the next upgrade.
func adopt[T any](s *Sockets, key string, fromFile func(*os.File) (T, error), open func() (T, error)) (T, error) {
	s.mu.Lock()
	f := s.inherited[key]
	delete(s.inherited, key)
	s.mu.Unlock()
	var c T
	var err error
	if f != nil {
		c, err = fromFile(f)
		f.Close()
		if err != nil {
			err = fmt.Errorf("inherited socket %s: %w", key, err)
		}
	} else {
		c, err = open()
	}
	if err != nil {
		return c, err
	}
	if sc, ok := any(c).(syscall.Conn); ok {
		s.mu.Lock()
		s.live[key] = sc
		s.mu.Unlock()
	}
	return c, nil
}

// Pass registers another descriptor (not a socket: the embedded etcd's
// stdin pipe) for the next Spawn; Forget drops it again.
func (s *Sockets) Pass(key string, c syscall.Conn) {
	s.mu.Lock()
	s.live[key] = c
	s.mu.Unlock()
}

// Forget drops key from what the next Spawn passes on.
func (s *Sockets) Forget(key string) {
	s.mu.Lock()
	delete(s.live, key)
	s.mu.Unlock()
}

// Take returns the inherited descriptor named key as a file (nil when
// none), for the caller to own.
func (s *Sockets) Take(key string) *os.File {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.inherited[key]
	delete(s.inherited, key)
	return f
}

// Inherited reports how many inherited sockets have keys starting with
// prefix and are not yet taken (the DNS server asks how many UDP sockets it
// got).
func (s *Sockets) Inherited(prefix string) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.inherited {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// CloseUnused closes the inherited sockets nobody took (listeners removed
// from the config meanwhile) and returns their keys.
func (s *Sockets) CloseUnused() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, f := range s.inherited {
		f.Close()
		keys = append(keys, k)
	}
	s.inherited = map[string]*os.File{}
	sort.Strings(keys)
	return keys
}

// Ready tells the predecessor this process serves and waits for its "go"
// (it has frozen its group campaigns) up to timeout. Without a predecessor
// it returns at once.
func (s *Sockets) Ready(timeout time.Duration) error {
	if s == nil || s.ready == nil {
		return nil
	}
	_, err := s.ready.WriteString("ready\n")
	s.ready.Close()
	s.ready = nil
	if err != nil {
		return fmt.Errorf("tell the old process we are ready: %w", err)
	}
	if s.go_ == nil {
		return nil
	}
	defer func() { s.go_.Close(); s.go_ = nil }()
	_ = s.go_.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(s.go_).ReadString('\n')
	if err != nil || line != "go\n" {
		return fmt.Errorf("the old process did not hand over within %v (%q, %v)", timeout, line, err)
	}
	return nil
}

// dupLive duplicates every open registered socket (keys sorted); closed ones
// are forgotten.
func (s *Sockets) dupLive() (keys []string, fds []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sc := range s.live {
		rc, err := sc.SyscallConn()
		if err != nil {
			delete(s.live, k)
			continue
		}
		nfd := -1
		cerr := rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) })
		if cerr != nil || err != nil {
			delete(s.live, k) // closed
			continue
		}
		keys = append(keys, k)
		fds = append(fds, nfd)
	}
	return keys, fds
}

// Child is a successor started by Spawn.
type Child struct {
	Pid   int
	goW   *os.File
	exitc chan error
}

// Spawn starts exe with args and env (Env is added) and the registered
// sockets, and waits until it is ready, exits, or timeout passes; on the
// last two it is killed and the error says why. The sockets stay open in
// this process either way.
func (s *Sockets) Spawn(exe string, args, env []string, timeout time.Duration) (*Child, error) {
	keys, fds := s.dupLive()
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if len(fds) > MaxSockets {
		return nil, fmt.Errorf("upgrade: %d sockets, more than %d", len(fds), MaxSockets)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer readyR.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	// Raw descriptors, not os.File.Fd (which would put the shared sockets
	// in blocking mode under the running accept loops).
	files := []uintptr{0, 1, 2}
	var spec []string
	add := func(k string, fd uintptr) {
		spec = append(spec, fmt.Sprintf("%s=%d", k, len(files)))
		files = append(files, fd)
	}
	rrc, _ := readyW.SyscallConn()
	grc, _ := goR.SyscallConn()
	var readyFd, goFd uintptr
	_ = rrc.Control(func(fd uintptr) { readyFd = fd })
	_ = grc.Control(func(fd uintptr) { goFd = fd })
	add("ready", readyFd)
	add("go", goFd)
	for i, k := range keys {
		add(k, uintptr(fds[i]))
	}
	env = append(append([]string(nil), env...), Env+"="+strings.Join(spec, ","))
	pid, err := syscall.ForkExec(exe, append([]string{exe}, args...), &syscall.ProcAttr{Env: env, Files: files})
	readyW.Close()
	goR.Close()
	if err != nil {
		goW.Close()
		return nil, fmt.Errorf("upgrade: start %s: %w", exe, err)
	}
	proc, _ := os.FindProcess(pid)
	c := &Child{Pid: pid, goW: goW, exitc: make(chan error, 1)}
	go func() {
		st, err := proc.Wait()
		if err == nil {
			err = fmt.Errorf("exited: %v", st)
		}
		c.exitc <- err
	}()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(io.LimitReader(readyR, 64)).ReadString('\n')
		line <- l
	}()
	fail := func(why error) (*Child, error) {
		_ = proc.Kill()
		goW.Close()
		return nil, fmt.Errorf("upgrade: new binary %s (pid %d) %w; the old process serves on", exe, pid, why)
	}
	select {
	case l := <-line:
		if l == "ready\n" {
			return c, nil
		}
		select {
		case err := <-c.exitc:
			return fail(err)
		case <-time.After(time.Second):
			return fail(errors.New("closed its readiness pipe without saying ready"))
		}
	case err := <-c.exitc:
		return fail(err)
	case <-time.After(timeout):
		return fail(fmt.Errorf("was not ready within %v", timeout))
	}
}

// Go tells the child to go on (the old process froze its campaigns).
func (c *Child) Go() error {
	_, err := c.goW.WriteString("go\n")
	c.goW.Close()
	return err
}

// Exited delivers the child's exit (the old process logs it if the new one
// dies while the old one is still draining).
func (c *Child) Exited() <-chan error { return c.exitc }
