package ha

import (
	"strings"

	"github.com/seamark/seamark/api"
)

// trackResult is one tracked check's current state.
type trackResult struct {
	weight  int
	failing bool
	reason  string
}

// effective is a member's priority shifted by its tracks, keepalived style:
// a negative weight applies while its check fails, a positive one while it
// passes; a failing check of weight 0 puts the member in fault. The result is
// clamped to 1-254.
func effective(base int, tracks []trackResult) (prio int, fault bool, reason string) {
	prio = base
	var why []string
	for _, t := range tracks {
		switch {
		case t.failing && t.weight == 0:
			fault = true
			why = append(why, t.reason)
		case t.failing && t.weight < 0:
			prio += t.weight
			why = append(why, t.reason)
		case !t.failing && t.weight > 0:
			prio += t.weight
		case t.failing:
			why = append(why, t.reason)
		}
	}
	return min(max(prio, 1), 254), fault, strings.Join(why, "; ")
}

// better reports whether candidacy a ranks before b: higher effective
// priority, then the lower member name.
func better(a, b *api.Candidacy) bool {
	if a.Effective != b.Effective {
		return a.Effective > b.Effective
	}
	return a.Member < b.Member
}

// best returns the candidacy that should be active among cands: live (they
// are in the snapshot), not in fault, and declared by g. nil when none.
func best(g *api.Group, cands []*api.Candidacy) *api.Candidacy {
	var top *api.Candidacy
	for _, c := range cands {
		if c.Fault || !declares(g, c.Member) {
			continue
		}
		if top == nil || better(c, top) {
			top = c
		}
	}
	return top
}

func declares(g *api.Group, member string) bool {
	for _, m := range g.Members {
		if m.Name == member {
			return true
		}
	}
	return false
}

// withOwn returns cands with this member's entry replaced by own (its
// current view, fresher than the snapshot's copy).
func withOwn(cands []*api.Candidacy, own *api.Candidacy) []*api.Candidacy {
	out := make([]*api.Candidacy, 0, len(cands)+1)
	for _, c := range cands {
		if c.Member != own.Member {
			out = append(out, c)
		}
	}
	return append(out, own)
}

// verdict is what a member should do about the role, given the snapshot.
type verdict int

const (
	stay     verdict = iota // nothing to change
	claim                   // take the role (compare-and-swap on its revision)
	release                 // give the role up
	waitBest                // better than the active member: wait out preempt_delay
)

// decide applies the group's rule for member own, given the current role
// record (nil: none), every live candidacy, and whether own holds the role.
func decide(g *api.Group, role *api.Role, cands []*api.Candidacy, own *api.Candidacy, holding bool) verdict {
	all := withOwn(cands, own)
	top := best(g, all)
	if holding {
		if own.Fault {
			return release
		}
		return stay
	}
	if own.Fault || top == nil || top.Member != own.Member {
		return stay
	}
	if role == nil {
		return claim
	}
	// Someone else holds the role (or a stale claim of our own from a
	// previous lease).
	if role.Member == own.Member || !declares(g, role.Member) {
		return claim
	}
	var active *api.Candidacy
	for _, c := range all {
		if c.Member == role.Member {
			active = c
		}
	}
	if active == nil || active.Fault {
		// The holder says it is in fault (it will release), or its candidacy
		// is gone while its role record lingers: take over.
		return claim
	}
	if g.Preempt != nil && !*g.Preempt {
		return stay
	}
	if better(own, active) && own.Effective > active.Effective {
		return waitBest
	}
	return stay
}
