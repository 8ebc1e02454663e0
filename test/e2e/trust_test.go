package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs/certstest"
	"github.com/seamark/seamark/internal/testenv"
	"github.com/seamark/seamark/seed"
)

// The embedded store refuses etcdctl without the server's credential, the
// server keeps working, and the credential in the data dir (0600) works.
func TestEmbeddedStoreRefusesAnonymousWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcdctl := testenv.LookPath(t, "etcdctl", "etcd-client")
	data := t.TempDir()
	clientAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startAgentServer(t, "server", "--data-dir", data, "--etcd-client-addr", clientAddr)
	ctx := ctxTimeout(t, 60*time.Second)
	ctl := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, etcdctl, append([]string{"--endpoints", "http://" + clientAddr, "--dial-timeout", "5s"}, args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	key := "/seamark/v1/nodes/app/evil"
	val := `{"id":"evil","service":"app","address":"127.0.42.66","port":3000}`
	if out, err := ctl("put", key, val); err == nil {
		t.Fatalf("etcdctl put without credentials succeeded: %s", out)
	} else if !strings.Contains(out, "user name is empty") && !strings.Contains(out, "permission denied") {
		t.Fatalf("etcdctl put refused, but not for lack of credentials: %v\n%s", err, out)
	}
	if out, err := ctl("get", "--prefix", "/seamark/", "--keys-only"); err == nil {
		t.Fatalf("etcdctl get without credentials succeeded: %s", out)
	}
	st, err := os.Stat(filepath.Join(data, "etcd-root-password"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, mode %v; want mode 0600", err, st.Mode().Perm())
	}
	pw, _ := os.ReadFile(filepath.Join(data, "etcd-root-password"))
	if out, err := ctl("--user", "root:"+strings.TrimSpace(string(pw)), "get", "--prefix", "/seamark/v1/services/", "--keys-only"); err != nil || !strings.Contains(out, "/seamark/v1/services/app") {
		t.Fatalf("etcdctl with the data dir's credential: %v\n%s", err, out)
	}
	if _, err := s.client.Register(ctx, api.Node{ID: "good", Service: "app", Address: netip.MustParseAddr("127.0.42.7"), Port: 3000}); err != nil {
		t.Fatalf("the server's own writes after the refused put: %v", err)
	}
	if n := node(t, s, "good"); n == nil {
		t.Fatal("registered node not read back")
	}
	if n := node(t, s, "evil"); n != nil {
		t.Fatalf("the refused put reached the registry: %+v", n)
	}
}

// A server asked to listen on a wildcard address without TLS and a token
// refuses to start before anything listens, in one line naming the key.
func TestExposedStartRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"api on 0.0.0.0", []string{"--http-addr", "0.0.0.0:0"}, "server.insecure_expose"},
		{"api on [::]", []string{"--http-addr", "[::]:0"}, "api.tokens"},
		{"etcd on 0.0.0.0", []string{"--http-addr", "127.0.0.1:0", "--etcd-client-addr", "0.0.0.0:0"}, "server.etcd_client_addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"server", "--data-dir", data, "--dns-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--etcd-client-addr", "127.0.0.1:0"}, tc.args...)
			ctx := ctxTimeout(t, 30*time.Second)
			out, err := exec.CommandContext(ctx, seamarkBin, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("server started:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.Contains(lines[0], "insecure-expose") {
				t.Fatalf("got %d lines %q, want one line naming %s and --insecure-expose", len(lines), out, tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatal("the refused server created its data directory (something started before the check)")
			}
		})
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as files.
type testPKI struct {
	ca             *certstest.CA
	server, client certstest.Pair
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certstest.NewCA(dir, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca}
	if p.server, err = ca.Issue("server", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if p.client, err = ca.Issue("client", "agent-1"); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) clientTLS(t *testing.T, withCert bool) *tls.Config {
	t.Helper()
	f := api.TLSFiles{CAFile: p.ca.CAFile}
	if withCert {
		f.CertFile, f.KeyFile = p.client.CertFile, p.client.KeyFile
	}
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startTLSServer starts a server with the agent tests' config over https.
func startTLSServer(t *testing.T, pki *testPKI, args ...string) *agentServer {
	t.Helper()
	s := startAgentServer(t, "https server", append([]string{"--data-dir", t.TempDir(), "--tls-cert-file", pki.server.CertFile, "--tls-key-file", pki.server.KeyFile}, args...)...)
	s.url = strings.Replace(s.url, "http://", "https://", 1)
	s.client, _ = api.NewClient([]string{s.url}, api.WithTLSConfig(pki.clientTLS(t, true)))
	return s
}

func runOut(t *testing.T, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// curl, the CLI, the agent and a seed client reach an https server with a
// CA made here; without the CA they refuse the server.
func TestHTTPSClients(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	curl := testenv.LookPath(t, "curl", "curl")
	pki := newPKI(t)
	s := startTLSServer(t, pki)
	if !strings.Contains(s.output(), "scheme=https") {
		t.Fatalf("server did not log https:\n%s", s.output())
	}
	if out, err := runOut(t, nil, curl, "-sS", "--fail", "--cacert", pki.ca.CAFile, s.url+"/v1/status"); err != nil || !strings.Contains(out, `"store"`) {
		t.Fatalf("curl --cacert: %v\n%s", err, out)
	}
	if out, err := runOut(t, nil, curl, "-sS", "--fail", s.url+"/v1/status"); err == nil {
		t.Fatalf("curl without the CA trusted the server: %s", out)
	}
	if out, err := runOut(t, nil, seamarkBin, "--server", s.url, "--ca-file", pki.ca.CAFile, "status"); err != nil {
		t.Fatalf("seamark --ca-file status: %v\n%s", err, out)
	}
	if out, err := runOut(t, []string{"SEAMARK_CACERT=" + pki.ca.CAFile, "SEAMARK_SERVER=" + s.url}, seamarkBin, "services"); err != nil || !strings.Contains(out, "app") {
		t.Fatalf("SEAMARK_CACERT seamark services: %v\n%s", err, out)
	}
	if out, err := runOut(t, nil, seamarkBin, "--server", s.url, "status"); err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("seamark status without the CA: %v\n%s", err, out)
	}

	l := serve(t, "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	startAgent(t, "agent", s, port, "--id", "tls-a", "--address", "127.0.0.1", "--ca-file", pki.ca.CAFile).waitOutput(registeredRE, 20*time.Second)
	if n := node(t, s, "tls-a"); n == nil {
		t.Fatal("the agent's node is not registered")
	}

	ctx := ctxTimeout(t, 30*time.Second)
	cl, err := seed.NewCluster(ctx, seed.Config{Servers: []string{s.url}, Service: "app", TLS: pki.clientTLS(t, false)})
	if err != nil {
		t.Fatalf("seed over https: %v", err)
	}
	defer cl.Close()
	if nodes := cl.Nodes(); len(nodes) != 1 || nodes[0].ID != "tls-a" {
		t.Fatalf("seed found %+v, want node tls-a", nodes)
	}
	if _, err := seed.NewCluster(ctx, seed.Config{Servers: []string{s.url}, Service: "app"}); err == nil {
		t.Fatal("seed without the CA trusted the server")
	}
}

// With client_auth require, a client without a certificate is refused at
// the handshake; curl, the CLI and the agent with one get through.
func TestMTLSRequiresClientCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	curl := testenv.LookPath(t, "curl", "curl")
	pki := newPKI(t)
	s := startTLSServer(t, pki, "--tls-client-ca-file", pki.ca.CAFile)
	if out, err := runOut(t, nil, curl, "-sS", "--fail", "--cacert", pki.ca.CAFile, s.url+"/v1/status"); err == nil {
		t.Fatalf("curl without a client certificate got through: %s", out)
	}
	if out, err := runOut(t, nil, curl, "-sS", "--fail", "--cacert", pki.ca.CAFile, "--cert", pki.client.CertFile, "--key", pki.client.KeyFile, s.url+"/v1/status"); err != nil {
		t.Fatalf("curl with a client certificate: %v\n%s", err, out)
	}
	if out, err := runOut(t, nil, seamarkBin, "--server", s.url, "--ca-file", pki.ca.CAFile, "status"); err == nil {
		t.Fatalf("seamark status without a client certificate got through: %s", out)
	}
	if out, err := runOut(t, []string{"SEAMARK_CERT=" + pki.client.CertFile, "SEAMARK_KEY=" + pki.client.KeyFile},
		seamarkBin, "--server", s.url, "--ca-file", pki.ca.CAFile, "status"); err != nil {
		t.Fatalf("seamark status with a client certificate: %v\n%s", err, out)
	}
	// A client certificate from another CA is refused too.
	other := newPKI(t)
	if out, err := runOut(t, nil, seamarkBin, "--server", s.url, "--ca-file", pki.ca.CAFile, "--cert-file", other.client.CertFile, "--key-file", other.client.KeyFile, "status"); err == nil {
		t.Fatalf("a certificate of another CA got through: %s", out)
	}
	// The agent reads its TLS files from its config file.
	acfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(acfg, []byte(fmt.Sprintf("ca_file: %s\ncert_file: %s\nkey_file: %s\n", pki.ca.CAFile, pki.client.CertFile, pki.client.KeyFile)), 0o600)
	l := serve(t, "127.0.0.1:0")
	startAgent(t, "agent", s, l.Addr().(*net.TCPAddr).Port, "--id", "mtls-a", "--address", "127.0.0.1", "--config", acfg).waitOutput(registeredRE, 20*time.Second)
	if n := node(t, s, "mtls-a"); n == nil {
		t.Fatal("the agent's node is not registered")
	}
	ctx := ctxTimeout(t, 30*time.Second)
	cl, err := seed.NewCluster(ctx, seed.Config{Servers: []string{s.url}, Service: "app", TLS: pki.clientTLS(t, true)})
	if err != nil {
		t.Fatalf("seed with a client certificate: %v", err)
	}
	cl.Close()
}

var reloadedRE = regexp.MustCompile(`msg=reloaded`)

// SIGHUP swaps the certificate: new handshakes see the new serial, an open
// keep-alive connection keeps working on the old one, and a broken
// certificate file is rejected with the last good one kept.
func TestSIGHUPSwapsCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	pki := newPKI(t)
	cfg := filepath.Join(t.TempDir(), "seamark.yaml")
	body := agentServerConfig + fmt.Sprintf("server:\n  tls: {cert_file: %s, key_file: %s}\n", pki.server.CertFile, pki.server.KeyFile)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "server", "--config", cfg, "--data-dir", t.TempDir())
	addr := strings.TrimPrefix(s.url, "http://")
	ctc := pki.clientTLS(t, false)
	serial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, ctc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != pki.server.Serial.String() {
		t.Fatalf("serial %s, want %s", got, pki.server.Serial)
	}
	// An open keep-alive connection, one request answered.
	kc, err := tls.Dial("tcp", addr, ctc)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	br := bufio.NewReader(kc)
	get := func() {
		t.Helper()
		kc.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(kc, "GET /v1/status HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive connection: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("keep-alive connection: status %d, close %v", resp.StatusCode, resp.Close)
		}
	}
	get()

	next, err := pki.ca.Issue("server", "127.0.0.1") // overwrites the files
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitOutput(reloadedRE, 20*time.Second)
	if got := serial(); got != next.Serial.String() {
		t.Fatalf("after SIGHUP a new handshake saw serial %s, want the new %s", got, next.Serial)
	}
	get()
	if got := kc.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != pki.server.Serial.String() {
		t.Fatalf("the open connection's serial changed to %s", got)
	}

	// A broken certificate: the reload is rejected, the last good one stays.
	if err := os.WriteFile(next.CertFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitOutput(regexp.MustCompile(`reload rejected.*old certificate stays`), 20*time.Second)
	if got := serial(); got != next.Serial.String() {
		t.Fatalf("after a rejected reload serial %s, want %s", got, next.Serial)
	}
	get()
}

// A seed client asks an agent's identity endpoint over TLS (the agent's
// certificate from a CA made here) and finds the node; without the CA it
// refuses the endpoint.
func TestSeedIdentityOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	pki := newPKI(t)
	node, err := pki.ca.Issue("node-a", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := startTLSServer(t, pki)
	l := serve(t, "127.0.0.1:0")
	a := startAgent(t, "agent", s, l.Addr().(*net.TCPAddr).Port, "--id", "id-tls", "--address", "127.0.0.1", "--ca-file", pki.ca.CAFile,
		"--identity-addr", "127.0.0.1:0", "--identity-cert-file", node.CertFile, "--identity-key-file", node.KeyFile)
	idAddr := a.waitOutput(regexp.MustCompile(`identity endpoint listening.*addr=(127\.0\.0\.1:\d+)`), 20*time.Second)
	a.waitOutput(registeredRE, 20*time.Second)
	ctx := ctxTimeout(t, 30*time.Second)
	cl, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{idAddr}, IdentityTLS: pki.clientTLS(t, false)})
	if err != nil {
		t.Fatalf("seed over TLS identity: %v\nagent:\n%s", err, a.output())
	}
	defer cl.Close()
	if nodes := cl.Nodes(); len(nodes) != 1 || nodes[0].ID != "id-tls" {
		t.Fatalf("seed found %+v, want node id-tls", nodes)
	}
	other := newPKI(t)
	if _, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{idAddr}, IdentityTLS: other.clientTLS(t, false), DialOptions: []seed.Option{seed.WithTimeout(3 * time.Second)}}); err == nil {
		t.Fatal("seed trusted an identity endpoint whose certificate its CA did not sign")
	}
}

