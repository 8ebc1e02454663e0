package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/seed"
)

// probeFlags are the knobs of `seamark probe`.
type probeFlags struct {
	dnsServer      string
	identityPort   int
	service        string
	alternate      string
	attemptDelay   time.Duration
	attemptTimeout time.Duration
	timeout        time.Duration
	maxConcurrent  int
}

// probeAttempt is one connection attempt as probe reports it.
type probeAttempt struct {
	Addr    netip.AddrPort `json:"addr"`
	Start   time.Duration  `json:"start_ns"`
	Took    time.Duration  `json:"took_ns"`
	Outcome string         `json:"outcome"` // connected, failed, cancelled, running
	Error   string         `json:"error,omitempty"`
}

// probeReport is what `seamark probe -o json` prints.
type probeReport struct {
	Target      string           `json:"target"`
	Host        string           `json:"host"`
	Resolved    []netip.AddrPort `json:"resolved"`
	ResolveTook time.Duration    `json:"resolve_took_ns"`
	ResolveErr  string           `json:"resolve_error,omitempty"`
	Attempts    []*probeAttempt  `json:"attempts"`
	Connected   netip.AddrPort   `json:"connected,omitzero"`
	Elapsed     time.Duration    `json:"elapsed_ns"`
	DialErr     string           `json:"dial_error,omitempty"`

	// The cluster, when --identity-port or --service is given.
	ClusterChecked bool           `json:"cluster_checked"`
	Seed           *seed.SeedInfo `json:"seed,omitempty"`
	Nodes          []seed.Node    `json:"nodes,omitempty"`
	ClusterErr     string         `json:"cluster_error,omitempty"`
}

// dialTrace turns trace events into the report's resolution and attempts.
type dialTrace struct {
	mu sync.Mutex
	r  *probeReport
	by map[netip.AddrPort]*probeAttempt
}

func (d *dialTrace) add(e seed.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Kind {
	case seed.EventResolved:
		d.r.Host, d.r.Resolved, d.r.ResolveTook = e.Host, e.Addrs, e.Took
		if e.Err != nil {
			d.r.ResolveErr = e.Err.Error()
		}
	case seed.EventAttempt:
		a := &probeAttempt{Addr: e.Addr, Start: e.Elapsed, Outcome: "running"}
		d.r.Attempts = append(d.r.Attempts, a)
		d.by[e.Addr] = a
	case seed.EventFailed, seed.EventCancelled, seed.EventConnected:
		a := d.by[e.Addr]
		if a == nil {
			return
		}
		a.Took, a.Outcome = e.Took, e.Kind.String()
		if e.Err != nil && e.Kind == seed.EventFailed {
			a.Error = e.Err.Error()
		}
		if e.Kind == seed.EventConnected {
			d.r.Connected, d.r.Elapsed = e.Addr, e.Elapsed
		}
	}
}

