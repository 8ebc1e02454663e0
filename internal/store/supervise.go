package store

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The embedded etcd as a supervised child process.
//
// etcd ends its process on trouble seamark's readers must survive: a failed
// write-ahead-log write on a full disk, a file purge that hits "too many open
// files", a bbolt error (a panic in one of its goroutines). Run in the
// server's process, any of them would take DNS, the balancer and the last
// verdicts down with the store. So `seamark server` runs its embedded etcd as
// a child of the same binary (`seamark __etcd`, a hidden verb): the child
// dies alone, the server keeps serving its last snapshot, writes fail with
// ErrUnavailable, and the supervisor starts the child again with backoff
// (0.2 s doubling to 5 s, with jitter) on the same ports and data. The child
// has the kernel kill it when the server dies (Pdeathsig) and stops when its
// stdin closes.

// MinFreeSpace is the space the embedded etcd needs free in its data
// directory to start: its write-ahead log is preallocated in 64 MiB segments.
const MinFreeSpace = 64 << 20

// checkSpace refuses to start etcd on a file system with less than
// MinFreeSpace free, in one line that says what to do.
func checkSpace(dir string) error {
	free, ok := freeBytes(dir)
	if ok && free < MinFreeSpace {
		return fmt.Errorf("open store: only %d MiB free in %s, the embedded etcd needs %d MiB: free some space or choose another data_dir",
			free>>20, dir, MinFreeSpace>>20)
	}
	return nil
}

// Supervisor pacing.
const (
	childReadyTimeout = 30 * time.Second
	childStopTimeout  = 15 * time.Second
	restartFirst      = 200 * time.Millisecond
	restartMax        = 5 * time.Second
	// A child that ran this long resets the backoff.
	restartStable = 30 * time.Second
)

type supervisor struct {
	argv []string // the command that runs a child, with its flags
	log  *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	adopted  *adoptedChild // a predecessor's child (upgrade in place), while cmd is nil
	released bool          // handed over to a successor process: Close leaves it
	stdin    *os.File      // closing it stops the child
	started  time.Time
	down     string // why no child runs; "" while one does
	stopping bool
	restarts int
	// onRestart runs after a new child serves.
	onRestart func()

	stop chan struct{}
	done chan struct{}
}

// startSupervised starts the first child and waits until it serves; a child
// that cannot start is an error. It returns the child's client URL.
func startSupervised(ctx context.Context, o Options, log *slog.Logger) (*supervisor, string, error) {
	if o.DataDir == "" {
		return nil, "", errors.New("open store: embedded etcd needs a data directory")
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("open store: create data directory: %w", err)
	}
	if err := checkSpace(o.DataDir); err != nil {
		return nil, "", err
	}
	// Both ports are fixed now, so every restart serves the same URLs and
	// the client finds the new child without being told.
	clientURL, err := loopbackURL(o.ClientAddr, "127.0.0.1:9479", true)
	if err != nil {
		return nil, "", fmt.Errorf("open store: etcd client address: %w", err)
	}
	peerURL, err := loopbackURL(o.PeerAddr, "127.0.0.1:9480", true)
	if err != nil {
		return nil, "", fmt.Errorf("open store: etcd peer address: %w", err)
	}
	argv := append(append([]string(nil), o.EtcdCommand...),
		"--data-dir", o.DataDir, "--client-addr", clientURL.Host, "--peer-addr", peerURL.Host)
	sv := &supervisor{argv: argv, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	ep, err := sv.spawn(ctx)
	if err != nil {
		return nil, "", err
	}
	go sv.run()
	return sv, ep, nil
}

// spawn starts one child and waits for its first line: "ready <url>" or
// "error: <why>".
func (sv *supervisor) spawn(ctx context.Context) (string, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("open store: start embedded etcd: %w", err)
	}
	defer outR.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return "", fmt.Errorf("open store: start embedded etcd: %w", err)
	}
	cmd := exec.Command(sv.argv[0], sv.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	outW.Close()
	inR.Close()
	if err != nil {
		inW.Close()
		return "", fmt.Errorf("open store: start embedded etcd (%s): %w", sv.argv[0], err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, outR)
	}()
	fail := func(err error) (string, error) {
		inW.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", err
	}
	select {
	case l, ok := <-line:
		if ep, isReady := strings.CutPrefix(l, "ready "); ok && isReady {
			sv.mu.Lock()
			sv.cmd, sv.adopted, sv.stdin, sv.started, sv.down = cmd, nil, inW, time.Now(), ""
			sv.mu.Unlock()
			return ep, nil
		}
		if msg, isErr := strings.CutPrefix(l, "error: "); isErr {
			return fail(errors.New(msg))
		}
		inW.Close()
		werr := cmd.Wait()
		return "", fmt.Errorf("open store: embedded etcd exited before it was ready: %v", werr)
	case <-time.After(childReadyTimeout):
		return fail(fmt.Errorf("open store: embedded etcd not ready after %v", childReadyTimeout))
	case <-ctx.Done():
		return fail(fmt.Errorf("open store: %w", ctx.Err()))
	}
}

