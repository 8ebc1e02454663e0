// Package e2e runs seamark as real processes: the binary is built once in
// TestMain, and servers, agents and peers (etcd, dig, ...) run as separate
// processes on loopback, owned and stopped by the test that started them.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/testenv"
)

var seamarkBin, binDir string

var (
	toolsMu sync.Mutex
	tools   = map[string]string{}
)

// buildTool builds a main package of this module (once per run) and returns
// the binary's path.
func buildTool(t testing.TB, pkg string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if bin, ok := tools[pkg]; ok {
		return bin
	}
	bin := filepath.Join(binDir, filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	tools[pkg] = bin
	return bin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "seamark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	seamarkBin, binDir = filepath.Join(dir, "seamark"), dir
	build := exec.Command("go", "build", "-o", seamarkBin, "../../cmd/seamark")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build seamark:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a child process whose output the test can wait on.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	seen chan struct{} // closed and replaced on every new line
	done chan struct{}
}

// startProc starts a process owned by t: it is killed at the end of the test.
func startProc(t testing.TB, name string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, seen: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			close(p.seen)
			p.seen = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitOutput waits until the output matches re and returns the first submatch.
func (p *proc) waitOutput(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.out.String())
		seen := p.seen
		p.mu.Unlock()
		if m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		select {
		case <-seen:
		case <-p.done:
			p.t.Fatalf("%s exited before printing %s:\n%s", p.name, re, p.output())
		case <-deadline:
			p.t.Fatalf("%s did not print %s within %v:\n%s", p.name, re, timeout, p.output())
		}
	}
}

// kill sends SIGKILL to the process group and waits.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits up to 10s.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("%s exited %d after SIGTERM", p.name, code)
		}
		return nil
	case <-time.After(10 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", p.name)
	}
}

// dnsAddrRE finds the DNS address a server reports.
var dnsAddrRE = regexp.MustCompile(`seamark server running.* dns=(127\.0\.0\.1:\d+)`)

var httpAddrRE = regexp.MustCompile(`seamark server running.* http=(127\.0\.0\.1:\d+)`)

// server is a running `seamark server` process.
type server struct {
	*proc
	url    string
	client *api.Client
}

// startServer runs `seamark server` with args plus loopback port-0 listeners,
// and waits until it reports its HTTP address.
func startServer(t testing.TB, name string, args ...string) *server {
	t.Helper()
	base := []string{"server", "--http-addr", "127.0.0.1:0", "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"}
	p := startProc(t, name, seamarkBin, append(base, args...)...)
	addr := p.waitOutput(httpAddrRE, 30*time.Second)
	s := &server{proc: p, url: "http://" + addr}
	c, err := api.NewClient([]string{s.url})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd runs Debian's etcd as an external store; it skips the test when
// the etcd-server package is not installed (and fails in CI).
func startEtcd(t testing.TB) string {
	t.Helper()
	_, url := startEtcdProc(t)
	return url
}

// startEtcdProc is startEtcd that also returns the etcd process.
func startEtcdProc(t testing.TB) (*proc, string) {
	t.Helper()
	bin := testenv.LookPath(t, "etcd", "etcd-server")
	client, peer := freePort(t), freePort(t)
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	p := startProc(t, "etcd", bin,
		"--name", "e2e", "--data-dir", t.TempDir(),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "e2e="+pu, "--heartbeat-interval", "20", "--election-timeout", "100")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(cu + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, cu
			}
		}
		select {
		case <-p.done:
			t.Fatalf("etcd exited:\n%s", p.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("etcd not healthy after 20s:\n%s", p.output())
	return nil, ""
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
