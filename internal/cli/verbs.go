package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

// render writes v as JSON with -o json, else calls table.
func render(w io.Writer, cf *clientFlags, v any, table func(tw *tabwriter.Writer)) error {
	switch cf.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return fmt.Errorf("-o: %q is not table or json", cf.output)
}

func newServicesCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "services",
		Short: "List services with their port, check and node counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			svcs, _, err := c.Services(ctx, nil)
			if err != nil {
				return err
			}
			nodes, _, err := c.AllNodes(ctx, nil)
			if err != nil {
				return err
			}
			total, healthy := map[string]int{}, map[string]int{}
			for _, n := range nodes {
				total[n.Service]++
				if n.Healthy {
					healthy[n.Service]++
				}
			}
			return render(cmd.OutOrStdout(), cf, svcs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tPORT\tCHECK\tNODES\tHEALTHY\tSOURCE")
				for _, s := range svcs {
					fmt.Fprintf(tw, "%s\t%d\t%s/%s\t%d\t%d\t%s\n", s.Name, s.Port, s.Check.Type, s.Check.Interval, total[s.Name], healthy[s.Name], s.Source)
				}
			})
		},
	}
}

func newNodesCmd(cf *clientFlags) *cobra.Command {
	var healthyOnly bool
	cmd := &cobra.Command{
		Use:   "nodes [SERVICE]",
		Short: "List nodes (of one service, or of all) with address, state and health",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			q := &api.QueryOptions{HealthyOnly: healthyOnly}
			var nodes []api.Node
			if len(args) == 1 {
				nodes, _, err = c.Nodes(ctx, args[0], q)
			} else {
				nodes, _, err = c.AllNodes(ctx, q)
			}
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), cf, nodes, func(tw *tabwriter.Writer) {
				// Three separate things, in named columns: what the registrant
				// reports, what the operator set, what the checks found; then
				// whether the node is served, the result of all three.
				fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tPORT\tWEIGHT\tREGISTRANT\tADMIN\tCHECKS\tSERVED\tSOURCE\tLEASE")
				for _, n := range nodes {
					port, lease, weight := "-", "-", fmt.Sprint(n.Weight)
					if n.Port != 0 {
						port = fmt.Sprint(n.Port)
					}
					if n.Lease != 0 {
						lease = fmt.Sprintf("%x", n.Lease)
					}
					if n.RegisteredWeight != 0 {
						weight += fmt.Sprintf(" (registered %d)", n.RegisteredWeight)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Service, n.ID, n.Address, port, weight, n.State, n.Admin.StateOf(), checksColumn(n), servedColumn(n), n.Source, lease)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&healthyOnly, "healthy", false, "only nodes that may be advertised")
	return cmd
}

func newEventsCmd(cf *clientFlags) *cobra.Command {
	var (
		q      api.EventQuery
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the event log (health, role and admin changes, audit of writes); --follow streams new events",
		Example: `  seamark events --kind audit              # who changed what, from where
  seamark events --kind audit --who agents # one token's writes
  seamark events --who tsig:update-key     # one TSIG key's DNS UPDATEs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printed := map[string]bool{}
			show := func(events []api.Event) error {
				var fresh []api.Event
				for _, e := range events {
					key := fmt.Sprintf("%d/%s/%s/%s/%s/%s", e.Revision, e.Checker, e.Service, e.Node, e.Group, e.Member)
					if !printed[key] {
						printed[key] = true
						fresh = append(fresh, e)
					}
				}
				if cf.output == "json" {
					enc := json.NewEncoder(out)
					for _, e := range fresh {
						if err := enc.Encode(e); err != nil {
							return err
						}
					}
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, e := range fresh {
					fmt.Fprintln(tw, eventLine(e))
				}
				return tw.Flush()
			}
			ctx, cancel := withTimeout(cmd)
			events, idx, err := c.Events(ctx, q, nil)
			cancel()
			if err != nil {
				return err
			}
			if err := show(events); err != nil || !follow {
				return err
			}
			for {
				events, idx, err = c.Events(cmd.Context(), api.EventQuery{Service: q.Service, Node: q.Node, Kind: q.Kind, Who: q.Who}, &api.QueryOptions{Index: idx, Wait: 5 * time.Minute})
				if err != nil {
					return err
				}
				if err := show(events); err != nil {
					return err
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&q.Service, "service", "", "only events of this service")
	fl.StringVar(&q.Node, "node", "", "only events of this node")
	fl.StringVar(&q.Kind, "kind", "", "only events of this kind: health, role or audit")
	fl.StringVar(&q.Who, "who", "", "only audit and admin events made by this token name or TSIG key (tsig:<key>)")
	fl.IntVar(&q.Limit, "limit", 50, "show at most the newest N events (0: all kept)")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new events as they happen")
	return cmd
}

// checksColumn sums up the checkers' verdicts on n: "2/2 up", "0/2 up",
// "none" (no checker has reported: check.initial decides), "held" (no
// verdict counts now: the last decision stands until the node's new owner
// writes), and the verdict it leads to.
func checksColumn(n api.Node) string {
	if n.Held {
		if n.Healthy {
			return "held (healthy)"
		}
		return "held (unhealthy)"
	}
	if len(n.Checks) == 0 {
		if n.Healthy {
			return "none (healthy)"
		}
		return "none (unhealthy)"
	}
	up := 0
	for _, v := range n.Checks {
		if v.State == api.StateHealthy {
			up++
		}
	}
	verdict := "healthy"
	if !n.Healthy {
		verdict = "unhealthy"
	}
	return fmt.Sprintf("%d/%d up (%s)", up, len(n.Checks), verdict)
}

// servedColumn says whether n is in DNS answers and balancing, and if not,
// the first reason.
func servedColumn(n api.Node) string {
	switch {
	case n.Admin.Out():
		return "no (admin " + string(n.Admin.State) + ")"
	case n.State != api.StateHealthy:
		return "no (registrant " + string(n.State) + ")"
	case !n.Healthy:
		return "no (checks)"
	}
	return "yes"
}

// eventLine formats one event for the table: its time, what it is about
// (a node, or a group member for role changes), the change and the why.
func eventLine(e api.Event) string {
	at := e.Time.Local().Format("15:04:05.000")
	switch {
	case e.Kind == api.EventAudit:
		return fmt.Sprintf("%s\taudit\t%s\t%s\t%s\t%s", at, e.Who, e.From, e.Action, e.Result)
	case e.Kind == "role" || e.Group != "":
		return fmt.Sprintf("%s\trole\tgroup %s member %s\t%s\t-> %s\t%s\t%s", at, e.Group, e.Member, e.Address, e.Role, e.Reason, e.Checker)
	case e.Kind == api.EventAdmin:
		return fmt.Sprintf("%s\tadmin\t%s/%s\t\t%s -> %s\t%s\tby %s", at, e.Service, e.Node, e.Old, e.New, e.Reason, e.Who)
	}
	kind := e.Kind
	if kind == "" {
		kind = api.EventHealth
	}
	return fmt.Sprintf("%s\t%s\t%s/%s\t%s\t%s -> %s\t%s\t%s", at, kind, e.Service, e.Node, e.Address, e.Old, e.New, e.Reason, e.Checker)
}
