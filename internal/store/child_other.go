//go:build !linux

package store

import (
	"errors"
	"syscall"
)

// childAttr: off Linux the child notices the server's death by its closed
// stdin only.
func childAttr() *syscall.SysProcAttr { return nil }

func setDeathSignal(syscall.Signal) {}

func pidfdOpen(int) (int, error) { return -1, errors.New("adopting a process needs Linux") }

func closeFd(int) {}

func waitPidfd(int) error { return errors.New("adopting a process needs Linux") }
