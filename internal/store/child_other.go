//go:build !linux

package store

import "syscall"

// childAttr: off Linux the child notices the server's death by its closed
// stdin only.
func childAttr() *syscall.SysProcAttr { return nil }
