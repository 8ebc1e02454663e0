package api

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// The limits of docs/api.md, "Limits": every one is a field error that
// names the field and the limit, shared by the API and the config file.
func TestLimits(t *testing.T) {
	node := func(tags map[string]string) Node {
		n := Node{ID: "a", Address: netip.MustParseAddr("127.0.0.1"), Tags: tags}
		n.SetDefaults()
		return n
	}
	tags := func(n, size int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("t%d", i)] = strings.Repeat("v", size)
		}
		return m
	}
	rec := func(n, size int) Record {
		r := Record{Name: "t", Type: "TXT"}
		for range n {
			r.Values = append(r.Values, strings.Repeat("t", size))
		}
		r.SetDefaults()
		return r
	}
	tests := []struct {
		name string
		errs FieldErrors
		want string // "" for no error
	}{
		{"tags at the limit", node(tags(MaxTags, 100)).Validate(), ""},
		{"too many tags", node(tags(MaxTags+1, 1)).Validate(), "tags: 65 tags; at most 64"},
		{"tag value at the limit", node(map[string]string{"k": strings.Repeat("v", MaxTagValueLen)}).Validate(), ""},
		{"tag value over", node(map[string]string{"k": strings.Repeat("v", MaxTagValueLen+1)}).Validate(), "tags.k: is 4097 bytes; at most 4096"},
		{"tag key over", node(map[string]string{strings.Repeat("k", MaxTagKeyLen+1): "v"}).Validate(), "a key has 1 to 128"},
		{"node over the object size", node(tags(MaxTags, 1100)).Validate(), "at most 65536 (MaxObjectSize"},
		{"record values at the limit", rec(MaxRecordValues, 100).Validate(), ""},
		{"too many record values", rec(MaxRecordValues+1, 1).Validate(), "values: 101 values; at most 100"},
		{"record value over", rec(1, MaxRecordValueLen+1).Validate(), "values[0]: is 4001 bytes; at most 4000"},
		{"record set over the object size", rec(20, 3999).Validate(), "at most 65536 (MaxObjectSize"},
		{"batch over", ChangeBatch{Changes: make([]Change, MaxBatchChanges+1)}.Validate(), "changes: 1001 changes; at most 1000 in one batch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := tc.errs.Err(); err != nil {
				got = err.Error()
			}
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
