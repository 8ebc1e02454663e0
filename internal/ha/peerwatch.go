package ha

import (
	"fmt"
	"time"

	"github.com/seamark/seamark/api"
)

// The timings of fast failover (docs/groups.md, "Fast failover"). They are
// constants, not settings: the bounds documented and tested follow from
// them.
const (
	// ProbeInterval is how often every observer probes a group's active
	// member, and ProbeTimeout how long one probe may take: a probe that has
	// no HTTP answer by then failed.
	ProbeInterval = 50 * time.Millisecond
	ProbeTimeout  = 100 * time.Millisecond
	// failsToDown is how many probes in a row must fail before an observer
	// says the member is down.
	failsToDown = 2
	// maxReason bounds the failure text an observation carries.
	maxReason = 200
	// RenewEvery is how often an active member confirms its lease with the
	// store, and FenceAfter how long it may go without a confirmation before
	// it steps down on its own. Observers cannot end its lease sooner than
	// ProbeInterval + ProbeTimeout after they lost it, so a member cut off
	// from everyone steps down at most FenceAfter - ProbeInterval -
	// ProbeTimeout after its successor could be named.
	RenewEvery = 50 * time.Millisecond
	FenceAfter = 300 * time.Millisecond
	// LateSlack is how far past ProbeTimeout a failed probe may come back
	// and still count. A probe that took longer failed because this
	// observer was late (its process got no CPU, its timer fired late):
	// local trouble, not a vote.
	LateSlack = 50 * time.Millisecond
)

// late reports whether a probe that took took and ended in err says nothing
// about the member: it failed, and only after this observer was late.
func late(err error, took time.Duration) bool {
	return err != nil && took > ProbeTimeout+LateSlack
}

// detector turns one observer's probe results into up/down: down once
// failsToDown probes in a row (in the order they were sent) failed, up again
// at the first later success. Results may arrive out of order (probes
// overlap: a success can come back before an earlier probe's timeout).
type detector struct {
	lastOK int64   // highest sequence number that succeeded
	fails  []int64 // failed sequence numbers above lastOK
	seen   bool    // a probe ever succeeded: the observer may vote
	reason string  // how the last counted failure failed
	since  time.Time
}

// add records the result of probe seq at now (err nil: it answered), and
// reports whether the verdict changed.
func (d *detector) add(seq int64, err error, now time.Time) bool {
	was := d.down()
	if err == nil {
		d.seen = true
		if seq > d.lastOK {
			d.lastOK = seq
			kept := d.fails[:0]
			for _, f := range d.fails {
				if f > seq {
					kept = append(kept, f)
				}
			}
			d.fails = kept
		}
	} else if seq > d.lastOK {
		d.fails = append(d.fails, seq)
		if len(d.fails) > 4*failsToDown { // a member dead for long: keep the newest
			d.fails = append(d.fails[:0], d.fails[len(d.fails)-2*failsToDown:]...)
		}
		d.reason = err.Error()
		if len(d.reason) > maxReason {
			d.reason = d.reason[:maxReason] + "..."
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	if d.down() != was {
		d.since = now
		return true
	}
	return false
}

func (d *detector) down() bool { return d.seen && len(d.fails) >= failsToDown }

// holder is the active member an observer watches: one claim, on one lease.
type holder struct {
	group, member, endpoint string
	lease, fencing          int64
}

// tally reports whether the observations of h, with this observer's own
// current view (own) standing in for its stored one, make a majority for
// down: more than half of the observers that have seen h answer say it is
// down. It returns the counts for the record.
func tally(obs []*api.Observation, h holder, own api.Observation) (down, of int, majority bool) {
	counted := false
	for _, o := range obs {
		if o.Member != h.member || o.Lease != h.lease || o.Fencing != h.fencing {
			continue // about an earlier holder or claim
		}
		if o.Observer == own.Observer {
			o, counted = &own, true
		}
		of++
		if o.Down {
			down++
		}
	}
	if !counted {
		of++
		if own.Down {
			down++
		}
	}
	return down, of, down > 0 && 2*down > of
}

// fenced says why an active member must step down on its own under fast
// failover: the store has not confirmed its lease for fenceAfter(rtt)
// (measured from when the last confirmed request was sent). "" while it may
// stay.
func fenced(renewed, now time.Time, rtt time.Duration) string {
	if limit, silent := fenceAfter(rtt), now.Sub(renewed); silent > limit {
		return fmt.Sprintf("fast failover: the store has not confirmed the lease for %v (active members step down after %v)", silent.Round(time.Millisecond), limit)
	}
	return ""
}

// fenceAfter is how long an active member may go without a confirmation:
// FenceAfter, or fenceRTTs round trips of the store as recently measured
// when that is longer. On a loaded machine every store call is slower, the
// observers' votes and the standby's claim included, so a longer silence is
// no sign of a cut; a member cut off from the store gets no answers, its
// estimate stops growing, and it steps down on the short bound.
func fenceAfter(rtt time.Duration) time.Duration {
	return max(FenceAfter, fenceRTTs*rtt)
}

// fenceRTTs is how many measured store round trips the fence allows.
const fenceRTTs = 4