// run waits for the child and starts a new one whenever it dies, until
// close.
func (sv *supervisor) run() {
	defer close(sv.done)
	backoff := restartFirst
	for {
		sv.mu.Lock()
		cmd, adopted, started := sv.cmd, sv.adopted, sv.started
		sv.mu.Unlock()
		var werr error
		if cmd != nil {
			werr = cmd.Wait()
		} else {
			werr = adopted.wait()
		}
		sv.mu.Lock()
		released := sv.released
		sv.mu.Unlock()
		if released {
			return // the successor supervises it now
		}
		sv.mu.Lock()
		stopping := sv.stopping
		sv.stdin.Close()
		if !stopping {
			sv.down = fmt.Sprintf("embedded etcd exited (%v); restarting", werr)
		}
		sv.mu.Unlock()
		if stopping {
			return
		}
		if time.Since(started) > restartStable {
			backoff = restartFirst
		}
		sv.log.Error("embedded etcd exited; the last snapshot is served and writes fail until it is back", "err", werr, "restart_in", backoff)
		for {
			// Full jitter on the upper half: restarts of several servers
			// on one disk do not line up.
			wait := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-sv.stop:
				return
			case <-time.After(wait):
			}
			backoff = min(backoff*2, restartMax)
			err := checkSpaceOf(sv.argv)
			var ep string
			if err == nil {
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					select {
					case <-sv.stop:
					case <-ctx.Done():
					}
					cancel()
				}()
				ep, err = sv.spawn(ctx)
				cancel()
			}
			if err == nil {
				sv.mu.Lock()
				sv.restarts++
				stopping := sv.stopping
				sv.mu.Unlock()
				sv.log.Warn("embedded etcd restarted", "endpoint", ep)
				sv.mu.Lock()
				on := sv.onRestart
				sv.mu.Unlock()
				if on != nil {
					on()
				}
				if stopping {
					sv.mu.Lock()
					sv.stdin.Close()
					c := sv.cmd
					sv.mu.Unlock()
					_ = c.Wait()
					return
				}
				break
			}
			sv.mu.Lock()
			sv.down = err.Error()
			sv.mu.Unlock()
			sv.log.Error("embedded etcd could not start; trying again", "err", err, "next_in", backoff)
		}
	}
}

// checkSpaceOf checks the data directory named in a child's command line.
func checkSpaceOf(argv []string) error {
	for i, a := range argv {
		if a == "--data-dir" && i+1 < len(argv) {
			return checkSpace(argv[i+1])
		}
	}
	return nil
}

func (sv *supervisor) setOnRestart(fn func()) {
	sv.mu.Lock()
	sv.onRestart = fn
	sv.mu.Unlock()
}

// Down says why the child is not serving, or "" when it is.
func (sv *supervisor) Down() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.down
}

// pid is the running child's process ID (tests kill it).
func (sv *supervisor) pid() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil {
		return sv.adopted.pid
	}
	return sv.cmd.Process.Pid
}

// Close stops the child in order (its stdin closes) and waits for it; one
// that does not stop in time is killed.
func (sv *supervisor) Close() {
	sv.mu.Lock()
	if sv.released {
		sv.mu.Unlock()
		return // a successor process supervises the child
	}
	if sv.stopping {
		sv.mu.Unlock()
		<-sv.done
		return
	}
	sv.stopping = true
	sv.stdin.Close()
	sv.mu.Unlock()
	close(sv.stop)
	select {
	case <-sv.done:
	case <-time.After(childStopTimeout):
		sv.mu.Lock()
		sv.killLocked()
		sv.mu.Unlock()
		<-sv.done
	}
}

// RunChild is `seamark __etcd`: it runs the embedded etcd the server
// supervises, prints "ready <client url>" (or "error: <why>") on stdout, and
// serves until its stdin closes or it gets SIGTERM. Its log lines go to
// stderr in the server's format.
func RunChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("__etcd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "data directory")
	clientAddr := fs.String("client-addr", "", "client listener host:port")
	peerAddr := fs.String("peer-addr", "", "peer listener host:port")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h).With("component", "store", "process", "etcd")
	// The server stops the child; a terminal's signals are the server's.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGUSR2)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var closing atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), childReadyTimeout)
	e, ep, _, err := startEmbedded(ctx, Options{DataDir: *dataDir, ClientAddr: *clientAddr, PeerAddr: *peerAddr}, log, &closing, false)
	cancel()
	if err != nil {
		fmt.Fprintln(stdout, "error: "+err.Error())
		return 1
	}
	fmt.Fprintln(stdout, "ready "+ep)
	eof := make(chan struct{})
	go func() {
		// "detach" and "attach" (upgrade in place): outlive the server
		// for its successor to adopt, or not. Anything else is ignored.
		sc := bufio.NewScanner(io.LimitReader(stdin, 1<<20))
		for sc.Scan() {
			switch sc.Text() {
			case "detach":
				setDeathSignal(0)
				log.Info("detached: the server's successor adopts this etcd")
			case "attach":
				setDeathSignal(syscall.SIGKILL)
			}
		}
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	code := 0
	select {
	case <-eof:
	case <-term:
	case err := <-e.Err():
		log.Error("embedded etcd failed", "err", err)
		code = 1
	case <-e.Server.StopNotify():
		log.Error("embedded etcd stopped on its own")
		code = 1
	}
	closing.Store(true)
	e.Close()
	return code
}

