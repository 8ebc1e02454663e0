package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

// statusView is what `seamark status` shows: the server's /v1/status, and
// what an operator looks for next — nodes that are down, the balancer's
// ports and connections on this server, and each group's active member.
// With -o json the fields of /v1/status stay at the top level.
type statusView struct {
	api.Status
	// Dashboard is the address of the server's web dashboard.
	Dashboard string `json:"dashboard"`
	// DownNodes are "service/node" of every node that is not answered.
	DownNodes []string `json:"down_nodes"`
	// Balancer sums up this server's listener ports; nil when it could
	// not be read.
	Balancer *balancerSummary `json:"balancer,omitempty"`
	// GroupRoles say who is active in each balancer group.
	GroupRoles []groupRole `json:"group_roles"`
	// AdminOut are "service/node (state)" of every node an operator drained
	// or put in maint: not answered, though healthy.
	AdminOut []string `json:"admin_out"`
}

type balancerSummary struct {
	Ports     int   `json:"ports"`
	Listening int   `json:"listening"`
	Failed    int   `json:"failed"`
	Draining  int   `json:"draining"`
	Active    int64 `json:"active_connections"`
}

type groupRole struct {
	Group  string   `json:"group"`
	Mode   string   `json:"mode"`
	Active string   `json:"active,omitempty"`
	Since  string   `json:"since,omitempty"`
	Answer []string `json:"answer"`
}

func newStatusCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "One-screen summary of a running server: store, nodes down, listeners, groups",
		Long: `Show a running server's state on one screen: version and store, revisions, zones,
services, nodes (naming the ones that are down), health checkers, the balancer's
ports and open connections on this server, and each balancer group's active
member. -o json prints the same for scripts (the fields of GET /v1/status at
the top level).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			v, err := readStatus(ctx, c, cf.servers)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), cf, v, func(tw *tabwriter.Writer) { v.table(tw) })
		},
	}
}

// readStatus asks the server for its status, then for nodes, balancer
// counters and groups; those three are best effort (an older server may not
// answer them) and are left out when they fail.
func readStatus(ctx context.Context, c *api.Client, servers string) (*statusView, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(servers, ",")
	if !strings.Contains(first, "://") {
		first = "http://" + first
	}
	v := &statusView{Status: st, Dashboard: strings.TrimSuffix(first, "/") + "/ui/", DownNodes: []string{}, GroupRoles: []groupRole{}, AdminOut: []string{}}
	if nodes, _, err := c.AllNodes(ctx, nil); err == nil {
		for _, n := range nodes {
			if !n.Healthy {
				v.DownNodes = append(v.DownNodes, n.Service+"/"+n.ID)
			}
			if n.Admin.Out() {
				v.AdminOut = append(v.AdminOut, fmt.Sprintf("%s/%s (%s)", n.Service, n.ID, n.Admin.State))
			}
		}
	}
	if ports, err := c.BalancerStats(ctx, ""); err == nil {
		b := &balancerSummary{Ports: len(ports)}
		for _, p := range ports {
			switch p.State {
			case api.ListenerListening:
				b.Listening++
			case api.ListenerFailed:
				b.Failed++
			case api.ListenerDraining:
				b.Draining++
			}
			b.Active += p.Active
		}
		v.Balancer = b
	}
	if groups, err := c.Groups(ctx); err == nil {
		for _, g := range groups {
			r := groupRole{Group: g.Name, Mode: g.Mode, Answer: []string{}}
			if g.Active != nil {
				r.Active, r.Since = g.Active.Member, g.Active.Since.Format(time.RFC3339)
			}
			for _, a := range g.Answer {
				r.Answer = append(r.Answer, a.String())
			}
			v.GroupRoles = append(v.GroupRoles, r)
		}
	}
	return v, nil
}

func (v *statusView) table(tw *tabwriter.Writer) {
	st := v.Status
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	fmt.Fprintf(tw, "up since\t%s (%s)\n", st.StartedAt.Format(time.RFC3339), time.Since(st.StartedAt).Round(time.Second))
	fmt.Fprintf(tw, "store\t%s %s (etcd %s, leader %s)\n", st.Store.Kind, strings.Join(st.Store.Endpoints, ","), st.Store.EtcdVersion, st.Store.Leader)
	if !st.Store.Available && st.Store.Error != "" {
		fmt.Fprintf(tw, "store unavailable\t%s (writes answer 503; DNS and the balancer serve the last snapshot)\n", st.Store.Error)
	}
	if c := st.Config; c != nil && !c.LastReloadSuccess {
		fmt.Fprintf(tw, "config reload refused\t%s ago: %s\n", time.Since(c.LastReload).Round(time.Second), c.Error)
	}
	lag := ""
	if d := st.Store.Revision - st.SnapshotRevision; d > 0 {
		lag = fmt.Sprintf(" (%d behind)", d)
	}
	fmt.Fprintf(tw, "revision\tstore %d, snapshot %d%s\n", st.Store.Revision, st.SnapshotRevision, lag)
	fmt.Fprintf(tw, "zones\t%s\n", orNone(strings.Join(st.Zones, " ")))
	fmt.Fprintf(tw, "services\t%d\n", st.Services)
	down := ""
	if n := len(v.DownNodes); n > 0 {
		shown := v.DownNodes[:min(n, 5)]
		down = "; down: " + strings.Join(shown, " ")
		if n > len(shown) {
			down += fmt.Sprintf(" and %d more (seamark nodes)", n-len(shown))
		}
	}
	if n := len(v.AdminOut); n > 0 {
		down += "; taken out: " + strings.Join(v.AdminOut[:min(n, 5)], " ")
		if n > 5 {
			down += fmt.Sprintf(" and %d more", n-5)
		}
	}
	fmt.Fprintf(tw, "nodes\t%d (%d healthy%s)\n", st.Nodes, st.HealthyNodes, down)
	ids := make([]string, len(st.Checkers))
	for i, c := range st.Checkers {
		ids[i] = c.ID
		if c.Degraded != "" {
			ids[i] += " [degraded: " + c.Degraded + "]"
		}
	}
	checkers := fmt.Sprint(len(ids))
	if len(ids) > 0 {
		checkers += " (" + strings.Join(ids, " ") + ")"
	}
	fmt.Fprintf(tw, "checkers\t%s\n", checkers)
	lst := fmt.Sprintf("%d", st.Listeners)
	if b := v.Balancer; b != nil {
		var parts []string
		parts = append(parts, plural(b.Listening, "port")+" listening here")
		if b.Failed > 0 {
			parts = append(parts, fmt.Sprintf("%d failed", b.Failed))
		}
		if b.Draining > 0 {
			parts = append(parts, fmt.Sprintf("%d draining", b.Draining))
		}
		parts = append(parts, plural(int(b.Active), "open connection"))
		lst += " (" + strings.Join(parts, ", ") + ")"
	}
	fmt.Fprintf(tw, "listeners\t%s\n", lst)
	grp := fmt.Sprintf("%d", st.Groups)
	if len(v.GroupRoles) > 0 {
		var parts []string
		for _, g := range v.GroupRoles {
			switch {
			case g.Mode == api.ModeActiveActive:
				parts = append(parts, fmt.Sprintf("%s: %d live", g.Group, len(g.Answer)))
			case g.Active != "":
				parts = append(parts, fmt.Sprintf("%s: %s active", g.Group, g.Active))
			default:
				parts = append(parts, g.Group+": NONE ACTIVE")
			}
		}
		slices.Sort(parts)
		grp += " (" + strings.Join(parts, "; ") + ")"
	}
	fmt.Fprintf(tw, "groups\t%s\n", grp)
	fmt.Fprintf(tw, "dashboard\t%s\n", v.Dashboard)
}

// plural writes "1 port", "2 ports".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
