package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/agent"
)

// agentFlags are the flag values of `seamark agent`; only the ones the user
// set override the config file.
type agentFlags struct {
	configPath          string
	service             string
	port                int
	id, stateFile       string
	address             string
	addressFrom         []string
	imdsTokenURL        string
	alternates          []string
	checkAddr           string
	weight              int
	tags                []string
	ttl, unhealthyAfter time.Duration
	checkInterval       time.Duration
	waitTimeout         time.Duration
	backoffMin          time.Duration
	backoffMax          time.Duration
	identityAddr        string
	logLevel, logFormat string

	// TLS of the identity endpoint.
	identityCertFile, identityKeyFile string
}

func newAgentCmd(cf *clientFlags) *cobra.Command {
	af := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent --service NAME --port N [flags] [-- CMD ARGS...]",
		Short: "Register this node once its port is up, keep it registered, remove it on stop",
		Long: `Register this machine as a node of a service once the service's port accepts
connections, keep the registration alive on a lease, mark the node unhealthy
when the port stops answering for --unhealthy-after, and deregister it on
SIGTERM or SIGINT (then exit 0). Killed without a word, the node disappears
when its lease runs out, within --ttl. When no --server answers, the agent
retries with backoff and registers again when one is back.

The access address is the first that --address or --address-from yields:
  --address 10.0.1.5                         a literal
  --address-from iface:eth0                  an interface's address
  --address-from url:http://169.254.169.254/latest/meta-data/public-ipv4
                                             a metadata endpoint (with
                                             --imds-token-url for IMDSv2)
  --address-from route:10.0.0.1              the source address towards a host
  --address-from cmd:'hostname -I'           the first word a command prints
Without either, route: towards the first --server is used.

With "-- CMD ARGS..." the agent starts CMD as its child, passes signals on to
it, registers once its port answers, deregisters when it exits, and exits
with its exit code. --config reads the same settings from a YAML file; flags
win over it. See docs/agent.md.`,
		Example: `  seamark agent --server http://10.0.0.1:9400 --service db --port 3000 \
      --address-from iface:eth0 --alternate public=url:http://169.254.169.254/latest/meta-data/public-ipv4 \
      --imds-token-url http://169.254.169.254/latest/api/token
  seamark agent --service cache --port 6379 -- redis-server --port 6379
  seamark agent --config /etc/seamark/agent.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("unexpected argument %q: put the command to wrap after --, like seamark agent --service db --port 3000 -- db-server --port 3000", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), af.logLevel, af.logFormat)
			if err != nil {
				return err
			}
			cfg, err := af.config(cmd.Flags(), cf, args)
			if err != nil {
				return err
			}
			a, err := agent.New(*cfg, log)
			if err != nil {
				return fmt.Errorf("agent config rejected:\n%w", err)
			}
			if err := a.Listen(); err != nil {
				return err
			}
			log.Info("seamark agent starting", "version", Version, "service", cfg.Service, "port", cfg.Port, "id", a.NodeID().ID, "id_from", a.NodeID().From,
				"servers", strings.Join(cfg.Servers, ","), "ttl", cfg.TTL, "lease", a.Lease())
			if w := a.NodeID().Warning; w != "" {
				log.Warn("the state file cannot keep the node ID; using the host name", "err", w)
			}
			if len(cfg.Command) == 0 {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if err := a.Run(ctx); err != nil {
					return err
				}
				log.Info("stopped")
				return nil
			}
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, agent.ForwardedSignals...)
			defer signal.Stop(sigs)
			child, err := agent.StartChild(cfg.Command, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			log.Info("started the child", "pid", child.Pid(), "command", strings.Join(cfg.Command, " "))
			code, err := agent.Wrap(cmd.Context(), a, child, sigs)
			if err != nil {
				return err
			}
			return exitError{code: code}
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&af.configPath, "config", "c", "", "agent config file (YAML, keys as in docs/agent.md); flags win over it")
	fl.StringVar(&af.service, "service", "", "the service this node joins (must exist on the server)")
	fl.IntVar(&af.port, "port", 0, "the port the service listens on and clients connect to")
	fl.StringVar(&af.id, "id", "", "node ID (default: the ID kept in --state-file, else the host name)")
	fl.StringVar(&af.stateFile, "state-file", agent.DefaultStateFile, `file that keeps a generated node ID across restarts ("none": off)`)
	fl.StringVar(&af.address, "address", "", "the access address clients must use (an IP address)")
	fl.StringArrayVar(&af.addressFrom, "address-from", nil, "where to find the access address: iface:NAME, url:URL, route:HOST or cmd:COMMAND (repeat: first that yields wins)")
	fl.StringVar(&af.imdsTokenURL, "imds-token-url", "", "IMDSv2 token URL: url: sources PUT here for a session token and send it")
	fl.StringArrayVar(&af.alternates, "alternate", nil, "a further address with a label, LABEL=SOURCE (public=url:..., private=iface:eth0, lan=10.0.1.5); repeatable")
	fl.StringVar(&af.checkAddr, "check-addr", "", "where to probe the service port, host:port (default: the access address when local, else 127.0.0.1)")
	fl.IntVar(&af.weight, "weight", 1, "the node's weight (1-1000)")
	fl.StringArrayVar(&af.tags, "tag", nil, "a tag KEY=VALUE registered with the node; repeatable")
	fl.DurationVar(&af.ttl, "ttl", agent.DefaultTTL, "longest a node stays registered after the agent dies without a word (at least 1.5s)")
	fl.DurationVar(&af.unhealthyAfter, "unhealthy-after", agent.DefaultUnhealthyAfter, "mark the node unhealthy once the port has not answered for this long")
	fl.DurationVar(&af.checkInterval, "check-interval", 0, "how often to probe the port (default: the smaller of 1s and unhealthy-after/4)")
	fl.DurationVar(&af.waitTimeout, "wait-timeout", 0, "give up when the port has not accepted a connection this long after start (0: wait for ever)")
	fl.DurationVar(&af.backoffMin, "backoff-min", agent.DefaultBackoffMin, "first retry delay while no server answers")
	fl.DurationVar(&af.backoffMax, "backoff-max", agent.DefaultBackoffMax, "longest retry delay while no server answers")
	fl.StringVar(&af.identityCertFile, "identity-cert-file", "", "serve the identity endpoint over TLS with this PEM certificate (with --identity-key-file)")
	fl.StringVar(&af.identityKeyFile, "identity-key-file", "", "PEM key of --identity-cert-file")
	fl.StringVar(&af.identityAddr, "identity-addr", "", "serve the identity endpoint (GET "+api.IdentityPath+") on host:port (default: off)")
	fl.StringVar(&af.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&af.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// config builds the agent's config: the file's (when --config is given), then
// every flag the user set on top, then defaults.
func (af *agentFlags) config(fs *pflag.FlagSet, cf *clientFlags, args []string) (*agent.Config, error) {
	cfg := &agent.Config{}
	if af.configPath != "" {
		var err error
		if cfg, err = agent.LoadConfig(af.configPath); err != nil {
			return nil, fmt.Errorf("agent config rejected:\n%w", err)
		}
	}
	var errs []string
	set := map[string]struct {
		key string
		fn  func()
	}{
		"service":         {"service", func() { cfg.Service = af.service }},
		"port":            {"port", func() { cfg.Port = af.port }},
		"id":              {"id", func() { cfg.ID = af.id }},
		"state-file":      {"state_file", func() { cfg.StateFile = af.stateFile }},
		"address":         {"address", func() { cfg.Address = af.address }},
		"address-from":    {"address_from", func() { cfg.AddressFrom = af.addressFrom }},
		"imds-token-url":  {"imds_token_url", func() { cfg.IMDSTokenURL = af.imdsTokenURL }},
		"check-addr":      {"check_addr", func() { cfg.CheckAddr = af.checkAddr }},
		"weight":          {"weight", func() { cfg.Weight = af.weight }},
		"ttl":             {"ttl", func() { cfg.TTL = api.Duration(af.ttl) }},
		"unhealthy-after": {"unhealthy_after", func() { cfg.UnhealthyAfter = api.Duration(af.unhealthyAfter) }},
		"check-interval":  {"check_interval", func() { cfg.CheckInterval = api.Duration(af.checkInterval) }},
		"wait-timeout":    {"wait_timeout", func() { cfg.WaitTimeout = api.Duration(af.waitTimeout) }},
		"backoff-min":     {"backoff_min", func() { cfg.BackoffMin = api.Duration(af.backoffMin) }},
		"backoff-max":     {"backoff_max", func() { cfg.BackoffMax = api.Duration(af.backoffMax) }},
		"identity-addr":   {"identity_addr", func() { cfg.IdentityAddr = af.identityAddr }},
		"alternate": {"alternates", func() {
			cfg.Alternates = nil
			for _, s := range af.alternates {
				alt, err := agent.ParseAlternate(s)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				cfg.Alternates = append(cfg.Alternates, alt)
			}
		}},
		"tag": {"tags", func() {
			cfg.Tags = map[string]string{}
			for _, s := range af.tags {
				k, v, ok := strings.Cut(s, "=")
				if !ok {
					errs = append(errs, fmt.Sprintf("--tag %q: write KEY=VALUE, like az=eu-west-1a", s))
					continue
				}
				cfg.Tags[k] = v
			}
		}},
	}
	fs.Visit(func(f *pflag.Flag) {
		if s, ok := set[f.Name]; ok {
			s.fn()
			cfg.SetByFlag(s.key)
		}
	})
	if fs.Changed("server") || !cfg.InFile("servers") {
		cfg.Servers = nil
		for _, s := range strings.Split(cf.servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Servers = append(cfg.Servers, s)
			}
		}
		cfg.SetByFlag("servers")
	}
	switch {
	case cf.token != "":
		cfg.Token = cf.token
	case cfg.TokenFile != "":
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			errs = append(errs, fmt.Sprintf("token_file: %v", err))
		}
		cfg.Token = strings.TrimSpace(string(data))
	}
	for _, f := range []struct {
		key, v string
		dst    *string
	}{
		{"ca_file", cf.tls.CAFile, &cfg.CAFile}, {"cert_file", cf.tls.CertFile, &cfg.CertFile}, {"key_file", cf.tls.KeyFile, &cfg.KeyFile},
		{"identity_cert_file", af.identityCertFile, &cfg.IdentityCertFile}, {"identity_key_file", af.identityKeyFile, &cfg.IdentityKeyFile},
	} {
		if f.v != "" { // TLS flags (and the env of the client ones) win over the file
			*f.dst = f.v
			cfg.SetByFlag(f.key)
		}
	}
	if len(args) > 0 {
		cfg.Command = args
		cfg.SetByFlag("command")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("agent config rejected:\n%s", strings.Join(errs, "\n"))
	}
	cfg.SetDefaults()
	return cfg, nil
}