func newProbeCmd(cf *clientFlags) *cobra.Command {
	var pf probeFlags
	cmd := &cobra.Command{
		Use:   "probe NAME:PORT",
		Short: "Show what a client sees when it connects to NAME:PORT: addresses, attempts, balancer, nodes",
		Long: `probe connects to NAME:PORT the way the seed library does and shows every
address the name resolves to, each connection attempt with its outcome and
time, and which one won. With --identity-port (the port of the agents'
identity endpoints, seamark agent --identity-addr) it also asks the node it
reaches who it is, says whether a load balancer or NAT stands in between, and
lists the node map a client would keep. With --service it takes the node map
from the seamark API (--server) instead.

This is the tool to run when "the client takes 30 s to connect".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProbe(cmd.Context(), cmd.OutOrStdout(), cf, pf, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&pf.dnsServer, "dns-server", "", "resolve through this DNS server (IP:port) instead of the system's resolver")
	fl.IntVar(&pf.identityPort, "identity-port", 0, "port of the agents' identity endpoints: also detect a balancer and list the nodes")
	fl.StringVar(&pf.service, "service", "", "list the nodes of this service from the seamark API (--server)")
	fl.StringVar(&pf.alternate, "alternate", "", "use the nodes' alternate addresses with this label (\"public\")")
	fl.DurationVar(&pf.attemptDelay, "attempt-delay", seed.DefaultAttemptDelay, "how long the first attempt may go unanswered before the next starts")
	fl.DurationVar(&pf.attemptTimeout, "attempt-timeout", seed.DefaultAttemptTimeout, "time limit of one connection attempt")
	fl.DurationVar(&pf.timeout, "timeout", seed.DefaultTimeout, "time limit of the whole connection, resolution included")
	fl.IntVar(&pf.maxConcurrent, "max-concurrent", seed.DefaultMaxConcurrent, "attempts in flight at once")
	return cmd
}

func runProbe(ctx context.Context, w io.Writer, cf *clientFlags, pf probeFlags, target string) error {
	if cf.output != "json" && cf.output != "table" && cf.output != "" {
		return fmt.Errorf("-o: %q is not table or json", cf.output)
	}
	if pf.identityPort < 0 || pf.identityPort > 65535 {
		return fmt.Errorf("--identity-port: %d is not a port", pf.identityPort)
	}
	opts := []seed.Option{
		seed.WithAttemptDelay(pf.attemptDelay), seed.WithAttemptTimeout(pf.attemptTimeout),
		seed.WithTimeout(pf.timeout), seed.WithMaxConcurrent(pf.maxConcurrent),
	}
	if pf.dnsServer != "" {
		opts = append(opts, seed.WithDNSServer(pf.dnsServer))
	}
	r := &probeReport{Target: target}
	tr := &dialTrace{r: r, by: map[netip.AddrPort]*probeAttempt{}}
	conn, dialErr := seed.Dial(ctx, target, append(opts, seed.WithTrace(tr.add))...)
	if dialErr != nil {
		r.DialErr = dialErr.Error()
	} else {
		conn.Close()
	}

	if host, _, err := net.SplitHostPort(target); err == nil && (pf.identityPort > 0 || pf.service != "") {
		r.ClusterChecked = true
		cfg := seed.Config{Alternate: pf.alternate, DialOptions: opts, TendInterval: time.Hour}
		if pf.identityPort > 0 {
			cfg.Seeds = []string{net.JoinHostPort(host, strconv.Itoa(pf.identityPort))}
		}
		if pf.service != "" {
			cfg.Servers, cfg.Service, cfg.Token = strings.Split(cf.servers, ","), pf.service, cf.token
		}
		c, err := seed.NewCluster(ctx, cfg)
		if err != nil {
			r.ClusterErr = err.Error()
		} else {
			info := c.Seeded()
			r.Seed, r.Nodes = &info, c.Nodes()
			c.Close()
		}
	}

	if cf.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printProbe(w, r, pf)
	}
	switch {
	case dialErr != nil:
		return exitError{code: 1}
	case r.ClusterErr != "":
		return exitError{code: 2}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func printProbe(w io.Writer, r *probeReport, pf probeFlags) {
	via := "the system's resolver"
	if pf.dnsServer != "" {
		via = pf.dnsServer
	}
	switch {
	case r.ResolveErr != "":
		fmt.Fprintf(w, "resolve %s through %s: %s\n", r.Host, via, r.ResolveErr)
	case r.Host != "":
		fmt.Fprintf(w, "resolve %s through %s: %d addresses in %s, tried in this order:\n", r.Host, via, len(r.Resolved), ms(r.ResolveTook))
		for i, a := range r.Resolved {
			fmt.Fprintf(w, "  %2d  %s\n", i+1, a)
		}
	}
	if len(r.Attempts) > 0 {
		fmt.Fprintf(w, "\nattempts (next after %s, or at once on a failure; %d at most at once; each %s at most):\n",
			pf.attemptDelay, pf.maxConcurrent, pf.attemptTimeout)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  START\tADDRESS\tOUTCOME\tTOOK\tERROR")
		for _, a := range r.Attempts {
			fmt.Fprintf(tw, "  +%s\t%s\t%s\t%s\t%s\n", ms(a.Start), a.Addr, a.Outcome, ms(a.Took), a.Error)
		}
		tw.Flush()
	}
	if r.DialErr != "" {
		fmt.Fprintf(w, "\nno connection: %s\n", r.DialErr)
	} else {
		fmt.Fprintf(w, "\nconnected to %s after %s (%d of %d addresses tried)\n", r.Connected, ms(r.Elapsed), len(r.Attempts), len(r.Resolved))
	}
	if !r.ClusterChecked {
		fmt.Fprintln(w, "balancer: not checked (give --identity-port, the port of the agents' identity endpoints, or --service)")
		return
	}
	if r.ClusterErr != "" {
		fmt.Fprintf(w, "cluster: %s\n", r.ClusterErr)
		return
	}
	switch s := r.Seed; {
	case s.Via == "api":
		fmt.Fprintln(w, "cluster: nodes from the seamark API (balancer not checked: give --identity-port)")
	case s.Balancer:
		fmt.Fprintf(w, "balancer: detected: %s answered as node %s, whose own address is %s; clients connect to the nodes directly\n", s.Dialled, s.Node, s.NodeAddr)
	default:
		fmt.Fprintf(w, "balancer: none: %s is node %s's own address\n", s.Dialled, s.Node)
	}
	fmt.Fprintf(w, "\nnodes (%d):\n", len(r.Nodes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tADDRESS\tACCESS\tALTERNATES")
	for _, n := range r.Nodes {
		var alts []string
		for _, a := range n.Alternates {
			alts = append(alts, a.Label+"="+a.Address.String())
		}
		alt := strings.Join(alts, ",")
		if alt == "" {
			alt = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.ID, n.Addr, n.Access, alt)
	}
	tw.Flush()
}
