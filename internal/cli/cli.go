// Package cli is seamark's command line: `seamark server`, `seamark validate`,
// `seamark version` and the operator verbs (status, services, nodes, events,
// drain, maint, ready, weight ...) that talk to a running server through the
// public api client.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// Version is the seamark version, set at build time with
// -ldflags "-X github.com/seamark/seamark/internal/cli.Version=v1.2.3".
// Left unset, init stamps it from the build: the module version when built
// with `go install ...@vX`, else "dev+" and the commit (with "-dirty" for a
// tree with changes), so two binaries never both say just "dev".
var Version = "dev"

func init() {
	if bi, ok := debug.ReadBuildInfo(); ok {
		Version = stampVersion(Version, bi)
	}
}

// stampVersion is Version as the build describes it.
func stampVersion(v string, bi *debug.BuildInfo) string {
	if v != "dev" {
		return v
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		return mv
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return v + "+" + rev
}

// exitError carries an exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "__etcd" {
		// The server's embedded etcd, run as its supervised child.
		return store.RunChild(args[1:], os.Stdin, stdout, stderr)
	}
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintln(stderr, "seamark:", err)
	return 1
}

// clientFlags are shared by the verbs that talk to a server.
type clientFlags struct {
	servers   string
	token     string
	tokenFile string
	output    string
	tls       api.TLSFiles // --ca-file, --cert-file, --key-file
}

// maxTokenFile bounds a token file.
const maxTokenFile = 64 << 10

// bearer is the API token: --token (SEAMARK_TOKEN), else the content of
// --token-file (SEAMARK_TOKEN_FILE) trimmed of white space, else none.
func (c *clientFlags) bearer() (string, error) {
	if c.token != "" || c.tokenFile == "" {
		return c.token, nil
	}
	return readTokenFile(c.tokenFile)
}

// readTokenFile reads a file that holds a bearer token.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w (check --token-file or SEAMARK_TOKEN_FILE)", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("token file %s: larger than %d bytes; it should hold just the token", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty; write the token into it", path)
	}
	return tok, nil
}

func (c *clientFlags) client() (*api.Client, error) {
	var opts []api.ClientOption
	tok, err := c.bearer()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		opts = append(opts, api.WithToken(tok))
	}
	if !c.tls.IsZero() {
		tc, err := c.tls.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, api.WithTLSConfig(tc))
	}
	return api.NewClient(strings.Split(c.servers, ","), opts...)
}

// connect returns a client of the servers and a context bounded for one
// command's requests.
func (c *clientFlags) connect(cmd *cobra.Command) (*api.Client, context.Context, context.CancelFunc, error) {
	cl, err := c.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := withTimeout(cmd)
	return cl, ctx, cancel, nil
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "seamark",
		Short: "Stable names and ports for clusters whose machines come and go",
		Long: `seamark gives a cluster whose machines come and go with new addresses a small
set of names and ports that always lead to a live node: a registry on etcd,
health checks, authoritative DNS, a TCP load balancer and balancer failover,
in one binary.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetVersionTemplate("seamark {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	cf := &clientFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&cf.servers, "server", envOr("SEAMARK_SERVER", "http://127.0.0.1:9400"), "seamark server URL(s), comma separated (env SEAMARK_SERVER)")
	pf.StringVar(&cf.token, "token", os.Getenv("SEAMARK_TOKEN"), "API bearer token (env SEAMARK_TOKEN); prefer --token-file")
	pf.StringVar(&cf.tokenFile, "token-file", os.Getenv("SEAMARK_TOKEN_FILE"), "file holding the API bearer token, used when --token is not given (env SEAMARK_TOKEN_FILE)")
	pf.StringVar(&cf.tls.CAFile, "ca-file", os.Getenv("SEAMARK_CACERT"), "PEM CA certificates that verify an https server (env SEAMARK_CACERT; default: the system's roots)")
	pf.StringVar(&cf.tls.CertFile, "cert-file", os.Getenv("SEAMARK_CERT"), "PEM client certificate presented when the server asks for one (env SEAMARK_CERT)")
	pf.StringVar(&cf.tls.KeyFile, "key-file", os.Getenv("SEAMARK_KEY"), "PEM key of --cert-file (env SEAMARK_KEY)")
	pf.StringVarP(&cf.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(
		newServerCmd(),
		newUpgradeCmd(),
		newValidateCmd(),
		newVersionCmd(),
		newStatusCmd(cf),
		newServicesCmd(cf),
		newNodesCmd(cf),
		newEventsCmd(cf),
		newListenersCmd(cf),
		newGroupsCmd(cf),
		newProbeCmd(cf),
		newAgentCmd(cf),
		newDrainCmd(cf), newMaintCmd(cf), newReadyCmd(cf), newWeightCmd(cf),
	)
	addCompletions(root, cf)
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the seamark version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "seamark", Version)
			return nil
		},
	}
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func withTimeout(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), 10*time.Second)
}
