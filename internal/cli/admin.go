package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

// splitNode reads SERVICE/NODE.
func splitNode(arg string) (service, id string, err error) {
	service, id, ok := strings.Cut(arg, "/")
	if !ok || service == "" || id == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("%q is not SERVICE/NODE (for example app/app-1; see `seamark nodes`)", arg)
	}
	return service, id, nil
}

// currentAdmin returns a node's admin state as served now (ready when the
// node has none), and whether the node is registered now.
func currentAdmin(ctx context.Context, c *api.Client, service, id string) (api.NodeAdmin, bool, error) {
	n, err := c.Node(ctx, service, id)
	if api.IsNotFound(err) {
		return api.NodeAdmin{State: api.AdminReady}, false, nil
	}
	if err != nil {
		return api.NodeAdmin{}, false, err
	}
	if n.Admin == nil {
		return api.NodeAdmin{State: api.AdminReady}, true, nil
	}
	return *n.Admin, true, nil
}

// changeAdmin applies change to a node's admin state: a state and weight
// override that are both the defaults clear it, anything else is set.
func changeAdmin(cmd *cobra.Command, cf *clientFlags, arg, reason string, change func(*api.NodeAdmin)) error {
	service, id, err := splitNode(arg)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := cf.connect(cmd)
	if err != nil {
		return err
	}
	defer cancel()
	cur, registered, err := currentAdmin(ctx, c, service, id)
	if err != nil {
		return err
	}
	next := api.NodeAdmin{State: cur.StateOf(), Weight: cur.Weight, Reason: reason}
	change(&next)
	if next.State == api.AdminReady && next.Weight == 0 {
		if _, err := c.ClearAdmin(ctx, service, id); err != nil {
			return err
		}
	} else {
		if !registered {
			return fmt.Errorf("node %s of service %s is not registered now; see `seamark nodes %s`", id, service, service)
		}
		if _, err := c.SetAdmin(ctx, service, id, next); err != nil {
			return err
		}
	}
	weight := "registered"
	if next.Weight != 0 {
		weight = strconv.Itoa(next.Weight)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: admin %s -> %s, weight %s\n", service, id, cur.StateOf(), next.State, weight)
	return nil
}

func newAdminStateCmd(cf *clientFlags, state api.AdminState, short, long string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   string(state) + " SERVICE/NODE",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeAdmin(cmd, cf, args[0], reason, func(a *api.NodeAdmin) { a.State = state })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "a note for other operators, logged with the change")
	return cmd
}

func newDrainCmd(cf *clientFlags) *cobra.Command {
	return newAdminStateCmd(cf, api.AdminDrain, "Drain a node: out of DNS and no new balancer connections; open ones go on",
		`Drain a node: it leaves DNS answers and gets no new balancer connections at
once; its open balancer connections go on (see docs/operations.md, "Draining a
node"). Health checks go on. The drain is the operator's: the node's agent
never undoes it, across re-registrations and restarts. Undo with
`+"`seamark ready SERVICE/NODE`.")
}

func newMaintCmd(cf *clientFlags) *cobra.Command {
	return newAdminStateCmd(cf, api.AdminMaint, "Put a node in maintenance: drained, and no longer health-checked",
		`Put a node in maintenance: drained (out of DNS, no new balancer connections)
and no longer probed by the health checkers, whose last verdicts stay as they
were. Undo with `+"`seamark ready SERVICE/NODE`.")
}

func newReadyCmd(cf *clientFlags) *cobra.Command {
	return newAdminStateCmd(cf, api.AdminReady, "Make a drained or maintained node ready again (a weight override stays)",
		`Make a node ready again: served while healthy. A weight override stays;
clear it with `+"`seamark weight SERVICE/NODE --clear`.")
}

func newWeightCmd(cf *clientFlags) *cobra.Command {
	var (
		clear  bool
		reason string
	)
	cmd := &cobra.Command{
		Use:   "weight SERVICE/NODE [N]",
		Short: "Override a node's weight (1-1000) in weighted DNS answers and balancing; --clear restores the registered one",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := 0
			switch {
			case clear && len(args) == 2:
				return fmt.Errorf("give a weight or --clear, not both")
			case !clear && len(args) == 1:
				return fmt.Errorf("give the weight (1-1000), or --clear to restore the registered one")
			case !clear:
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 || n > 1000 {
					return fmt.Errorf("weight: %q is not a whole number from 1 to 1000", args[1])
				}
				w = n
			}
			return changeAdmin(cmd, cf, args[0], reason, func(a *api.NodeAdmin) { a.Weight = w })
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the override: the registered weight counts again")
	cmd.Flags().StringVar(&reason, "reason", "", "a note for other operators, logged with the change")
	return cmd
}
