package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/seamark/seamark/api"
)

// Shell completion: cobra's `seamark completion bash|zsh|fish|powershell`
// prints the script; these functions complete names by asking the server
// (--server, SEAMARK_SERVER) with a short timeout, so TAB never hangs on a
// server that is away.

// completionTimeout bounds a completion's request to the server.
const completionTimeout = 2 * time.Second

// addCompletions attaches name completion to the verbs that take a name, and
// value completion to the flags with fixed choices.
func addCompletions(root *cobra.Command, cf *clientFlags) {
	names := map[string]func(ctx context.Context, c *api.Client) ([]string, error){
		"nodes": func(ctx context.Context, c *api.Client) ([]string, error) {
			svcs, _, err := c.Services(ctx, nil)
			out := make([]string, 0, len(svcs))
			for _, s := range svcs {
				out = append(out, s.Name)
			}
			return out, err
		},
		"listeners": func(ctx context.Context, c *api.Client) ([]string, error) {
			ls, _, err := c.Listeners(ctx, nil)
			out := make([]string, 0, len(ls))
			for _, l := range ls {
				out = append(out, l.Name)
			}
			return out, err
		},
		"groups": func(ctx context.Context, c *api.Client) ([]string, error) {
			gs, err := c.Groups(ctx)
			out := make([]string, 0, len(gs))
			for _, g := range gs {
				out = append(out, g.Name)
			}
			return out, err
		},
	}
	serviceNodes := func(ctx context.Context, c *api.Client) ([]string, error) {
		nodes, _, err := c.AllNodes(ctx, nil)
		out := make([]string, 0, len(nodes))
		for _, n := range nodes {
			out = append(out, n.Service+"/"+n.ID)
		}
		return out, err
	}
	for _, verb := range []string{"drain", "maint", "ready", "weight"} {
		names[verb] = serviceNodes
	}
	fixed := func(values ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
	}
	_ = root.RegisterFlagCompletionFunc("output", fixed("table", "json"))
	_ = root.RegisterFlagCompletionFunc("server", cobra.NoFileCompletions)
	_ = root.RegisterFlagCompletionFunc("token", cobra.NoFileCompletions)
	for _, cmd := range root.Commands() {
		if list, ok := names[cmd.Name()]; ok {
			cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return fromServer(cmd, cf, list)
			}
		}
		switch cmd.Name() {
		case "server":
			_ = cmd.RegisterFlagCompletionFunc("log-format", fixed("text", "json"))
			_ = cmd.RegisterFlagCompletionFunc("log-level", fixed("debug", "info", "warn", "error"))
			_ = cmd.RegisterFlagCompletionFunc("config", cobra.FixedCompletions([]string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt))
		case "events":
			_ = cmd.RegisterFlagCompletionFunc("service", func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return fromServer(cmd, cf, names["nodes"])
			})
		case "validate":
			cmd.ValidArgsFunction = cobra.FixedCompletions([]string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt)
		}
	}
}

// fromServer completes with the names list finds on the server; with no
// server in reach it offers nothing (and no file names).
func fromServer(cmd *cobra.Command, cf *clientFlags, list func(context.Context, *api.Client) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := cf.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	names, err := list(ctx, c)
	if err != nil {
		cobra.CompDebugln("seamark: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
