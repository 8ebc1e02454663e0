package seed

import (
	"net/netip"
	"slices"
	"testing"
)

// FuzzDecodeIdentity feeds identity answers (outside input: whatever answers
// on a seed's port) to the decoder: it must never panic, and what it accepts
// must be usable.
func FuzzDecodeIdentity(f *testing.F) {
	for _, s := range []string{
		`{"id":"db-a","service":"db","address":"10.0.0.5","port":3000,"peers":[]}`,
		`{"id":"db-a","service":"db","address":"10.0.0.5","port":3000,"alternates":[{"label":"public","address":"192.0.2.5"}],` +
			`"peers":[{"id":"db-b","address":"10.0.0.6","healthy":true},{"id":"db-c","address":"::ffff:10.0.0.7","port":3001}],"index":42}`,
		`{"id":"","address":"10.0.0.5","port":3000}`,
		`{"id":"x","address":"not-an-ip","port":3000}`,
		`{"id":"x","address":"2001:db8::1","port":70000}`,
		`{"id":"x","address":"2001:db8::1","port":1,"peers":[{"id":"y","address":"2001:db8::2","port":-1},{"address":"2001:db8::3"}]}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := decodeIdentity(data)
		if err != nil {
			return
		}
		if id.ID == "" || !id.Address.IsValid() || id.Address.Is4In6() || id.Port < 1 || id.Port > 65535 {
			t.Fatalf("accepted an unusable identity: %+v", id)
		}
		for _, p := range id.Peers {
			if p.ID == "" || !p.Address.IsValid() || p.Address.Is4In6() || p.Port < 1 || p.Port > 65535 {
				t.Fatalf("accepted an unusable peer: %+v", p)
			}
		}
		for _, a := range id.Alternates {
			if a.Label == "" || !a.Address.IsValid() {
				t.Fatalf("accepted an unusable alternate: %+v", a)
			}
		}
	})
}

func TestInterleave(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"v4 only keeps order", []string{"10.0.0.3", "10.0.0.1", "10.0.0.2"}, []string{"10.0.0.3", "10.0.0.1", "10.0.0.2"}},
		{"v6 first then turns", []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "10.0.0.1", "10.0.0.2"},
			[]string{"2001:db8::1", "10.0.0.1", "2001:db8::2", "10.0.0.2", "2001:db8::3"}},
		{"v4 first when the resolver put it first", []string{"10.0.0.1", "2001:db8::1", "10.0.0.2"},
			[]string{"10.0.0.1", "2001:db8::1", "10.0.0.2"}},
		{"duplicates and mapped addresses", []string{"10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1", "10.0.0.2"}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ips []netip.Addr
			for _, s := range tc.in {
				ips = append(ips, netip.MustParseAddr(s))
			}
			got := interleave(ips, 3000)
			var gotS []string
			for _, g := range got {
				if g.Port() != 3000 {
					t.Fatalf("port %d, want 3000", g.Port())
				}
				gotS = append(gotS, g.Addr().String())
			}
			if !slices.Equal(gotS, tc.want) {
				t.Fatalf("got %v, want %v", gotS, tc.want)
			}
		})
	}
}
