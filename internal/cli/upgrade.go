package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/upgrade"
)

// Upgrade in place (docs/operations.md): SIGUSR2 (or `seamark upgrade`)
// makes the running server start the new binary with its listening sockets
// (internal/upgrade), its embedded etcd child and its server name; the old
// process serves on until the new one is ready, then stops accepting, drains
// and exits. The environment carries what is not a descriptor:
const (
	// envBinary overrides the binary started (default: this executable's
	// path on disk, which is the new binary after a package upgrade).
	envBinary = "SEAMARK_UPGRADE_BINARY"
	// envName carries the server name (the health checker's ID).
	envName = "SEAMARK_UPGRADE_NAME"
	// envEtcd carries the etcd child's "pid,client URL"; its stdin pipe is
	// the descriptor "etcd/stdin".
	envEtcd = "SEAMARK_UPGRADE_ETCD"
)

// successor is what a new process got from its predecessor.
type successor struct {
	upgraded bool
	etcd     *store.Handover
}

// upgradeFromEnv reads the hand-over a predecessor left in the environment
// (nothing when started afresh).
func upgradeFromEnv(f *config.File, log *slog.Logger) (*upgrade.Sockets, successor, error) {
	ho, upgraded, err := upgrade.FromEnv()
	succ := successor{upgraded: upgraded}
	if err != nil || !upgraded {
		return ho, succ, err
	}
	if name := os.Getenv(envName); name != "" && f.Server.Name == "" {
		f.Server.Name = name
	}
	os.Unsetenv(envName)
	if v := os.Getenv(envEtcd); v != "" {
		os.Unsetenv(envEtcd)
		pidS, ep, _ := strings.Cut(v, ",")
		pid, err := strconv.Atoi(pidS)
		stdin := ho.Take("etcd/stdin")
		if err != nil || pid <= 1 || ep == "" || stdin == nil {
			return ho, succ, fmt.Errorf("upgrade: %s=%q is not pid,url with the etcd/stdin descriptor", envEtcd, v)
		}
		succ.etcd = &store.Handover{Pid: pid, Endpoint: ep, Stdin: stdin}
	}
	// systemd pings the watchdog of the main process, which this one
	// becomes (MAINPID).
	if os.Getenv("WATCHDOG_PID") != "" {
		os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	log.Info("upgrade: starting as the successor of the running server", "predecessor", os.Getppid())
	return ho, succ, nil
}

// takeOver finishes a successor's start: once the balancer holds every port
// it was handed, it closes what nobody took, tells the predecessor it is
// ready, waits for its "go" and then campaigns for its groups.
func (succ successor) takeOver(ctx context.Context, srv *server.Server, ho *upgrade.Sockets, log *slog.Logger) error {
	// Within the predecessor's default --upgrade-timeout (60s).
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	err := srv.WaitServing(wctx)
	cancel()
	if err != nil {
		srv.Close()
		return fmt.Errorf("upgrade: the balancer did not take its ports: %w", err)
	}
	if keys := ho.CloseUnused(); len(keys) > 0 {
		log.Info("upgrade: closed inherited sockets the config no longer names", "sockets", strings.Join(keys, " "))
	}
	if err := ho.Ready(30 * time.Second); err != nil {
		// The predecessor gave up on us (or died): serve on regardless.
		log.Warn("upgrade", "err", err)
	}
	// The etcd child is ours now (a failure before here left it to the
	// predecessor).
	srv.Store().Own()
	srv.StartMember()
	log.Info("upgrade: serving; the old process drains and exits")
	return nil
}

// upgradeTo runs one upgrade from the serving process; true means the new
// process serves and this one has handed over and drained (exit now).
func upgradeTo(ctx context.Context, srv *server.Server, ho *upgrade.Sockets, log *slog.Logger, timeout, drainMax time.Duration) bool {
	exe := os.Getenv(envBinary)
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			log.Error("upgrade refused: cannot find this executable's path; set "+envBinary, "err", err)
			return false
		}
	}
	log.Info("upgrade: starting the new binary", "binary", exe)
	env := append(os.Environ(), envName+"="+srv.Name())
	var h *store.Handover
	if srv.Store().Kind() == "embedded" {
		var err error
		if h, err = srv.Store().HandOver(); err != nil {
			log.Error("upgrade refused: the embedded etcd cannot be handed over", "err", err)
			return false
		}
		ho.Pass("etcd/stdin", h.Stdin)
		env = append(env, fmt.Sprintf("%s=%d,%s", envEtcd, h.Pid, h.Endpoint))
	}
	child, err := ho.Spawn(exe, os.Args[1:], env, timeout)
	if h != nil {
		ho.Forget("etcd/stdin")
	}
	if err != nil {
		srv.Store().TakeBack()
		log.Error("upgrade failed; this process serves on", "err", err)
		return false
	}
	srv.FreezeMember()
	if err := child.Go(); err != nil {
		log.Warn("upgrade: could not tell the new process to go on", "err", err)
	}
	log.Info("upgrade: the new process serves; this one stops accepting and drains", "new_pid", child.Pid)
	dctx, cancel := context.WithTimeout(ctx, drainMax)
	defer cancel()
	if err := srv.Handoff(dctx); err != nil {
		log.Warn("upgrade: drain ended early", "err", err)
	}
	return true
}

// writePidFile writes this process's ID to path, atomically.
func writePidFile(path string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removePidFile removes path if it still names this process (after an
// upgrade it names the successor).
func removePidFile(path string) {
	if pid, err := readPidFile(path); err == nil && pid == os.Getpid() {
		os.Remove(path)
	}
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := parsePid(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pid, nil
}

// parsePid reads a pid file's content: one process ID above 1, and a
// newline or not.
func parsePid(b []byte) (int, error) {
	if len(b) > 32 {
		return 0, fmt.Errorf("not a pid file (%d bytes)", len(b))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || pid > 1<<22 {
		return 0, fmt.Errorf("does not hold a process ID (%q)", b)
	}
	return pid, nil
}

func newUpgradeCmd() *cobra.Command {
	var (
		pidFile string
		wait    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade the running server in place (SIGUSR2 to the process in --pid-file)",
		Long: `Signal the running server (its process ID in --pid-file, as written by
seamark server --pid-file) to start its binary anew, from the path on disk,
and hand it its listening sockets: no connection is refused. It waits until
the pid file names the new process (exit 0) or --wait passes (exit 1: the old
process serves on; its log says why). See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := readPidFile(pidFile)
			if err != nil {
				return fmt.Errorf("%w (pass the file seamark server --pid-file writes)", err)
			}
			if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
				return fmt.Errorf("signal the server (pid %d): %w", pid, err)
			}
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				if np, err := readPidFile(pidFile); err == nil && np != pid {
					fmt.Fprintf(cmd.OutOrStdout(), "upgraded: pid %d serves (was %d)\n", np, pid)
					return nil
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "no new process within %v: pid %d serves on; see its log\n", wait, pid)
			return exitError{code: 1}
		},
	}
	cmd.Flags().StringVar(&pidFile, "pid-file", "/run/seamark/seamark.pid", "the server's pid file (seamark server --pid-file)")
	cmd.Flags().DurationVar(&wait, "wait", 90*time.Second, "how long to wait for the new process")
	return cmd
}
