package config

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/seamark/seamark/api"
)

// Warnings returns what in f (after SetDefaults) is allowed but is probably not
// what the operator meant, each formatted like an Error ("file:line: path: msg").
func (f *File) Warnings() []string {
	var ws errorList
	warn := func(path, format string, args ...any) {
		ws.Add(f.name, f.line(path), path, format, args...)
	}
	if len(f.Zones) == 0 && (len(f.Services) > 0 || len(f.Groups) > 0) {
		warn("zones", "no zone is declared; services and groups get DNS names only under a zone (add one here or through the API)")
	}
	for i, g := range f.Groups {
		if msg := trackCannotMove(g); msg != "" {
			warn(indexPath("groups", i)+".track", "%s", msg)
		}
	}
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Error()
	}
	return out
}

// trackCannotMove explains why no tracked check of an active-standby group
// can, on its own, hand the active role to another member, or returns "".
func trackCannotMove(g api.Group) string {
	if g.Mode != api.ModeActiveStandby || len(g.Members) < 2 || len(g.Track) == 0 {
		return ""
	}
	members := slices.Clone(g.Members)
	slices.SortStableFunc(members, func(a, b api.Member) int { return cmp.Compare(b.Priority, a.Priority) })
	gap := members[0].Priority - members[1].Priority
	largest := 0
	for _, t := range g.Track {
		if t.Weight == 0 {
			return "" // a failing check of weight 0 is a fault: it always moves the role
		}
		largest = max(largest, t.Weight, -t.Weight)
	}
	if largest > gap {
		return ""
	}
	return fmt.Sprintf("no tracked check can move the role: largest weight %d does not exceed the priority gap %d between %s and %s (use a weight of at least %d, or 0 to make a failing check a fault)",
		largest, gap, members[0].Name, members[1].Name, gap+1)
}
