package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/testenv"
)

// The quickstart as a newcomer runs it: every shell command of the README's
// "Quickstart" section (and of docs/quickstart.md), in order, against the
// built binary. What changes on the way is only what a test must change:
// `go run ./cmd/seamark` and `go run ./examples/echo` are the binaries built
// once, the default ports (9400, 9453, 9001, 9002, 8080, and etcd's 9479/9480) are
// replaced by free ones, and SEAMARK_SERVER points the CLI at the server's
// replaced port. `go test ./...` is skipped (it is what runs this).
//
// Conventions of those blocks, so they stay testable:
//   - `go run ./cmd/seamark server ...` and `go run ./examples/echo ...` run
//     in their own terminal: the test starts them and waits until they say
//     they are ready.
//   - a trailing `# → A, B (not C)` says what the command prints: the test
//     runs it again (for up to 20 s, as a person would while a node turns
//     healthy) until its output holds A and B and not C.
//   - any other command must exit 0 the first time.
func TestQuickstartREADME(t *testing.T) {
	cmds := quickstartCommands(t, "../../README.md", "## Quickstart")
	if len(cmds) < 2 || !strings.HasPrefix(cmds[0].line, "go run ./cmd/seamark server") || cmds[1].line != "go test ./..." {
		t.Fatalf("the README's quickstart must start with the server and then `go test ./...`; it starts with %q", cmds[:min(2, len(cmds))])
	}
	runQuickstart(t, cmds)
}

func TestQuickstartDocs(t *testing.T) {
	runQuickstart(t, quickstartCommands(t, "../../docs/quickstart.md", "# Quickstart"))
}

type qsCommand struct {
	line   string   // the command as written
	want   []string // what its output must hold
	reject []string // what it must not hold
}

var (
	shBlockRE = regexp.MustCompile("(?s)```sh\n(.*?)```")
	commentRE = regexp.MustCompile(`\s+#(\s.*)?$`)
	notRE     = regexp.MustCompile(`\s*\(not ([^)]*)\)\s*$`)
)

// quickstartCommands reads the ```sh blocks of the section under heading.
func quickstartCommands(t *testing.T, path, heading string) []qsCommand {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 && strings.HasPrefix(text, heading+"\n") {
		i = 0
	}
	if i < 0 {
		t.Fatalf("%s has no %q section", path, heading)
	}
	section := text[i+1:]
	// A "## " section ends at the next "## "; a "# " title takes the file.
	if level := heading[:strings.IndexByte(heading, ' ')+1]; level != "# " {
		if j := strings.Index(section[len(heading):], "\n"+level); j >= 0 {
			section = section[:len(heading)+j]
		}
	}
	var out []qsCommand
	for _, block := range shBlockRE.FindAllStringSubmatch(section, -1) {
		var cont string
		for _, raw := range strings.Split(block[1], "\n") {
			if strings.HasSuffix(raw, "\\") {
				cont += strings.TrimSuffix(raw, "\\") + " "
				continue
			}
			line := strings.TrimSpace(cont + raw)
			cont = ""
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			c := qsCommand{}
			if m := commentRE.FindStringSubmatchIndex(line); m != nil {
				comment := strings.TrimSpace(line[m[0]:])
				line = strings.TrimSpace(line[:m[0]])
				if exp, ok := strings.CutPrefix(comment, "# →"); ok {
					if n := notRE.FindStringSubmatch(exp); n != nil {
						c.reject = append(c.reject, strings.TrimSpace(n[1]))
						exp = exp[:len(exp)-len(n[0])]
					}
					for _, part := range strings.Split(exp, ", ") {
						if p := strings.TrimSpace(part); p != "" {
							c.want = append(c.want, p)
						}
					}
				}
			}
			c.line = line
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no ```sh commands under %q", path, heading)
	}
	return out
}

func runQuickstart(t *testing.T, cmds []qsCommand) {
	if testing.Short() {
		t.Skip("process test")
	}
	for _, tool := range []struct{ bin, pkg string }{{"curl", "curl"}, {"dig", "bind9-dnsutils"}} {
		testenv.LookPath(t, tool.bin, tool.pkg)
	}
	work := t.TempDir()
	// Registered first, so it runs after every process the test started
	// was killed: none is left (they all run in work or from it).
	t.Cleanup(func() { noProcessMentions(t, work, 5*time.Second) })
	echoBin := filepath.Join(work, "echo-bin")
	if out, err := exec.Command("go", "build", "-o", echoBin, "../../examples/echo").CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/echo: %v\n%s", err, out)
	}
	// The ports the docs use, and free ones in their place.
	ports := map[string]string{"9479": "0", "9480": "0"}
	for _, p := range []string{"9400", "9001", "9002", "8080"} {
		ports[p] = strconv.Itoa(freePort(t))
	}
	ports["9453"] = strconv.Itoa(freeUDPAndTCPPort(t))
	rewrite := func(s string) string {
		for from, to := range ports {
			s = regexp.MustCompile(`\b`+from+`\b`).ReplaceAllString(s, to)
		}
		s = strings.ReplaceAll(s, "go run ./cmd/seamark", seamarkBin)
		return strings.ReplaceAll(s, "go run ./examples/echo", echoBin)
	}
	cfg, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "examples", "quickstart.yaml"), rewrite(string(cfg)))
	env := append(os.Environ(), "SEAMARK_SERVER=http://127.0.0.1:"+ports["9400"])

	daemons := []struct{ prefix, ready string }{
		{"go run ./cmd/seamark server", `seamark server running`},
		{"go run ./examples/echo", `echo listening on`},
	}
	for _, c := range cmds {
		if c.line == "go test ./..." {
			continue
		}
		line := rewrite(c.line)
		daemon := false
		for _, d := range daemons {
			if strings.HasPrefix(c.line, d.prefix) {
				p := startProc(t, c.line, "bash", "-c", "cd "+work+" && exec "+line)
				p.waitOutput(regexp.MustCompile(d.ready), 60*time.Second)
				t.Logf("started: %s", c.line)
				daemon = true
			}
		}
		if daemon {
			continue
		}
		want := rewriteAll(rewrite, c.want)
		reject := rewriteAll(rewrite, c.reject)
		deadline := time.Now().Add(20 * time.Second)
		for attempt := 1; ; attempt++ {
			out, err := runShell(work, env, line)
			ok := err == nil && holds(out, want, reject)
			if ok {
				t.Logf("ok: %s (attempt %d)\n%s", c.line, attempt, indent(out))
				break
			}
			if len(want)+len(reject) == 0 || time.Now().After(deadline) {
				t.Fatalf("%s\n  ran as: %s\n  error: %v\n  want: %q, not %q\n  output:\n%s", c.line, line, err, want, reject, indent(out))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// runShell runs one command line with bash in dir, bounded to 30 s, and
// kills whatever it started.
func runShell(dir string, env []string, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func holds(out string, want, reject []string) bool {
	for _, w := range want {
		if !strings.Contains(out, w) {
			return false
		}
	}
	for _, r := range reject {
		if strings.Contains(out, r) {
			return false
		}
	}
	return true
}

func rewriteAll(f func(string) string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// freeUDPAndTCPPort returns a loopback port free for both UDP and TCP a
// moment ago (the DNS server binds both).
func freeUDPAndTCPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := freePort(t)
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP in 50 tries")
	return 0
}
