package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"

	"github.com/seamark/seamark/internal/testenv"
)

// The backup and restore of docs/operations.md, as written there: a hot
// snapshot of the embedded store with etcdctl, a restore into a new data
// directory, and a server on it that answers what was written before.
func TestBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	etcdctl := testenv.LookPath(t, "etcdctl", "etcd-client")
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	clientAddr, peerURL := fmt.Sprintf("127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	peerAddr := peer2addr(peerURL)
	args := func(data string) []string {
		return []string{"server", "--data-dir", data, "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
			"--etcd-client-addr", clientAddr, "--etcd-peer-addr", peerAddr}
	}
	ctx := ctxTimeout(t, 60*time.Second)
	p := startProc(t, "server", seamarkBin, args(filepath.Join(dir, "data"))...)
	s := &server{proc: p, url: "http://" + p.waitOutput(httpAddrRE, 30*time.Second)}
	s.client, _ = api.NewClient([]string{s.url})
	if _, err := s.client.CreateService(ctx, api.Service{Name: "kept", Port: 1234, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "seamark.snapshot")
	run := func(env string, args ...string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, etcdctl, args...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3", env)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
	}
	// The embedded store wants its root password, kept in the data dir.
	pw, err := os.ReadFile(filepath.Join(dir, "data", "etcd-root-password"))
	if err != nil {
		t.Fatal(err)
	}
	run("ETCDCTL_USER=root:"+strings.TrimSpace(string(pw)), "--endpoints", "http://"+clientAddr, "snapshot", "save", snap)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored")
	// The embedded store's peer listener speaks https (its own CA in the
	// data dir): the restored member must carry the same peer URL.
	peerURL = "https://" + peer2addr(peerURL)
	run("", "snapshot", "restore", snap, "--name", "seamark", "--initial-cluster", "seamark="+peerURL,
		"--initial-advertise-peer-urls", peerURL, "--data-dir", filepath.Join(restored, "etcd"))
	// The restored store keeps its users: its password file goes with it.
	if err := os.WriteFile(filepath.Join(restored, "etcd-root-password"), pw, 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := startProc(t, "restored server", seamarkBin, args(restored)...)
	s2, _ := api.NewClient([]string{"http://" + p2.waitOutput(httpAddrRE, 30*time.Second)})
	if svc, err := s2.Service(ctx, "kept"); err != nil || svc.Port != 1234 {
		t.Fatalf("after the restore: got %+v, %v; want service kept on port 1234", svc, err)
	}
}

func peer2addr(u string) string { return u[len("http://"):] }
