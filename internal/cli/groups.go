package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

func newGroupsCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "groups [NAME]",
		Short: "List balancer groups: members, effective priorities, who is active and since when",
		Long: `List balancer groups with, for every member: its address, base and effective
priority (shifted by tracked checks), whether it is live (its candidacy's lease
is alive), its own view of its role, and why it is in fault; then which member
is active, since when, with which fencing revision, and what the group's name
answers in DNS right now.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			gs, err := c.Groups(ctx)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var keep []api.GroupStatus
				for _, g := range gs {
					if g.Name == args[0] {
						keep = append(keep, g)
					}
				}
				if len(keep) == 0 {
					return fmt.Errorf("no group %q (seamark groups lists them all)", args[0])
				}
				gs = keep
			}
			return render(cmd.OutOrStdout(), cf, gs, func(tw *tabwriter.Writer) {
				for i, g := range gs {
					if i > 0 {
						fmt.Fprintln(tw)
					}
					answer := make([]string, len(g.Answer))
					for j, a := range g.Answer {
						answer[j] = a.String()
					}
					active := "none"
					if g.Active != nil {
						active = fmt.Sprintf("%s since %s (%s ago), fencing %d", g.Active.Member,
							g.Active.Since.Format(time.RFC3339), time.Since(g.Active.Since).Round(time.Second), g.Active.Fencing)
					}
					fmt.Fprintf(tw, "GROUP %s (%s)\tactive: %s\tanswers: %s\n", g.Name, g.Mode, active, orNone(strings.Join(answer, ", ")))
					fmt.Fprintln(tw, "MEMBER\tADDRESS\tPRIORITY\tEFFECTIVE\tLIVE\tROLE\tSERVER\tNOTE")
					for _, m := range g.Members {
						var cand *api.Candidacy
						for j := range g.Candidates {
							if g.Candidates[j].Member == m.Name {
								cand = &g.Candidates[j]
							}
						}
						if cand == nil {
							fmt.Fprintf(tw, "%s\t%s\t%d\t-\tno\t-\t-\tno server campaigns as %s\n", m.Name, m.Address, m.Priority, m.Name)
							continue
						}
						note := cand.Reason
						if cand.Fault {
							note = "fault: " + note
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\tyes\t%s\t%s\t%s\n", m.Name, m.Address, m.Priority, cand.Effective, cand.Role, cand.Server, note)
					}
				}
			})
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
