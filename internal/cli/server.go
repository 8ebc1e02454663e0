package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/api"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/sdnotify"
	"github.com/seamark/seamark/internal/server"
)

func newServerCmd() *cobra.Command {
	var (
		configPath          string
		logLevel, logFormat string
		flagSrv             config.Server
		pidFile             string
		upgradeTimeout      time.Duration
		drainMax            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the seamark server (store, registry, HTTP API)",
		Long: `Run the seamark server. With no flags it starts an embedded single-node etcd
in ./seamark-data and serves the HTTP API on 127.0.0.1:9400. With
--etcd-endpoints it uses that etcd cluster instead, so several servers can
share one store.

--config names the desired-state file (YAML or JSON, see docs/config.md). It is
applied on start and again on SIGHUP; a file with any error is rejected whole
and the running state stays. Flags override the file's server: section.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return err
			}
			f := &config.File{}
			if configPath != "" {
				if f, err = config.Load(configPath); err != nil {
					return fmt.Errorf("config rejected:\n%w", err)
				}
			} else {
				f.SetDefaults()
			}
			overrideServer(cmd.Flags(), &f.Server, flagSrv)
			f.SetDefaults() // defaults that hang on overridden keys (tls.client_auth)
			if err := f.Validate(); err != nil {
				return fmt.Errorf("config rejected:\n%w", err)
			}
			if err := f.ReadSecrets(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGUSR2 upgrades in place (upgrade.go); caught from the start,
			// as its default action would end the process.
			usr2 := make(chan os.Signal, 1)
			signal.Notify(usr2, syscall.SIGUSR2)
			defer signal.Stop(usr2)
			startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
			// The embedded etcd runs as a child of this binary, so its
			// fatal exits cannot take the serving roles down.
			var etcdCmd []string
			if exe, err := os.Executable(); err == nil {
				etcdCmd = []string{exe, "__etcd", "--log-format", logFormat}
			}
			// Upgrade in place: a predecessor handed its sockets (and its
			// etcd child) over; see upgrade.go.
			ho, succ, err := upgradeFromEnv(f, log)
			if err != nil {
				cancel()
				return err
			}
			srv, err := server.Start(startCtx, server.Options{
				Config: f, ConfigPath: configPath, Logger: log, Version: Version, EtcdCommand: etcdCmd,
				Handover: ho, AdoptEtcd: succ.etcd, Successor: succ.upgraded,
			})
			cancel()
			if err != nil && ctx.Err() != nil && !succ.upgraded {
				// SIGTERM or SIGINT while starting: a clean stop, not a failure.
				log.Info("stopped while starting", "err", err)
				return nil
			}
			if err != nil {
				if succ.upgraded {
					return fmt.Errorf("upgrade: the new process could not start (the old one serves on): %w", err)
				}
				return err
			}
			if succ.upgraded {
				if err := succ.takeOver(ctx, srv, ho, log); err != nil {
					return err
				}
			}
			log.Info("seamark server running", "version", Version, "http", srv.HTTPAddr().String(), "dns", srv.DNSAddr().String(), "store", srv.Store().Kind())
			// The supervisor (systemd Type=notify) hears READY, RELOADING and
			// STOPPING, and the watchdog while the snapshot is there.
			notify := sdnotify.New(os.Getenv)
			logNotify := func(err error) {
				if err != nil {
					log.Warn("sd_notify", "err", err)
				}
			}
			status := "serving: http " + srv.HTTPAddr().String() + ", dns " + srv.DNSAddr().String()
			if succ.upgraded {
				// systemd (NotifyAccess=all) follows the new main process.
				logNotify(notify.Send(fmt.Sprintf("MAINPID=%d", os.Getpid()), "READY=1", "STATUS=upgraded; "+status))
			} else {
				logNotify(notify.Ready(status))
			}
			if pidFile != "" {
				if err := writePidFile(pidFile); err != nil {
					log.Warn("pid file not written", "file", pidFile, "err", err)
				} else {
					defer removePidFile(pidFile)
				}
			}
			wdCtx, wdStop := context.WithCancel(ctx)
			wdDone := make(chan struct{})
			go func() {
				defer close(wdDone)
				notify.RunWatchdog(wdCtx, func() bool { return srv.Snapshots().Current() != nil })
			}()
			defer func() { wdStop(); <-wdDone }()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-usr2:
					// One upgrade at a time: this loop runs it to the end.
					if upgraded := upgradeTo(ctx, srv, ho, log, upgradeTimeout, drainMax); upgraded {
						log.Info("upgrade: handed over to the new process; exiting")
						wdStop()
						<-wdDone
						return srv.Close()
					}
				case <-hup:
					logNotify(notify.Reloading())
					rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					if err := srv.Reload(rctx); errors.Is(err, server.ErrRestartNeeded) {
						log.Warn("reload", "err", err)
					} else if err != nil {
						log.Error("reload", "err", err)
						logNotify(notify.Ready("reload failed, serving the previous config: " + firstLine(err.Error())))
					} else {
						log.Info("reloaded", "file", configPath)
						logNotify(notify.Ready("serving: reloaded " + configPath))
					}
					cancel()
				case <-ctx.Done():
					log.Info("stopping")
					logNotify(notify.Stopping())
					return srv.Close()
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&configPath, "config", "c", "", "desired-state file (YAML or JSON)")
	fl.StringVar(&flagSrv.HTTPAddr, "http-addr", "127.0.0.1:9400", "HTTP API and dashboard address")
	fl.StringVar(&flagSrv.DNSAddr, "dns-addr", "127.0.0.1:9453", "DNS address (UDP and TCP)")
	fl.StringVar(&flagSrv.DataDir, "data-dir", "./seamark-data", "data directory of the embedded store")
	fl.StringSliceVar(&flagSrv.EtcdEndpoints, "etcd-endpoints", nil, "use this etcd cluster instead of the embedded store (comma separated URLs)")
	fl.StringVar(&flagSrv.EtcdClientAddr, "etcd-client-addr", "127.0.0.1:9479", "embedded etcd client listener (loopback)")
	fl.StringVar(&flagSrv.EtcdPeerAddr, "etcd-peer-addr", "127.0.0.1:9480", "embedded etcd peer listener (loopback)")
	fl.StringVar(&flagSrv.StorePrefix, "store-prefix", "/seamark/", "key prefix in etcd")
	fl.StringVar(&flagSrv.Name, "name", "", "this server's name among servers sharing a store (default: host name and a random suffix)")
	fl.StringVar(&flagSrv.Member, "member", "", "campaign as this member of every balancer group that lists it (e.g. lb1)")
	fl.StringVar(&flagSrv.TLS.CertFile, "tls-cert-file", "", "serve the HTTP API over https with this PEM certificate (chain); re-read on SIGHUP")
	fl.StringVar(&flagSrv.TLS.KeyFile, "tls-key-file", "", "PEM key of --tls-cert-file")
	fl.StringVar(&flagSrv.TLS.ClientCAFile, "tls-client-ca-file", "", "verify API client certificates against these PEM CA certificates (mutual TLS)")
	fl.StringVar(&flagSrv.TLS.ClientAuth, "tls-client-auth", "", "client certificates: none, request or require (default require with --tls-client-ca-file)")
	fl.StringVar(&flagSrv.EtcdTLS.CAFile, "etcd-ca-file", "", "PEM CA certificates of the external etcd cluster")
	fl.StringVar(&flagSrv.EtcdTLS.CertFile, "etcd-cert-file", "", "PEM client certificate presented to the external etcd cluster")
	fl.StringVar(&flagSrv.EtcdTLS.KeyFile, "etcd-key-file", "", "PEM key of --etcd-cert-file")
	fl.StringVar(&flagSrv.EtcdUsername, "etcd-username", "", "user of the external etcd cluster (with --etcd-password-file)")
	fl.StringVar(&flagSrv.EtcdPasswordFile, "etcd-password-file", "", "file holding --etcd-username's password")
	fl.BoolVar(&flagSrv.InsecureExpose, "insecure-expose", false, "start even when the API or the embedded store listens on a non-loopback address without TLS and a token")
	fl.Var(durationFlag{&flagSrv.CheckerLeaseTTL}, "checker-lease-ttl", "lease of this server's health checker: its nodes move to the other servers this long after it dies (default 3s)")
	flagBalancer := fl.Bool("balancer", true, "run the listeners (TCP load balancer) on this server")
	flagSrv.Balancer = flagBalancer
	fl.StringVar(&pidFile, "pid-file", "", "write the server's process ID here, for seamark upgrade; the new process rewrites it after an upgrade")
	fl.DurationVar(&upgradeTimeout, "upgrade-timeout", 60*time.Second, "on SIGUSR2, how long the new binary may take to serve before the old process gives up on it and serves on")
	fl.DurationVar(&drainMax, "upgrade-drain-max", 15*time.Minute, "after an upgrade, the longest the old process drains its balancer connections (each listener's drain_timeout applies first)")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// durationFlag is a flag of an api.Duration.
type durationFlag struct{ d *api.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Set(s string) error { return f.d.UnmarshalText([]byte(s)) }
func (f durationFlag) Type() string       { return "duration" }

// overrideServer copies every flag the user set onto the file's server section.
func overrideServer(fs *pflag.FlagSet, dst *config.Server, src config.Server) {
	set := map[string]func(){
		"http-addr":         func() { dst.HTTPAddr = src.HTTPAddr },
		"dns-addr":          func() { dst.DNSAddr = src.DNSAddr },
		"data-dir":          func() { dst.DataDir = src.DataDir },
		"etcd-endpoints":    func() { dst.EtcdEndpoints = src.EtcdEndpoints },
		"etcd-client-addr":  func() { dst.EtcdClientAddr = src.EtcdClientAddr },
		"etcd-peer-addr":    func() { dst.EtcdPeerAddr = src.EtcdPeerAddr },
		"store-prefix":      func() { dst.StorePrefix = src.StorePrefix },
		"name":              func() { dst.Name = src.Name },
		"balancer":          func() { dst.Balancer = src.Balancer },
		"member":            func() { dst.Member = src.Member },
		"checker-lease-ttl": func() { dst.CheckerLeaseTTL = src.CheckerLeaseTTL },
	}
	maps.Copy(set, securityOverrides(dst, src))
	fs.Visit(func(f *pflag.Flag) {
		if fn, ok := set[f.Name]; ok {
			fn()
		}
	})
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a config file and print every problem in it",
		Long: `Check a config file the way the server would, and print every problem with
its file, line and key path. Exits 1 when the file would be rejected; warnings
(things that are valid but probably not what you mean) do not fail it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := config.Load(args[0])
			if err == nil {
				// As the server does: every secret_file must exist and be
				// readable.
				err = f.ReadSecrets()
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			for _, w := range f.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if !f.AllowEmpty && len(f.Zones)+len(f.Services)+len(f.Listeners)+len(f.Groups) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: the file has no zones, services, listeners or groups; a running server refuses it on reload unless it says \"allow_empty: true\"")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d zones, %d services, %d listeners, %d groups)\n",
				args[0], len(f.Zones), len(f.Services), len(f.Listeners), len(f.Groups))
			return nil
		},
	}
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// securityOverrides copy the TLS, store credential and exposure flags.
func securityOverrides(dst *config.Server, src config.Server) map[string]func() {
	return map[string]func(){
		"tls-cert-file":      func() { dst.TLS.CertFile = absPath(src.TLS.CertFile) },
		"tls-key-file":       func() { dst.TLS.KeyFile = absPath(src.TLS.KeyFile) },
		"tls-client-ca-file": func() { dst.TLS.ClientCAFile = absPath(src.TLS.ClientCAFile) },
		"tls-client-auth":    func() { dst.TLS.ClientAuth = src.TLS.ClientAuth },
		"etcd-ca-file":       func() { dst.EtcdTLS.CAFile = absPath(src.EtcdTLS.CAFile) },
		"etcd-cert-file":     func() { dst.EtcdTLS.CertFile = absPath(src.EtcdTLS.CertFile) },
		"etcd-key-file":      func() { dst.EtcdTLS.KeyFile = absPath(src.EtcdTLS.KeyFile) },
		"etcd-username":      func() { dst.EtcdUsername = src.EtcdUsername },
		"etcd-password-file": func() { dst.EtcdPasswordFile = absPath(src.EtcdPasswordFile) },
		"insecure-expose":    func() { dst.InsecureExpose = src.InsecureExpose },
	}
}

// absPath makes a file named on the command line independent of the working
// directory the server may later change to ("" stays "").
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
