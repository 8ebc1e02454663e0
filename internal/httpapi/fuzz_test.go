package httpapi_test

import (
	"bytes"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/httpapi"
)

// FuzzDecodeBody feeds arbitrary bytes to every request body the API accepts:
// decoding and validation must answer an error or a value, never panic.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"name":"db","port":3000,"check":{"type":"tcp","interval":"1s","timeout":"500ms","rise":2,"fall":2}}`,
		`{"id":"db-a","address":"10.0.1.5","alternates":[{"label":"public","address":"203.0.113.5"}],"ttl":"10s","tags":{"az":"a"}}`,
		`{"changes":[{"action":"CREATE","record":{"name":"www","type":"A","ttl":"60s","values":["192.0.2.1"]}},{"action":"DELETE","record":{"name":"old","type":"TXT"}}]}`,
		`{"name":"bulk","ports":"9100-9199","service":"app","balance":"least_conn","proxy_protocol":"v2"}`,
		`{"name":"x","port":"80"}`, `{"check":{"interval":5}}`, `[]`, `null`, `{"a":1} {}`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s api.Service
		if httpapi.DecodeBody(bytes.NewReader(data), &s) == nil {
			s.SetDefaults()
			_ = s.Validate()
		}
		var n api.Node
		if httpapi.DecodeBody(bytes.NewReader(data), &n) == nil {
			n.SetDefaults()
			_ = n.Validate()
		}
		var b api.ChangeBatch
		if httpapi.DecodeBody(bytes.NewReader(data), &b) == nil {
			_ = b.Validate()
		}
		var l api.Listener
		if httpapi.DecodeBody(bytes.NewReader(data), &l) == nil {
			l.SetDefaults()
			_ = l.Validate()
			_ = l.PortList()
		}
	})
}
