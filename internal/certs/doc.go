// Package certs holds the HTTP API's server certificate and reloads it.
//
// What it reads: the PEM files named in server.tls (certificate chain, key,
// client CA bundle), on start and on every Reload (SIGHUP). What it serves:
// a *tls.Config whose GetConfigForClient hands every new handshake the
// configuration loaded last, kept in an atomic pointer, so a reload never
// touches open connections and a reload whose files do not load (missing,
// mismatched, expired, not PEM) is rejected with the old configuration still
// in place. It writes nothing of its own.
//
// issue.go makes certificates: an in-memory Authority that issues P-256
// leaves, and WritePEM to write them atomically. The embedded store's private
// peer CA (internal/store) and the test CAs (certstest) both use it.
package certs
