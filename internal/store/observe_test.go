package store_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store/storetest"
)

// TestRevokeHolderTouchesOnlyTheStaleClaim: an observer's revocation takes
// the role and candidacy of the claim it compared, and nothing when the role
// has moved on (another fencing revision or another lease).
func TestRevokeHolderTouchesOnlyTheStaleClaim(t *testing.T) {
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := netip.MustParseAddr("127.0.47.1")
	l1, err := st.GrantLease(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if _, err := st.PutCandidacy(ctx, api.Candidacy{Group: "lb", Member: "lb1", Address: addr}, l1); err != nil {
		t.Fatal(err)
	}
	fencing, won, err := st.ClaimRole(ctx, api.Role{Group: "lb", Member: "lb1", Address: addr}, l1, 0)
	if err != nil || !won {
		t.Fatalf("claim: %v %v", won, err)
	}
	for _, tc := range []struct {
		name           string
		fencing, lease int64
	}{
		{"an earlier claim", fencing - 1, l1.ID()},
		{"another lease", fencing, l1.ID() + 1},
	} {
		if took, err := st.RevokeHolder(ctx, "lb", "lb1", tc.fencing, tc.lease); err != nil || took {
			t.Errorf("%s: took %v, %v; want nothing taken", tc.name, took, err)
		}
	}
	select {
	case <-l1.Done():
		t.Fatal("a refused revocation ended the lease")
	default:
	}
	took, err := st.RevokeHolder(ctx, "lb", "lb1", fencing, l1.ID())
	if err != nil || !took {
		t.Fatalf("the stale claim itself: took %v, %v", took, err)
	}
	select {
	case <-l1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's lease is still alive after the revocation")
	}
	// A second observer racing the first takes nothing.
	if took, err := st.RevokeHolder(ctx, "lb", "lb1", fencing, l1.ID()); err != nil || took {
		t.Errorf("again: took %v, %v; want nothing", took, err)
	}
}