// startTLSEtcd runs Debian's etcd with https on its client port and client
// certificates required (etcd's --client-cert-auth), with pki's CA.
func startTLSEtcd(t *testing.T, pki *testPKI) string {
	t.Helper()
	bin := testenv.LookPath(t, "etcd", "etcd-server")
	ep, err := pki.ca.Issue("etcd", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	client, peer := freePort(t), freePort(t)
	cu, pu := fmt.Sprintf("https://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	p := startProc(t, "etcd", bin,
		"--name", "e2e", "--data-dir", t.TempDir(),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "e2e="+pu, "--heartbeat-interval", "20", "--election-timeout", "100",
		"--cert-file", ep.CertFile, "--key-file", ep.KeyFile, "--trusted-ca-file", pki.ca.CAFile, "--client-cert-auth")
	p.waitOutput(regexp.MustCompile(`ready to serve client requests`), 20*time.Second)
	return cu
}

// An external etcd over TLS with client certificates: the server reaches it
// with etcd_tls (CA, client certificate); without a client certificate it
// cannot. Then etcd's authentication goes on, and the server needs
// etcd_username and etcd_password_file as well.
func TestExternalEtcdTLSAndPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcdctl := testenv.LookPath(t, "etcdctl", "etcd-client")
	pki := newPKI(t)
	ep := startTLSEtcd(t, pki)
	tlsArgs := []string{"--etcd-endpoints", ep, "--etcd-ca-file", pki.ca.CAFile, "--etcd-cert-file", pki.client.CertFile, "--etcd-key-file", pki.client.KeyFile}

	s := startServer(t, "server", tlsArgs...)
	ctx := ctxTimeout(t, 60*time.Second)
	if _, err := s.client.CreateService(ctx, api.Service{Name: "over-tls", Port: 1234, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Without a client certificate etcd refuses the server, which says so.
	out, err := runOut(t, nil, seamarkBin, "server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--etcd-endpoints", ep, "--etcd-ca-file", pki.ca.CAFile)
	if code := exitCode(err); code != 1 || !strings.Contains(out, "open store") {
		t.Fatalf("server without a client certificate: exit %d, want 1 with an open store error:\n%s", code, out)
	}

	// etcd's authentication on: a root user with a password.
	pwFile := filepath.Join(t.TempDir(), "etcd.password")
	os.WriteFile(pwFile, []byte("s3cret-e2e\n"), 0o600)
	ctl := func(args ...string) {
		t.Helper()
		base := []string{"--endpoints", ep, "--cacert", pki.ca.CAFile, "--cert", pki.client.CertFile, "--key", pki.client.KeyFile}
		if out, err := runOut(t, []string{"ETCDCTL_API=3"}, etcdctl, append(base, args...)...); err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
	}
	ctl("user", "add", "root:s3cret-e2e")
	ctl("user", "grant-role", "root", "root")
	ctl("auth", "enable")
	// etcd takes the certificate's common name as the user when no password
	// is given: a client certificate for "seamark" (no such user) plus the
	// password is what the server presents.
	cert, err := pki.ca.Issue("seamark", "seamark")
	if err != nil {
		t.Fatal(err)
	}
	pwArgs := []string{"--etcd-endpoints", ep, "--etcd-ca-file", pki.ca.CAFile, "--etcd-cert-file", cert.CertFile, "--etcd-key-file", cert.KeyFile}
	out, err = runOut(t, nil, seamarkBin, append([]string{"server", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"}, pwArgs...)...)
	if code := exitCode(err); code != 1 || !strings.Contains(out, "permission denied") {
		t.Fatalf("server without the etcd password: exit %d, want 1 with permission denied:\n%s", code, out)
	}
	s2 := startServer(t, "server with password", append(pwArgs, "--etcd-username", "root", "--etcd-password-file", pwFile)...)
	if svc, err := s2.client.Service(ctx, "over-tls"); err != nil || svc.Port != 1234 {
		t.Fatalf("over TLS with a password: got %+v, %v", svc, err)
	}
}

// exitCode is the exit code of a finished command's error (0 for nil, -1
// when it was killed).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
