package lb

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"

	"github.com/seamark/seamark/internal/testenv"
)

// startNginx runs Debian's nginx in the foreground on a free loopback port
// with proxy_protocol required, answering every request with the client and
// server addresses the PROXY header gave it.
func startNginx(t *testing.T) netip.AddrPort {
	t.Helper()
	// nginx is the real PROXY protocol consumer of this test.
	bin := testenv.LookPath(t, "nginx", "nginx-light")
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d proxy_protocol;
		location / {
			default_type text/plain;
			return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\n";
		}
	}
}
`, dir, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := netip.AddrPortFrom(loopback, uint16(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet sends a GET over one connection to addr and returns the body and
// the client's own address.
func httpGet(t *testing.T, addr string) (string, netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(resp), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200") {
		t.Fatalf("got %q", resp)
	}
	return strings.TrimSpace(body), c.LocalAddr().(*net.TCPAddr).AddrPort()
}

// TestProxyProtocolToNginx: nginx, a real PROXY consumer, sees the client's
// address through the balancer with v1 and v2 headers, and through two
// balancer hops (accept_proxy on the second) the first client's.
func TestProxyProtocolToNginx(t *testing.T) {
	ngx := startNginx(t)
	e := newEnv(t)
	e.service("web")
	e.node("web", "nginx", ngx, 1)
	ports := freePorts(t, 4)
	e.listener(api.Listener{Name: "v1", Port: ports[0], Service: "web", ProxyProtocol: "v1"})
	e.listener(api.Listener{Name: "v2", Port: ports[1], Service: "web", ProxyProtocol: "v2"})
	// Two hops: edge (v2) -> inner (accept_proxy, v1) -> nginx.
	e.service("inner")
	e.node("inner", "inner", netip.AddrPortFrom(loopback, uint16(ports[3])), 1)
	e.listener(api.Listener{Name: "edge", Port: ports[2], Service: "inner", ProxyProtocol: "v2"})
	e.sync(e.listener(api.Listener{Name: "inner", Port: ports[3], Service: "web", AcceptProxy: true, ProxyProtocol: "v1"}))
	for i, p := range ports[:3] {
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		body, client := httpGet(t, addr)
		want := fmt.Sprintf("%s %d 127.0.0.1 %d", client.Addr(), client.Port(), p)
		if body != want {
			t.Errorf("listener %d: nginx saw %q, want %q", i, body, want)
		}
	}
	// A client that sends no PROXY header to an accept_proxy port is dropped.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("a client without a PROXY header got %q", b)
	}
}
