package store

import "syscall"

// childAttr puts the embedded etcd in its own process group (a terminal's
// ^C reaches the server, which stops it in order) and has the kernel kill it
// when the server dies, even by SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
