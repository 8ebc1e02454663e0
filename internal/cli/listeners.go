package cli

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

// listenerView is one listener as `seamark listeners` shows it: the
// declared listener, its ports' live state on the server asked, and the
// backends of its service.
type listenerView struct {
	api.Listener
	States   map[string]int      `json:"states"` // ports by state
	Live     api.ConnStats       `json:"live"`
	Ports    []api.ListenerStats `json:"ports,omitempty"`
	Backends []api.BackendStats  `json:"backends"`
}

func newListenersCmd(cf *clientFlags) *cobra.Command {
	var perPort bool
	cmd := &cobra.Command{
		Use:   "listeners [NAME]",
		Short: "List balancer listeners with their backends and live connection counts",
		Long: `List the balancer's listeners as declared (config or API) with, from the
server asked (--server), every port's state and live counters: active and total
connections, bytes in and out, connect errors, retries and refused clients; and
the backends of each listener's service with their health and counters.
With NAME, or --ports, every port of a range is shown on its own line.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ls, _, err := c.Listeners(ctx, nil)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name, perPort = args[0], true
			}
			stats, err := c.BalancerStats(ctx, name)
			if err != nil {
				return err
			}
			views := buildListenerViews(ls, stats, name, perPort)
			if name != "" && len(views) == 0 {
				return fmt.Errorf("no listener %q (seamark listeners lists them all)", name)
			}
			return render(cmd.OutOrStdout(), cf, views, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "LISTENER\tPORTS\tSERVICE\tBALANCE\tSTATE\tACTIVE\tTOTAL\tIN\tOUT\tERRORS\tRESETS\tRETRIES\tREFUSED\tDENIED")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.PortsString(), v.Service, v.Balance, statesString(v.States, len(v.PortList())), countsRow(v.Live))
					for _, p := range v.Ports {
						state := p.State
						if p.Error != "" {
							state += ": " + p.Error
						}
						fmt.Fprintf(tw, "  %s\t%d\t\t\t%s\t%s\n", p.Addr.Addr(), p.Addr.Port(), state, countsRow(p.ConnStats))
					}
				}
				seen := map[string]bool{}
				for _, v := range views {
					if seen[v.Service] || len(v.Backends) == 0 {
						continue
					}
					seen[v.Service] = true
					fmt.Fprintf(tw, "\nBACKENDS OF %s\tADDRESS\tWEIGHT\tSTATE\t\tACTIVE\tTOTAL\tIN\tOUT\tERRORS\tRESETS\tRETRIES\tREFUSED\n", v.Service)
					for _, b := range v.Backends {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\t%s\n", b.Node, b.Addr, b.Weight, backendState(b, time.Now()), countsRow(b.ConnStats))
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&perPort, "ports", false, "show every port of a range on its own line")
	return cmd
}

func buildListenerViews(ls []api.Listener, stats []api.ListenerStats, only string, perPort bool) []listenerView {
	var views []listenerView
	for _, l := range ls {
		if only != "" && l.Name != only {
			continue
		}
		v := listenerView{Listener: l, States: map[string]int{}, Backends: []api.BackendStats{}}
		for _, s := range stats {
			if s.Name != l.Name {
				continue
			}
			v.States[s.State]++
			v.Live.Add(s.ConnStats)
			v.Backends = s.Backends
			if perPort {
				v.Ports = append(v.Ports, s)
			}
		}
		views = append(views, v)
	}
	return views
}

// statesString sums up the ports' states: "listening", "98 listening, 2
// failed", or "not running here" when the server asked runs none of them.
func statesString(states map[string]int, ports int) string {
	if len(states) == 0 {
		return "not running here"
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 1 && states[keys[0]] == ports {
		return keys[0]
	}
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%d %s", states[k], k)
	}
	return out
}

func countsRow(s api.ConnStats) string {
	return fmt.Sprintf("%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d", s.Active, s.Total, bytesString(s.BytesIn), bytesString(s.BytesOut), errorsString(s), s.Resets, s.Retries, s.Refused, s.Denied)
}

// errorsString is the connect errors and, when any, how they split:
// "5 (3 refused, 2 timeout)".
func errorsString(s api.ConnStats) string {
	if s.ConnectErrors == 0 {
		return "0"
	}
	var parts []string
	if s.ConnectRefused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", s.ConnectRefused))
	}
	if s.ConnectTimeouts > 0 {
		parts = append(parts, fmt.Sprintf("%d timeout", s.ConnectTimeouts))
	}
	if o := s.ConnectErrors - min(s.ConnectErrors, s.ConnectRefused+s.ConnectTimeouts); o > 0 {
		parts = append(parts, fmt.Sprintf("%d other", o))
	}
	return fmt.Sprintf("%d (%s)", s.ConnectErrors, strings.Join(parts, ", "))
}

// backendState is "up", or "DOWN" and for how long.
func backendState(b api.BackendStats, now time.Time) string {
	if b.Healthy {
		return "up"
	}
	if b.DownSince == nil {
		return "DOWN"
	}
	return "DOWN " + now.Sub(*b.DownSince).Truncate(time.Second).String()
}

// bytesString prints a byte count the way operators read it: 512B, 1.5K, 3.2M.
func bytesString(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}