// killLocked kills the running child (sv.mu held).
func (sv *supervisor) killLocked() {
	if sv.cmd != nil {
		_ = sv.cmd.Process.Kill()
	} else if sv.adopted != nil {
		_ = syscall.Kill(sv.adopted.pid, syscall.SIGKILL)
	}
}

// Upgrade in place: the running etcd child is handed to the successor
// process, not stopped and started again (its data directory is locked, and
// the store would be down meanwhile). The old server tells the child to
// "detach" (it clears its parent-death signal) and passes its stdin pipe
// and pid on; the successor adopts it: it watches the pid (a pidfd) and
// stops it by closing that pipe, as its own; once it dies the successor
// starts children of its own as usual. A failed upgrade "attach"es again.

// Handover is what a successor needs to adopt the embedded etcd child.
type Handover struct {
	Pid      int
	Endpoint string
	Stdin    *os.File
}

// adoptedChild is a predecessor's etcd child: not ours to wait for, so it is
// watched through a pidfd.
type adoptedChild struct {
	pid   int
	pidfd int
}

func (a *adoptedChild) wait() error { return waitPidfd(a.pidfd) }

// HandOver detaches the embedded etcd child for a successor process: from
// now on Close leaves it running. It is an error when the store is not a
// supervised child.
func (s *Store) HandOver() (*Handover, error) {
	sv := s.sup
	if sv == nil {
		return nil, errors.New("the store is not an embedded etcd child")
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.down != "" || sv.stopping {
		return nil, fmt.Errorf("the embedded etcd is not serving: %s", sv.down)
	}
	if _, err := sv.stdin.WriteString("detach\n"); err != nil {
		return nil, fmt.Errorf("detach the embedded etcd: %w", err)
	}
	sv.released = true
	pid := 0
	if sv.cmd != nil {
		pid = sv.cmd.Process.Pid
	} else {
		pid = sv.adopted.pid
	}
	return &Handover{Pid: pid, Endpoint: s.eps[0], Stdin: sv.stdin}, nil
}

// TakeBack undoes HandOver after a failed upgrade.
func (s *Store) TakeBack() {
	sv := s.sup
	if sv == nil {
		return
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.released {
		sv.released = false
		_, _ = sv.stdin.WriteString("attach\n")
	}
}

// Own makes an adopted etcd child this store's to stop and restart: the
// successor calls it once its predecessor handed over (before, Close leaves
// the child to the predecessor).
func (s *Store) Own() {
	sv := s.sup
	if sv == nil {
		return
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.adopted != nil && sv.cmd == nil {
		sv.released = false
	}
}

// adoptSupervised supervises a predecessor's running child.
func adoptSupervised(o Options, log *slog.Logger) (*supervisor, string, error) {
	h := o.Adopt
	pidfd, err := pidfdOpen(h.Pid)
	if err != nil {
		return nil, "", fmt.Errorf("open store: adopt the embedded etcd (pid %d): %w", h.Pid, err)
	}
	clientURL, err := loopbackURL(o.ClientAddr, "127.0.0.1:9479", true)
	if err != nil {
		closeFd(pidfd)
		return nil, "", fmt.Errorf("open store: etcd client address: %w", err)
	}
	peerURL, err := loopbackURL(o.PeerAddr, "127.0.0.1:9480", true)
	if err != nil {
		closeFd(pidfd)
		return nil, "", fmt.Errorf("open store: etcd peer address: %w", err)
	}
	// Restarts serve the same URLs the adopted child does.
	if u, err := url.Parse(h.Endpoint); err == nil && u.Host != "" {
		clientURL.Host = u.Host
	}
	argv := append(append([]string(nil), o.EtcdCommand...),
		"--data-dir", o.DataDir, "--client-addr", clientURL.Host, "--peer-addr", peerURL.Host)
	sv := &supervisor{argv: argv, log: log, stop: make(chan struct{}), done: make(chan struct{}),
		adopted: &adoptedChild{pid: h.Pid, pidfd: pidfd}, stdin: h.Stdin, started: time.Now(),
		// The predecessor still supervises it until Own: a successor
		// that fails before then leaves it alone.
		released: true}
	go sv.run()
	log.Info("adopted the embedded etcd of the previous process", "pid", h.Pid, "endpoint", h.Endpoint)
	return sv, h.Endpoint, nil
}
