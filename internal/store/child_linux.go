package store

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr puts the embedded etcd in its own process group (a terminal's
// ^C reaches the server, which stops it in order) and has the kernel kill it
// when the server dies, even by SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// setDeathSignal sets the signal this process gets when its parent dies (0:
// none).
func setDeathSignal(sig syscall.Signal) {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0)
}

func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

func closeFd(fd int) { unix.Close(fd) }

// waitPidfd waits until the process of pidfd exits (it need not be our
// child), and closes pidfd.
func waitPidfd(pidfd int) error {
	defer unix.Close(pidfd)
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, -1)
		if err == nil && fds[0].Revents != 0 {
			return errors.New("adopted etcd exited")
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
