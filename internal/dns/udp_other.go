//go:build !(linux && (amd64 || arm64))

package dns

// serveUDPBatch: batched UDP I/O is Linux only; elsewhere one datagram per
// system call.
func (s *Server) serveUDPBatch(w *worker) bool { return false }
