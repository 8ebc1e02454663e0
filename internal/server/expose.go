package server

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/ui"
)

// checkExposure refuses, before anything listens, a server whose HTTP API or
// embedded etcd client listener is reachable from other machines without
// protection: the API needs https (server.tls) and at least one token
// (api.tokens); the embedded store serves no TLS, so a non-loopback etcd
// client address always needs the opt-out. server.insecure_expose (flag
// --insecure-expose) lets either start anyway. The error is one line naming
// the keys to set.
func checkExposure(f *config.File) error {
	sc := f.Server
	if sc.InsecureExpose {
		return nil
	}
	if !isLoopback(sc.HTTPAddr) {
		var missing []string
		if !sc.TLS.Enabled() {
			missing = append(missing, "server.tls (cert_file, key_file)")
		}
		if len(f.API.Tokens) == 0 {
			missing = append(missing, "api.tokens")
		}
		if len(missing) > 0 {
			return fmt.Errorf("start server: server.http_addr %s is not a loopback address and the API has no %s: set %s, or server.insecure_expose: true (--insecure-expose) to expose it unprotected",
				sc.HTTPAddr, strings.Join(missing, " and no "), strings.Join(missing, " and "))
		}
	}
	if len(sc.EtcdEndpoints) == 0 && !isLoopback(sc.EtcdClientAddr) {
		return fmt.Errorf("start server: server.etcd_client_addr %s is not a loopback address and the embedded store serves no TLS: set it to 127.0.0.1:PORT (use etcd_endpoints with TLS to share a store), or server.insecure_expose: true (--insecure-expose) to expose it", sc.EtcdClientAddr)
	}
	return nil
}

// isLoopback reports whether host:port can only be reached from this
// machine: a loopback IP or "localhost". An empty host or a wildcard
// listens everywhere; any other name counts as exposed.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// isWildcard reports whether addr is an unspecified address (0.0.0.0, ::).
func isWildcard(addr net.Addr) bool {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.IsUnspecified()
	}
	return false
}

// logListening logs where the API listens; a wildcard bind says that it is
// exposed instead of printing an unusable dashboard URL.
func (s *Server) logListening(addr net.Addr, scheme string) {
	if isWildcard(addr) {
		_, port, _ := net.SplitHostPort(addr.String())
		s.log.Warn("http api listening on every address: exposed to the network",
			"addr", addr.String(), "scheme", scheme, "dashboard", scheme+"://HOST:"+port+ui.Prefix)
		return
	}
	s.log.Info("http api listening", "addr", addr.String(), "scheme", scheme, "dashboard", scheme+"://"+addr.String()+ui.Prefix)
}
