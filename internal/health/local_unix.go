//go:build unix

package health

import (
	"errors"
	"syscall"
)

// localErrnos are the failures of a probe that are this machine's trouble,
// never the target's: out of descriptors (EMFILE, ENFILE), of local ports
// (EADDRNOTAVAIL, EAGAIN from connect), of socket buffers or memory
// (ENOBUFS, ENOMEM).
var localErrnos = []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS, syscall.ENOMEM, syscall.EAGAIN}

// localError reports whether err is one of localErrnos.
func localError(err error) bool {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return false
	}
	for _, e := range localErrnos {
		if errno == e {
			return true
		}
	}
	return false
}
