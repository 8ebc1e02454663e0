package route53

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/registry"
)

type fixedSnapshots struct{ s *registry.Snapshot }

func (f fixedSnapshots) Current() *registry.Snapshot { return f.s }
func (f fixedSnapshots) WaitRevision(ctx context.Context, rev int64) (*registry.Snapshot, error) {
	return f.s, nil
}

// GetChange says PENDING until the local snapshot reaches the change's
// revision, then INSYNC; the ID carries the revision and submission time.
func TestGetChange(t *testing.T) {
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	id := changeID(42, at)
	if rev, got, ok := parseChangeID("/change/" + id); !ok || rev != 42 || !got.Equal(at) {
		t.Fatalf("parseChangeID(%s): got %d %v %v", id, rev, got, ok)
	}
	tests := []struct {
		name string
		rev  int64
		id   string
		want string
	}{
		{"behind", 41, id, "<Status>PENDING</Status>"},
		{"reached", 42, id, "<Status>INSYNC</Status>"},
		{"past", 90, id, "<SubmittedAt>2026-12-07T14:00:00.000Z</SubmittedAt>"},
		{"unknown id", 90, "CNOTACHANGE", "<Code>NoSuchChange</Code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Options{InsecureUnsigned: true, Snapshots: fixedSnapshots{&registry.Snapshot{Revision: tc.rev}}})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/2013-04-01/change/"+tc.id, nil))
			if !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("got %d %s, want %s", w.Code, w.Body, tc.want)
			}
		})
	}
}
