package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/seamark/seamark/internal/config"
)

// designExample is the config example of DESIGN.md, as written there (it is a
// sketch: it names a service it does not declare).
const designExample = `zones: [cluster.test]            # names are served under these zones
api:
  tokens: [{name: ops, secret_file: /etc/seamark/ops.token, access: write}]
dns:
  tsig_keys: [{name: update-key, algorithm: hmac-sha256, secret_file: ...}]
  secondaries: [127.0.0.53:53]    # NOTIFY + AXFR allowed
services:
  - name: db                      # db.cluster.test, _db._tcp.cluster.test
    port: 3000
    check: {type: tcp, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
    answers: {policy: all, max_answers: 8, ttl: 5s, when_none_healthy: fail_open}
    nodes: [{id: db-a, address: 127.0.0.11}]     # static nodes (optional)
    candidates: [127.0.1.0/28]                   # probed pool (optional)
listeners:                        # port-per-customer balancing
  - {name: client_one, port: 9001, service: app}
  - {name: bulk, ports: 9100-9199, service: app, balance: least_conn, proxy_protocol: v2}
groups:                           # balancer failover (lb.cluster.test)
  - name: lb
    mode: active-standby
    members: [{name: lb1, address: 127.0.0.21, priority: 151},
              {name: lb2, address: 127.0.0.22, priority: 150}]
    track: [{check: {type: http, address: 127.0.0.1:9400, path: /v1/status}, weight: -10}]
    preempt: true
    preempt_delay: 5s
    hooks: {on_active: "/usr/local/bin/move-eip"}
`

func FuzzParse(f *testing.F) {
	quickstart, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(quickstart)
	f.Add([]byte(designExample))
	f.Add([]byte(`{"zones": ["cluster.test"], "services": [{"name": "db", "port": 3000}]}`))
	f.Add([]byte("x-base: &b {port: 1}\nservices: [{<<: *b, name: a}, {<<: [*b], name: b}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("zones: [c.test]\ndns:\n  max_udp_size: 1400\n  rate_limit: {responses_per_second: 50, window: 5s, slip: 3, ipv4_prefix_length: 32}\n  zones: [{zone: c.test, ns: [{name: ns1, addresses: [192.0.2.53]}, {name: ns.example.net.}], soa: {mname: ns1, rname: h.example.com., refresh: 5m, minimum: 10s}}]\n"))
	f.Add([]byte("services: [&s {name: db, port: 1, nodes: [*s]}]\n"))
	for _, tc := range errorCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse("fuzz.yaml", data)
		if file == nil {
			t.Fatal("got a nil File, want one always")
		}
		if err != nil {
			configErrors(t, err) // every problem is a *config.Error
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse succeeded, then Validate got %v, want no error", err)
		}
		before, err := json.Marshal(file)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		file.SetDefaults()
		after, _ := json.Marshal(file)
		if !bytes.Equal(before, after) {
			t.Fatalf("SetDefaults a second time changed the file:\n%s\n%s", before, after)
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Validate after a second SetDefaults got %v, want no error", err)
		}
		_ = file.Warnings()
	})
}
