package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/seamark/seamark/api"
)

// SetAdmin writes (a non-nil) or clears (nil) the admin state of node id of
// service, on a key of its own with no lease (see the key layout), and logs
// an admin event naming who, the old state and the new. It returns the
// revision of the write and the admin state it replaced (nil: none). The
// service must exist (ErrNotFound); clearing an absent admin state writes
// nothing and returns revision 0.
func (s *Store) SetAdmin(ctx context.Context, service, id string, a *api.NodeAdmin, by string) (int64, *api.NodeAdmin, error) {
	var val []byte
	if a != nil {
		var err error
		if val, err = json.Marshal(a); err != nil {
			return 0, nil, err
		}
	}
	var old *api.NodeAdmin
	guard := ServiceKey(service)
	rev, _, err := s.update(ctx, AdminKey(service, id), &guard, 0, func(prev []byte, _ int64) ([]byte, error) {
		old = nil
		if prev == nil && val == nil {
			return nil, errNoAdmin // makes update read the real value first
		}
		if prev != nil {
			old = new(api.NodeAdmin)
			if err := json.Unmarshal(prev, old); err != nil {
				old = nil
			}
		}
		return val, nil
	})
	if errors.Is(err, errNoAdmin) {
		return 0, nil, nil
	}
	if err != nil || rev == 0 {
		return rev, old, err
	}
	e := api.Event{
		Time: time.Now().UTC(), Kind: api.EventAdmin, Service: service, Node: id,
		Old: api.NodeState(old.StateOf()), New: api.NodeState(a.StateOf()),
		Reason: adminChange(old, a), Who: by,
	}
	// The change's revision is its event's, so a reader that waits for it
	// (the API's read-your-writes) sees the event too.
	if erev, err := s.AppendEvent(ctx, e, "admin-"+service+"-"+id); err != nil {
		s.log.Warn("log admin event", "service", service, "node", id, "err", err)
	} else if erev > rev {
		rev = erev
	}
	return rev, old, nil
}

var errNoAdmin = errors.New("no admin state")

// adminChange describes a change of admin state in words for the event log.
func adminChange(old, cur *api.NodeAdmin) string {
	w := func(a *api.NodeAdmin) string {
		if a == nil || a.Weight == 0 {
			return "registered"
		}
		return fmt.Sprint(a.Weight)
	}
	msg := fmt.Sprintf("admin %s -> %s", old.StateOf(), cur.StateOf())
	if w(old) != w(cur) {
		msg += fmt.Sprintf(", weight %s -> %s", w(old), w(cur))
	}
	if cur != nil && cur.Reason != "" {
		msg += ": " + cur.Reason
	}
	return msg
}
