package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"testing"

	"github.com/seamark/seamark/api"
)

// Paged lists: ?limit=&after= walk every node exactly once, in order, the
// X-Seamark-Next header naming the marker of the next page and absent on
// the last one; a bad limit is a 400 that says what to send.
func TestPaging(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	if _, err := f.client.CreateService(ctx, api.Service{Name: "web", Port: 80, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 23 {
		id := fmt.Sprintf("n%02d", i)
		svc := "db"
		if i%2 == 1 {
			svc = "web"
		}
		if _, err := f.client.Register(ctx, api.Node{ID: id, Service: svc, Address: netip.AddrFrom4([4]byte{127, 50, 0, byte(i + 1)})}); err != nil {
			t.Fatal(err)
		}
		want = append(want, svc+"/"+id)
	}
	slices.Sort(want)
	walk := func(path string, limit int) []string {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatalf("%s: no last page", path)
			}
			code, body, h := f.request(t, "GET", fmt.Sprintf("%s?limit=%d&after=%s", path, limit, url.QueryEscape(after)), "", "")
			if code != 200 {
				t.Fatalf("%s: %d %s", path, code, body)
			}
			var ns []api.Node
			if err := json.Unmarshal([]byte(body), &ns); err != nil {
				t.Fatal(err)
			}
			if len(ns) > limit {
				t.Fatalf("%s: page of %d, limit %d", path, len(ns), limit)
			}
			for _, n := range ns {
				got = append(got, n.Service+"/"+n.ID)
			}
			after = h.Get(api.NextHeader)
			if after == "" {
				return got
			}
		}
	}
	for _, limit := range []int{1, 5, 11, 23, 100} {
		if got := walk("/v1/nodes", limit); !slices.Equal(got, want) {
			t.Fatalf("limit %d: walked %v\nwant %v", limit, got, want)
		}
	}
	var web []string
	for _, w := range want {
		if w[:4] == "web/" {
			web = append(web, w)
		}
	}
	if got := walk("/v1/services/web/nodes", 4); !slices.Equal(got, web) {
		t.Fatalf("web: walked %v\nwant %v", got, web)
	}
	code, body, h := f.request(t, "GET", "/v1/services?limit=1", "", "")
	if code != 200 || h.Get(api.NextHeader) != "cfg" {
		t.Fatalf("services page 1: %d %s next %q", code, body, h.Get(api.NextHeader))
	}
	for _, q := range []string{"limit=0", "limit=x", fmt.Sprintf("limit=%d", api.MaxPageSize+1), "after=n01"} {
		code, body, _ := f.request(t, "GET", "/v1/nodes?"+q, "", "")
		if code != 400 {
			t.Fatalf("?%s: %d %s, want 400", q, code, body)
		}
	}
	code, body, _ = f.request(t, "GET", "/v1/lb?summary=1", "", "")
	if code != 200 || body != "[]\n" && body != "[]" {
		t.Fatalf("lb summary: %d %q", code, body)
	}
}
