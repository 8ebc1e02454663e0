package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Child is the service process the agent wraps.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// ForwardedSignals are the signals the command line passes on to a wrapped
// child; SIGTERM and SIGINT first deregister the node.
var ForwardedSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// StartChild starts argv as the agent's child, in a process group of its own
// (so every signal reaches it once, from the agent) and killed if the agent
// dies. Its stdin is /dev/null; stdout and stderr are the given writers.
func StartChild(argv []string, stdout, stderr io.Writer) (*Child, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("wrap: no command given after --")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wrap: start %s: %w", argv[0], err)
	}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process ID (and its process group's).
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the child has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Signal sends sig to the child's process group.
func (c *Child) Signal(sig syscall.Signal) error {
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	return syscall.Kill(-c.cmd.Process.Pid, sig)
}

// ExitCode is the child's exit code once Done is closed: its own, or 128 plus
// the signal that killed it, as a shell reports it.
func (c *Child) ExitCode() int {
	ps := c.cmd.ProcessState
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// killGrace is how long a child gets to stop after SIGTERM before SIGKILL,
// when the agent itself has to stop it.
const killGrace = 10 * time.Second

// Wrap runs the agent beside its child until one of them ends and returns
// the code the agent must exit with:
//   - SIGTERM or SIGINT on signals: the node is deregistered first, then the
//     signal is passed to the child; the child's exit code is returned;
//   - any other signal is passed on at once;
//   - the child exits by itself: the node is deregistered and its code returned;
//   - the agent ends by itself (the port did not open within WaitTimeout, or
//     ctx ended): the child is stopped (SIGTERM, SIGKILL after 10s) and 1 is
//     returned with the agent's error, or the child's code when there is none.
func Wrap(ctx context.Context, a *Agent, child *Child, signals <-chan os.Signal) (int, error) {
	actx, stop := context.WithCancel(ctx)
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(actx) }()
	running := true
	stopAgent := func() error {
		if !running {
			return nil
		}
		stop()
		running = false
		return <-runDone
	}
	for {
		select {
		case sig := <-signals:
			s, ok := sig.(syscall.Signal)
			if !ok {
				continue
			}
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				if running {
					a.log.Info("stopping: deregistering, then passing the signal to the child", "signal", s.String(), "pid", child.Pid())
				}
				stopAgent()
			}
			if err := child.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
				a.log.Warn("pass a signal to the child", "signal", s.String(), "err", err)
			}
		case <-child.Done():
			code := child.ExitCode()
			a.log.Info("the child exited", "pid", child.Pid(), "code", code)
			stopAgent()
			return code, nil
		case err := <-runDone:
			running = false
			if err != nil {
				a.log.Error("the agent stopped; stopping the child", "err", err, "pid", child.Pid())
			}
			child.Signal(syscall.SIGTERM)
			select {
			case <-child.Done():
			case <-time.After(killGrace):
				child.Signal(syscall.SIGKILL)
				<-child.Done()
			}
			if err != nil {
				return 1, err
			}
			return child.ExitCode(), nil
		}
	}
}
