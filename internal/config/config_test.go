package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
)

// errorCases are small bad files, each with the exact report it must get.
// FuzzParse is seeded with them too.
var errorCases = []struct {
	name string
	in   string
	want string
}{
	{
		name: "unknown key suggests the nearest",
		in: `services:
  - name: db
    prot: 3000
`,
		want: `t.yaml:3: services[0].prot: unknown key; did you mean "port"?`,
	},
	{
		name: "unknown key lists the keys",
		in: `zone: [cluster.test]
colour: blue
`,
		want: `t.yaml:1: zone: unknown key; did you mean "zones"?
t.yaml:2: colour: unknown key; the keys here are server, zones, api, dns, services, listeners, groups, allow_empty`,
	},
	{
		name: "key set by the server",
		in: `services:
  - name: db
    port: 3000
    source: api
`,
		want: `t.yaml:4: services[0].source: is set by seamark, not by the file; remove it`,
	},
	{
		name: "node service is set by the server",
		in: `services:
  - name: db
    port: 3000
    nodes: [{id: a, address: 10.0.0.1, service: db}]
`,
		want: `t.yaml:4: services[0].nodes[0].service: is set by seamark, not by the file; remove it`,
	},
	{
		name: "duplicate key",
		in: `services:
  - name: db
    port: 3000
    port: 3001
`,
		want: `t.yaml:4: services[0].port: is given twice (first on line 3)`,
	},
	{
		name: "duplicate key in a flow map",
		in: `listeners: [{name: a, port: 1, port: 2, service: db}]
services: [{name: db, port: 3000}]
`,
		want: `t.yaml:1: listeners[0].port: is given twice (first on line 1)`,
	},
	{
		name: "list where a map is expected",
		in: `services:
  - name: db
    port: 3000
    check: [tcp]
`,
		want: `t.yaml:4: services[0].check: is a list, not a map of keys`,
	},
	{
		name: "scalar where a map is expected",
		in: `api: open
`,
		want: `t.yaml:1: api: is "open", not a map of keys`,
	},
	{
		name: "map where a list is expected",
		in: `services: {name: db, port: 3000}
`,
		want: `t.yaml:1: services: is a map, not a list`,
	},
	{
		name: "scalar where a list is expected",
		in: `zones: cluster.test
`,
		want: `t.yaml:1: zones: "cluster.test" is a single value, not a list; write [cluster.test]`,
	},
	{
		name: "text for a number",
		in: `services:
  - name: db
    port: abc
`,
		want: `t.yaml:3: services[0].port: "abc" is not a whole number`,
	},
	{
		name: "quoted number",
		in: `services:
  - name: db
    port: "3000"
`,
		want: `t.yaml:3: services[0].port: "3000" is quoted text, not a number; write it without quotes`,
	},
	{
		name: "fraction for a number",
		in: `services:
  - name: db
    port: 3000
    nodes: [{id: a, address: 10.0.0.1, weight: 1.5}]
`,
		want: `t.yaml:4: services[0].nodes[0].weight: "1.5" is not a whole number`,
	},
	{
		name: "bad bool",
		in: `api:
  anonymous_read: yes
`,
		want: `t.yaml:2: api.anonymous_read: "yes" is not true or false`,
	},
	{
		name: "bad duration",
		in: `services:
  - name: db
    port: 3000
    check:
      interval: 1x
`,
		want: `t.yaml:5: services[0].check.interval: "1x" is not a duration (use a number with a unit, like "1s" or "500ms")`,
	},
	{
		name: "number for a duration",
		in: `services:
  - name: db
    port: 3000
    check: {interval: 5}
`,
		want: `t.yaml:4: services[0].check.interval: "5" is not a duration (use a number with a unit, like "1s" or "500ms")`,
	},
	{
		name: "bad address",
		in: `services:
  - name: db
    port: 3000
    nodes: [{id: a, address: 10.0.0.300}]
`,
		want: `t.yaml:4: services[0].nodes[0].address: "10.0.0.300" is not an IP address (like "10.0.1.5")`,
	},
	{
		name: "bad port range",
		in: `listeners: [{name: bulk, ports: 9199-9100, service: db}]
services: [{name: db, port: 3000}]
`,
		want: `t.yaml:1: listeners[0].ports: "9199-9100" is not a port range: ports go from 1 to 65535, first before last`,
	},
	{
		name: "bad address:port",
		in: `dns:
  secondaries: [10.0.0.53]
`,
		want: `t.yaml:2: dns.secondaries[0]: "10.0.0.53" is not an address:port (like "10.0.1.5:53")`,
	},
	{
		name: "map for a string",
		in: `services:
  - name: {first: db}
    port: 3000
`,
		want: `t.yaml:2: services[0].name: is a map, not a text value`,
	},
	{
		name: "key that is not a name",
		in: `? [a, b]
: c
`,
		want: `t.yaml:1: a key must be a plain name, not a list`,
	},
	{
		name: "root is a list",
		in: `- zones
`,
		want: `t.yaml:1: the file must be a map of sections (zones, services, listeners ...), not a list`,
	},
	{
		name: "more than one document",
		in: `zones: [a.test]
---
zones: [b.test]
`,
		want: `t.yaml:2: the file holds more than one YAML document (separated by ---); put everything in one`,
	},
	{
		name: "syntax error",
		in: `zones: [a.test
services: []
`,
		want: `t.yaml:1: invalid YAML: did not find expected ',' or ']'`,
	},
	{
		name: "tab indentation",
		in:   "services:\n\t- name: db\n",
		want: `t.yaml:2: invalid YAML: this line is indented with a tab; indent with spaces`,
	},
	{
		name: "api validation with path prefix",
		in: `services:
  - name: db
    port: 3000
    check: {interval: 1s, timeout: 2s}
`,
		want: `t.yaml:4: services[0].check.timeout: 2s is longer than the interval 1s; a probe must end before the next starts`,
	},
	{
		name: "check replicas out of range",
		in: `services:
  - name: db
    port: 3000
    check: {replicas: 17}
`,
		want: `t.yaml:4: services[0].check.replicas: 17 is out of range (1-16)`,
	},
	{
		name: "checker lease too short",
		in: `server:
  checker_lease_ttl: 500ms
`,
		want: `t.yaml:2: server.checker_lease_ttl: 500ms is out of range (1s to 60s)`,
	},
	{
		name: "node validation with path prefix",
		in: `services:
  - name: db
    port: 3000
    nodes:
      - {id: a, address: 10.0.0.1}
      - {id: b, address: 0.0.0.0}
`,
		want: `t.yaml:6: services[0].nodes[1].address: 0.0.0.0 cannot be dialled; give the node's own address`,
	},
	{
		name: "listener validation with path prefix",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: one, port: 9001, service: db, balance: fastest}
`,
		want: `t.yaml:3: listeners[0].balance: "fastest" is not one of round_robin, least_conn, hash, random2`,
	},
	{
		name: "group validation with path prefix",
		in: `groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 300}]
`,
		want: `t.yaml:3: groups[0].members[0].priority: 300 is out of range (1-254)`,
	},
	{
		name: "bad zone",
		in: `zones: [cluster.test, "bad zone"]
`,
		want: `t.yaml:1: zones[1]: "bad zone" is not a zone name: ' ' is not allowed`,
	},
	{
		name: "duplicate zone",
		in: `zones: [cluster.test, Cluster.Test.]
`,
		want: `t.yaml:1: zones[1]: "cluster.test." is also zones[0]; zones must be unique`,
	},
	{
		name: "duplicate service name",
		in: `services:
  - {name: db, port: 3000}
  - {name: app, port: 8080}
  - {name: db, port: 3001}
`,
		want: `t.yaml:4: services[2].name: "db" is also services[0]; service names must be unique`,
	},
	{
		name: "duplicate node id",
		in: `services:
  - name: db
    port: 3000
    nodes:
      - {id: db-a, address: 10.0.0.1}
      - {id: db-a, address: 10.0.0.2}
`,
		want: `t.yaml:6: services[0].nodes[1].id: "db-a" is also services[0].nodes[0]; node IDs within a service must be unique`,
	},
	{
		name: "static node with a ttl",
		in: `services:
  - name: db
    port: 3000
    nodes: [{id: a, address: 10.0.0.1, ttl: 10s}]
`,
		want: `t.yaml:4: services[0].nodes[0].ttl: a node in the file has no lease; remove ttl (agents set it when they register)`,
	},
	{
		name: "duplicate listener name",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: one, port: 9001, service: db}
  - {name: one, port: 9002, service: db}
`,
		want: `t.yaml:4: listeners[1].name: "one" is also listeners[0]; listener names must be unique`,
	},
	{
		name: "same port on the same bind address",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: one, port: 9001, service: db}
  - {name: two, port: 9001, service: db}
`,
		want: `t.yaml:4: listeners[1].port: 9001 is also taken by listeners[0] ("one") on 0.0.0.0`,
	},
	{
		name: "port inside another listener's range on the wildcard",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: bulk, ports: 9100-9199, service: db}
  - {name: one, port: 9150, bind: 127.0.0.1, service: db}
`,
		want: `t.yaml:4: listeners[1].port: 9150 is also taken by listeners[0] ("bulk") on 0.0.0.0, which overlaps 127.0.0.1`,
	},
	{
		name: "overlapping ranges",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: low, ports: 9100-9199, service: db}
  - {name: high, ports: 9150-9249, service: db}
`,
		want: `t.yaml:4: listeners[1].ports: port 9150 of 9150-9249 is also taken by listeners[0] ("low") on 0.0.0.0`,
	},
	{
		name: "ipv6 wildcard covers ipv4",
		in: `services: [{name: db, port: 3000}]
listeners:
  - {name: v6, port: 9001, bind: "::", service: db}
  - {name: v4, port: 9001, bind: 10.0.0.1, service: db}
`,
		want: `t.yaml:4: listeners[1].port: 9001 is also taken by listeners[0] ("v6") on ::, which overlaps 10.0.0.1`,
	},
	{
		name: "listener names a missing service",
		in: `services:
  - {name: db, port: 3000}
  - {name: app, port: 8080}
listeners:
  - {name: one, port: 9001, service: app}
  - {name: two, port: 9002, service: ap}
`,
		want: `t.yaml:6: listeners[1].service: "ap" is not a service in this file; services are: app, db`,
	},
	{
		name: "listener service with no services",
		in: `listeners:
  - {name: one, port: 9001, service: app}
`,
		want: `t.yaml:2: listeners[0].service: "app" is not a service in this file; the file declares no services`,
	},
	{
		name: "group name is a service name",
		in: `services: [{name: db, port: 3000}]
groups:
  - name: db
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
`,
		want: `t.yaml:3: groups[0].name: "db" is also the name of services[0]; both would be served as db.<zone>`,
	},
	{
		name: "duplicate group name",
		in: `groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
  - name: lb
    members: [{name: lb2, address: 10.0.0.2, priority: 100}]
`,
		want: `t.yaml:4: groups[1].name: "lb" is also groups[0]; group names must be unique`,
	},
	{
		name: "member name is a service name",
		in: `services: [{name: db, port: 3000}]
groups:
  - name: lb
    members: [{name: db, address: 10.0.0.1, priority: 100}]
`,
		want: `t.yaml:4: groups[0].members[0].name: "db" is also the name of services[0]; both would be served as db.<zone>`,
	},
	{
		name: "member name is a group name",
		in: `groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
  - name: lb1
    members: [{name: lb2, address: 10.0.0.2, priority: 100}]
`,
		want: `t.yaml:3: groups[0].members[0].name: "lb1" is also the name of groups[1]; both would be served as lb1.<zone>`,
	},
	{
		name: "member in two groups with two addresses",
		in: `groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
  - name: lb-internal
    members: [{name: lb1, address: 10.0.0.9, priority: 100}]
`,
		want: `t.yaml:5: groups[1].members[0].name: "lb1" is also groups[0].members[0] with address 10.0.0.1; one name, lb1.<zone>, cannot lead to both`,
	},
	{
		name: "token with secret and secret_file",
		in: `api:
  tokens: [{name: ops, secret: s3cret, secret_file: /etc/ops.token, access: write}]
`,
		want: `t.yaml:2: api.tokens[0].secret: set secret or secret_file, not both`,
	},
	{
		name: "token with no secret",
		in: `api:
  tokens: [{name: ops, access: write}]
`,
		want: `t.yaml:2: api.tokens[0].secret_file: is missing; give secret_file (a file holding the token) or secret`,
	},
	{
		name: "token access",
		in: `api:
  tokens: [{name: ops, secret: s3cret, access: admin}]
`,
		want: `t.yaml:2: api.tokens[0].access: "admin" is not one of read, register, write`,
	},
	{
		name: "token without access",
		in: `api:
  tokens: [{name: ops, secret: s3cret}]
`,
		want: `t.yaml:2: api.tokens[0].access: is missing; set read, register or write`,
	},
	{
		name: "register token without services",
		in: `api:
  tokens: [{name: agents, secret: s3cret, access: register}]
`,
		want: `t.yaml:2: api.tokens[0].services: is missing; a register token needs the services its agents register into (services: [db])`,
	},
	{
		name: "services on a write token",
		in: `api:
  tokens: [{name: ops, secret: s3cret, access: write, services: [db]}]
`,
		want: `t.yaml:2: api.tokens[0].services: only a register token takes services; remove it or set access: register`,
	},
	{
		name: "register token with a bad service name",
		in: `api:
  tokens: [{name: agents, secret: s3cret, access: register, services: [Bad_Name]}]
`,
		want: `t.yaml:2: api.tokens[0].services[0]: "Bad_Name" is not a valid name: use lower-case letters, digits and '-' (not first or last)`,
	},
	{
		name: "duplicate token name",
		in: `api:
  tokens:
    - {name: ops, secret: a, access: write}
    - {name: ops, secret: b, access: read}
`,
		want: `t.yaml:4: api.tokens[1].name: "ops" is also api.tokens[0]; token names must be unique`,
	},
	{
		name: "tsig algorithm",
		in: `dns:
  tsig_keys: [{name: update-key, algorithm: hmac-md5, secret: c2VjcmV0}]
`,
		want: `t.yaml:2: dns.tsig_keys[0].algorithm: "hmac-md5" is not one of hmac-sha1, hmac-sha256, hmac-sha512`,
	},
	{
		name: "tsig secret and secret_file",
		in: `dns:
  tsig_keys: [{name: update-key, secret: c2VjcmV0, secret_file: /etc/k}]
`,
		want: `t.yaml:2: dns.tsig_keys[0].secret: set secret or secret_file, not both`,
	},
	{
		name: "tsig with no secret",
		in: `dns:
  tsig_keys: [{name: update-key}]
`,
		want: `t.yaml:2: dns.tsig_keys[0].secret_file: is missing; give secret_file (a file holding the base64 key) or secret`,
	},
	{
		name: "tsig secret not base64",
		in: `dns:
  tsig_keys: [{name: update-key, secret: "not base64!"}]
`,
		want: `t.yaml:2: dns.tsig_keys[0].secret: is not valid base64 (make one with: openssl rand -base64 32)`,
	},
	{
		name: "duplicate tsig key name",
		in: `dns:
  tsig_keys:
    - {name: update-key, secret: c2VjcmV0}
    - {name: Update-Key., secret: c2VjcmV0}
`,
		want: `t.yaml:4: dns.tsig_keys[1].name: "update-key" is also dns.tsig_keys[0]; TSIG key names must be unique`,
	},
	{
		name: "allow_transfer with host bits",
		in: `dns:
  allow_transfer: [10.0.0.1/8]
`,
		want: `t.yaml:2: dns.allow_transfer[0]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?`,
	},
	{
		name: "secondary without a port",
		in: `dns:
  secondaries: ["10.0.0.53:0"]
`,
		want: `t.yaml:2: dns.secondaries[0]: 10.0.0.53:0 has port 0; give the port the secondary listens on (53)`,
	},
	{
		name: "http_addr not host:port",
		in: `server:
  http_addr: localhost
`,
		want: `t.yaml:2: server.http_addr: "localhost" is not a host:port like "127.0.0.1:9400"`,
	},
	{
		name: "dns_addr port not a number",
		in: `server:
  dns_addr: 127.0.0.1:dns
`,
		want: `t.yaml:2: server.dns_addr: "127.0.0.1:dns" is not a host:port like "127.0.0.1:9400"`,
	},
	{
		name: "etcd_client_addr not host:port",
		in: `server:
  etcd_client_addr: 127.0.0.1
`,
		want: `t.yaml:2: server.etcd_client_addr: "127.0.0.1" is not a host:port like "127.0.0.1:9400"`,
	},
	{
		name: "etcd_peer_addr same as client",
		in: `server:
  etcd_peer_addr: 127.0.0.1:9479
`,
		want: `t.yaml:2: server.etcd_peer_addr: "127.0.0.1:9479" is also server.etcd_client_addr; each listens on its own address`,
	},
	{
		name: "etcd_endpoints not urls",
		in: `server:
  etcd_endpoints: ["10.0.0.1:2379", "unix:///run/etcd.sock", "https://etcd.internal:2379"]
`,
		want: `t.yaml:2: server.etcd_endpoints[0]: "10.0.0.1:2379" is not an etcd URL like "http://10.0.0.1:2379"
t.yaml:2: server.etcd_endpoints[1]: "unix:///run/etcd.sock" is not an etcd URL like "http://10.0.0.1:2379"`,
	},
	{
		name: "store_prefix without slashes",
		in: `server:
  store_prefix: seamark
`,
		want: `t.yaml:2: server.store_prefix: "seamark" must start and end with '/' (like "/seamark/")`,
	},
	{
		name: "http and dns on one address",
		in: `server:
  http_addr: 127.0.0.1:5353
  dns_addr: 127.0.0.1:5353
`,
		want: `t.yaml:3: server.dns_addr: "127.0.0.1:5353" is also server.http_addr; each listens on its own address`,
	},
	{
		name: "merge key of a scalar",
		in: `services:
  - <<: db
    port: 3000
`,
		want: `t.yaml:2: services[0]: << merges a map (or a list of maps), not "db"
t.yaml:2: services[0].name: is empty; give it a name`,
	},
	{
		name: "a default has the line of its object",
		in: `zones: [cluster.test]
services:
  - name: db
    check: {type: tcp}
`,
		want: `t.yaml:3: services[0].port: 0 is not a port (1-65535)`,
	},
	{
		name: "dns limits and rate limiting",
		in: `dns:
  max_udp_size: 100
  max_tcp_connections: -1
  tcp_idle_timeout: 2h
  rate_limit: {responses_per_second: -5, window: 1500ms, slip: 11, ipv4_prefix_length: 33, ipv6_prefix_length: 8}
`,
		want: `t.yaml:2: dns.max_udp_size: 100 is not from 512 to 65535 (1232 fits every path without fragments)
t.yaml:3: dns.max_tcp_connections: -1 is not from 1 to 100000
t.yaml:4: dns.tcp_idle_timeout: 2h0m0s is not from 1ms to 1h (RFC 7766 suggests 10s)
t.yaml:5: dns.rate_limit.responses_per_second: -5 is not from 1 to 1000000 (to turn rate limiting off, set disabled: true)
t.yaml:5: dns.rate_limit.window: 1.5s is not whole seconds from 1s to 1h
t.yaml:5: dns.rate_limit.slip: 11 is not from 1 to 10, or -1 to drop every limited answer
t.yaml:5: dns.rate_limit.ipv4_prefix_length: 33 is not from 8 to 32
t.yaml:5: dns.rate_limit.ipv6_prefix_length: 8 is not from 16 to 128`,
	},
	{
		name: "dns zone apex",
		in: `zones: [cluster.test]
dns:
  zones:
    - zone: cluster.test
      ns: [{name: ns1}, {name: "bad name"}, {name: ns2.example.net., addresses: [0.0.0.0]}, {name: NS1}]
      soa: {rname: hostmaster@cluster.test, refresh: 1500ms, expire: -1s}
    - zone: Cluster.Test.
`,
		want: `t.yaml:5: dns.zones[0].ns[0].addresses: is empty; ns1.cluster.test. is inside the zone, so give its addresses (served as glue)
t.yaml:5: dns.zones[0].ns[1].name: "bad name" is not a host name; give one like "ns1" (in the zone) or "ns1.example.net."
t.yaml:5: dns.zones[0].ns[2].addresses[0]: give a specific address, like 192.0.2.53
t.yaml:5: dns.zones[0].ns[3].name: "ns1.cluster.test." is also dns.zones[0].ns[0]; name server names must be unique
t.yaml:5: dns.zones[0].ns[3].addresses: is empty; ns1.cluster.test. is inside the zone, so give its addresses (served as glue)
t.yaml:6: dns.zones[0].soa.expire: "-1s" is negative
t.yaml:6: dns.zones[0].soa.rname: "hostmaster@cluster.test" is not a mailbox written as a name (hostmaster@example.com is "hostmaster.example.com.")
t.yaml:6: dns.zones[0].soa.refresh: 1.5s is not whole seconds from 1s to 365 days
t.yaml:7: dns.zones[1].zone: "cluster.test." is also dns.zones[0]; zones must be unique`,
	},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("t.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("got no error, want\n%s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty file", ""},
		{"dns apex, limits and rate limiting", `
zones: [cluster.test]
dns:
  max_udp_size: 1400
  max_tcp_connections: 500
  tcp_idle_timeout: 5s
  rate_limit: {responses_per_second: 50, window: 5s, slip: 3, ipv4_prefix_length: 32, ipv6_prefix_length: 64}
  zones:
    - zone: cluster.test
      ns:
        - {name: ns1, addresses: [192.0.2.53, "2001:db8::53"]}
        - {name: ns2.example.net.}
      soa: {mname: ns1, rname: hostmaster.example.com., refresh: 5m, retry: 1m, expire: 168h, minimum: 10s}
`},
		{"dns rate limiting off", "dns: {rate_limit: {disabled: true}}\n"},
		{"only comments", "# nothing yet\n"},
		{"empty document", "---\n"},
		{"null document", "~\n"},
		{"explicit document end", "---\nzones: [cluster.test]\n...\n"},
		{"empty sections", "zones: []\nservices:\nlisteners: []\napi: {}\n"},
		{"same node id in two services", `
zones: [cluster.test]
services:
  - {name: db, port: 3000, nodes: [{id: a, address: 10.0.0.1}]}
  - {name: app, port: 8080, nodes: [{id: a, address: 10.0.0.2}]}
`},
		{"same port on different bind addresses", `
services: [{name: db, port: 3000}]
listeners:
  - {name: one, port: 9001, bind: 127.0.0.1, service: db}
  - {name: two, port: 9001, bind: 127.0.0.2, service: db}
  - {name: three, port: 9001, bind: "::1", service: db}
`},
		{"adjacent port ranges", `
services: [{name: db, port: 3000}]
listeners:
  - {name: low, ports: 9100-9199, service: db}
  - {name: high, ports: 9200-9299, service: db}
  - {name: one, ports: "9300", service: db}
`},
		{"one member in two groups at one address", `
groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
  - name: lb-internal
    members: [{name: lb1, address: 10.0.0.1, priority: 100}]
`},
		{"anchors under an extension key, merged", `
x-check: &check {type: http, path: /health, interval: 2s}
zones: [cluster.test]
services:
  - {name: db, port: 3000, check: {<<: *check, path: /db}}
  - {name: app, port: 8080, check: *check}
`},
		{"tags", `
services:
  - name: db
    port: 3000
    nodes: [{id: a, address: 10.0.0.1, tags: {rack: r1, "a.b": "2"}}]
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := config.Parse("t.yaml", []byte(tc.in)); err != nil {
				t.Errorf("got %v, want no error", err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	in := `zones: [cluster.test]
services:
  - name: db
    port: 3000
    check: {interval: 1x}
  - name: app
    prot: 8080
listeners:
  - {name: one, port: 9001, service: ap}
`
	want := []config.Error{
		{File: "t.yaml", Line: 5, Path: "services[0].check.interval", Msg: `"1x" is not a duration (use a number with a unit, like "1s" or "500ms")`},
		{File: "t.yaml", Line: 7, Path: "services[1].prot", Msg: `unknown key; did you mean "port"?`},
		{File: "t.yaml", Line: 9, Path: "listeners[0].service", Msg: `"ap" is not a service in this file; services are: app, db`},
	}
	_, err := config.Parse("t.yaml", []byte(in))
	got := configErrors(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if *got[i] != want[i] {
			t.Errorf("error %d: got %+v, want %+v", i, *got[i], want[i])
		}
	}
}

// configErrors returns the *config.Errors joined in err, failing t when
// something else is in it.
func configErrors(t *testing.T, err error) []*config.Error {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]*config.Error, len(errs))
	for i, e := range errs {
		ce, ok := e.(*config.Error)
		if !ok {
			t.Fatalf("got a %T (%v), want a *config.Error", e, e)
		}
		out[i] = ce
	}
	return out
}

func TestQuickstart(t *testing.T) {
	f, err := config.Load("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if w := f.Warnings(); len(w) != 0 {
		t.Errorf("got warnings %q, want none", w)
	}
	if err := f.ReadSecrets(); err != nil {
		t.Errorf("ReadSecrets: got %v, want no error (the quickstart needs no secret files)", err)
	}
	if got, want := f.Zones, []string{"cluster.test."}; !reflect.DeepEqual(got, want) {
		t.Errorf("zones: got %q, want %q", got, want)
	}
	if len(f.Services) != 2 {
		t.Fatalf("got %d services, want 2", len(f.Services))
	}
	db := f.Services[0]
	if db.Name != "db" || db.Port != 3000 || db.Check.Type != api.CheckNone || len(db.Nodes) != 2 {
		t.Errorf("got db = %s port %d check %s with %d nodes, want db port 3000 check none with 2 nodes",
			db.Name, db.Port, db.Check.Type, len(db.Nodes))
	}
	for _, n := range db.Nodes {
		if !n.Address.IsLoopback() {
			t.Errorf("node %s: got address %s, want a loopback address", n.ID, n.Address)
		}
	}
	if len(f.API.Tokens) != 0 || len(f.DNS.TSIGKeys) != 0 || len(f.Groups) != 0 {
		t.Errorf("got tokens, TSIG keys or groups, want none in the quickstart")
	}
	for _, l := range f.Listeners {
		if l.Port < 1024 || l.Ports.First != 0 && l.Ports.First < 1024 {
			t.Errorf("listener %s: got port %d, want one above 1023 (no root)", l.Name, l.Port)
		}
	}
}

func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	// The example follows this marker in a ```yaml block.
	m := regexp.MustCompile("(?s)<!-- full example -->\\s*```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/config.md: no yaml block after <!-- full example -->")
	}
	f, err := config.Parse("config.md", m[1])
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if w := f.Warnings(); len(w) != 0 {
		t.Errorf("got warnings %q, want none", w)
	}
}

func TestLoadMissingFile(t *testing.T) {
	f, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if f != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, %v, want nil and an error wrapping fs.ErrNotExist", f, err)
	}
}

// sections returns the exported content of f, for comparing two Files.
func sections(f *config.File) []any {
	return []any{f.Server, f.Zones, f.API.Tokens, *f.API.AnonymousRead, f.DNS, f.Services, f.Listeners, f.Groups}
}

func TestJSON(t *testing.T) {
	yamlIn := `
zones: [cluster.test]
api: {anonymous_read: false, tokens: [{name: ops, secret: s3cret, access: write}]}
services:
  - name: db
    port: 3000
    check: {type: http, path: /health, interval: 2s}
    nodes: [{id: db-a, address: 10.0.0.1, tags: {rack: r1}}]
listeners: [{name: bulk, ports: 9100-9199, service: db, accept_proxy: true}]
groups: [{name: lb, members: [{name: lb1, address: 10.0.0.21, priority: 150}], preempt: false}]
`
	jsonIn := `{
	"zones": ["cluster.test"],
	"api": {"anonymous_read": false, "tokens": [{"name": "ops", "secret": "s3cret", "access": "write"}]},
	"services": [{
		"name": "db",
		"port": 3000,
		"check": {"type": "http", "path": "/health", "interval": "2s"},
		"nodes": [{"id": "db-a", "address": "10.0.0.1", "tags": {"rack": "r1"}}]
	}],
	"listeners": [{"name": "bulk", "ports": "9100-9199", "service": "db", "accept_proxy": true}],
	"groups": [{"name": "lb", "members": [{"name": "lb1", "address": "10.0.0.21", "priority": 150}], "preempt": false}]
}`
	fy, err := config.Parse("t.yaml", []byte(yamlIn))
	if err != nil {
		t.Fatalf("yaml: got %v, want no error", err)
	}
	fj, err := config.Parse("t.json", []byte(jsonIn))
	if err != nil {
		t.Fatalf("json: got %v, want no error", err)
	}
	if got, want := sections(fj), sections(fy); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v from JSON, want %+v as from YAML", got, want)
	}

	// Errors in JSON carry lines too.
	_, err = config.Parse("t.json", []byte("{\n\t\"services\": [\n\t\t{\"name\": \"db\", \"port\": \"3000\"}\n\t]\n}"))
	want := `t.json:3: services[0].port: "3000" is quoted text, not a number; write it without quotes`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestJSONMarshalled checks that a File written by encoding/json reads back:
// the same keys name the same fields.
func TestJSONMarshalled(t *testing.T) {
	f, err := config.Load("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	b, _ := json.Marshal(f)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	// Drop what seamark sets itself and a file may not.
	for _, s := range raw["services"].([]any) {
		svc := s.(map[string]any)
		delete(svc, "source")
		nodes, _ := svc["nodes"].([]any)
		for _, n := range nodes {
			for _, k := range []string{"service", "source", "registered", "healthy", "lease"} {
				delete(n.(map[string]any), k)
			}
		}
	}
	for _, l := range raw["listeners"].([]any) {
		delete(l.(map[string]any), "source")
	}
	b, _ = json.Marshal(raw)
	g, err := config.Parse("quickstart.json", b)
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if got, want := sections(g), sections(f); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   string
		get  func(f *config.File) any
		want any
	}{
		{"server", "", func(f *config.File) any { return f.Server }, config.Server{
			HTTPAddr:        "127.0.0.1:9400",
			DNSAddr:         "127.0.0.1:9453",
			DataDir:         "./seamark-data",
			EtcdClientAddr:  "127.0.0.1:9479",
			EtcdPeerAddr:    "127.0.0.1:9480",
			StorePrefix:     "/seamark/",
			CheckerLeaseTTL: api.Duration(3 * time.Second),
		}},
		{"server keeps what is given", "server: {http_addr: 0.0.0.0:80, store_prefix: /x/}",
			func(f *config.File) any { return []string{f.Server.HTTPAddr, f.Server.DNSAddr, f.Server.StorePrefix} },
			[]string{"0.0.0.0:80", "127.0.0.1:9453", "/x/"}},
		{"anonymous read", "", func(f *config.File) any { return *f.API.AnonymousRead }, true},
		{"anonymous read off", "api: {anonymous_read: false}", func(f *config.File) any { return *f.API.AnonymousRead }, false},
		{"route53 signed by default", "", func(f *config.File) any { return f.API.Route53.InsecureUnsigned }, false},
		{"route53 insecure unsigned", "api: {route53: {insecure_unsigned: true}}", func(f *config.File) any { return f.API.Route53.InsecureUnsigned }, true},
		{"zones are normalised", "zones: [Cluster.Test, example.com.]", func(f *config.File) any { return f.Zones },
			[]string{"cluster.test.", "example.com."}},
		{"service check and answers", "services: [{name: db, port: 3000}]",
			func(f *config.File) any {
				return []any{f.Services[0].Check, f.Services[0].Answers, f.Services[0].Source}
			},
			[]any{api.Check{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(time.Second),
				FastInterval: api.Duration(time.Second), DownInterval: api.Duration(time.Second), Rise: 2, Fall: 2, Initial: "unhealthy", Replicas: 3},
				api.AnswerPolicy{Policy: "all", MaxAnswers: 8, TTL: api.Duration(5 * time.Second), WhenNoneHealthy: "fail_open"},
				api.SourceConfig}},
		{"nodes", "services: [{name: db, port: 3000, nodes: [{id: a, address: 10.0.0.1}]}]",
			func(f *config.File) any {
				n := f.Services[0].Nodes[0]
				return []any{n.Service, n.Source, n.Weight, n.State}
			},
			[]any{"db", api.SourceConfig, 1, api.StateHealthy}},
		{"listeners", "services: [{name: db, port: 3000}]\nlisteners: [{name: a, port: 9001, service: db}]",
			func(f *config.File) any {
				l := f.Listeners[0]
				return []any{l.Bind.String(), l.Balance, l.RetryCount(), l.OnBackendDown, l.Source}
			},
			[]any{"0.0.0.0", "round_robin", 2, "keep", api.SourceConfig}},
		{"listener retries 0 is kept", "services: [{name: db, port: 3000}]\nlisteners: [{name: a, port: 9001, service: db, retries: 0}]",
			func(f *config.File) any { return f.Listeners[0].RetryCount() }, 0},
		{"groups", "groups: [{name: lb, members: [{name: lb1, address: 10.0.0.1, priority: 100}]}]",
			func(f *config.File) any { g := f.Groups[0]; return []any{g.Mode, *g.Preempt, g.LeaseTTL, g.Source} },
			[]any{"active-standby", true, api.Duration(time.Second), api.SourceConfig}},
		{"tsig algorithm", "dns: {tsig_keys: [{name: k, secret: c2VjcmV0}]}",
			func(f *config.File) any { return f.DNS.TSIGKeys[0].Algorithm }, "hmac-sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := config.Parse("t.yaml", []byte(tc.in))
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if got := tc.get(f); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSetDefaultsWithoutAFile(t *testing.T) {
	var f config.File
	f.SetDefaults()
	if err := f.Validate(); err != nil {
		t.Errorf("got %v, want no error", err)
	}
	f.Listeners = []api.Listener{{Name: "a", Port: 9001, Service: "db"}}
	f.SetDefaults()
	want := `listeners[0].service: "db" is not a service in this file; the file declares no services`
	if err := f.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"track cannot move the role", `
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb2, address: 10.0.0.2, priority: 80}, {name: lb1, address: 10.0.0.1, priority: 100}]
    track:
      - {check: {type: tcp, address: "127.0.0.1:80"}, weight: -10}
      - {check: {type: tcp, address: "127.0.0.1:81"}, weight: 5}
`, []string{"t.yaml:6: groups[0].track: no tracked check can move the role: largest weight 10 does not exceed the priority gap 20 between lb1 and lb2 (use a weight of at least 21, or 0 to make a failing check a fault)"}},
		{"track can move the role", `
zones: [cluster.test]
groups:
  - name: lb
    members: [{name: lb1, address: 10.0.0.1, priority: 151}, {name: lb2, address: 10.0.0.2, priority: 150}]
    track: [{check: {type: tcp, address: "127.0.0.1:80"}, weight: -10}]
`, nil},
		{"active-active has no role to move", `
zones: [cluster.test]
groups:
  - name: lb
    mode: active-active
    members: [{name: lb1, address: 10.0.0.1, priority: 200}, {name: lb2, address: 10.0.0.2, priority: 100}]
    track: [{check: {type: tcp, address: "127.0.0.1:80"}, weight: -10}]
`, nil},
		{"no zone for services", "services: [{name: db, port: 3000}]\n",
			[]string{"t.yaml: zones: no zone is declared; services and groups get DNS names only under a zone (add one here or through the API)"}},
		{"nothing to warn about", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := config.Parse("t.yaml", []byte(tc.in))
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if got := f.Warnings(); !reflect.DeepEqual(got, tc.want) && (len(got) > 0 || len(tc.want) > 0) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  config.Error
		want string
	}{
		{config.Error{File: "a.yaml", Line: 3, Path: "zones[0]", Msg: "bad"}, "a.yaml:3: zones[0]: bad"},
		{config.Error{File: "a.yaml", Path: "zones", Msg: "bad"}, "a.yaml: zones: bad"},
		{config.Error{File: "a.yaml", Line: 1, Msg: "bad"}, "a.yaml:1: bad"},
		{config.Error{Line: 2, Path: "zones", Msg: "bad"}, "line 2: zones: bad"},
		{config.Error{Path: "zones", Msg: "bad"}, "zones: bad"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ops.token", "  tok3n-value\n")
	write("update.key", "c2VjcmV0LWtleS12YWx1ZQ==\n")
	write("empty.token", "\n")
	write("bad.key", "not base64 at all!\n")
	cfg := `
api:
  tokens:
    - {name: ops, secret_file: ops.token, access: write}
    - {name: inline, secret: inline-value, access: read}
dns:
  tsig_keys: [{name: update-key, secret_file: %s}]
`
	t.Run("read", func(t *testing.T) {
		path := filepath.Join(dir, "good.yaml")
		write("good.yaml", strings.Replace(cfg, "%s", filepath.Join(dir, "update.key"), 1))
		f, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ReadSecrets(); err != nil {
			t.Fatalf("got %v, want no error", err)
		}
		got := []string{f.API.Tokens[0].Secret, f.API.Tokens[1].Secret, f.DNS.TSIGKeys[0].Secret}
		want := []string{"tok3n-value", "inline-value", "c2VjcmV0LWtleS12YWx1ZQ=="}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if err := f.Validate(); err != nil {
			t.Errorf("Validate after ReadSecrets: got %v, want no error", err)
		}
	})
	t.Run("problems", func(t *testing.T) {
		path := filepath.Join(dir, "bad.yaml")
		write("bad.yaml", `
api:
  tokens:
    - {name: a, secret_file: missing.token, access: write}
    - {name: b, secret_file: empty.token, access: read}
dns:
  tsig_keys: [{name: k, secret_file: bad.key}]
`)
		f, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		err = f.ReadSecrets()
		want := []string{
			path + ":4: api.tokens[0].secret_file: cannot read " + filepath.Join(dir, "missing.token") + ": no such file or directory",
			path + ":5: api.tokens[1].secret_file: " + filepath.Join(dir, "empty.token") + " is empty",
			path + ":7: dns.tsig_keys[0].secret_file: bad.key does not hold a base64 key (make one with: openssl rand -base64 32)",
		}
		if err == nil || err.Error() != strings.Join(want, "\n") {
			t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want it to wrap fs.ErrNotExist", err)
		}
		if strings.Contains(err.Error(), "not base64 at all") {
			t.Errorf("got %v, want no secret quoted", err)
		}
	})
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &l0 {name: db, port: 3000}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x-%d: &l%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	b.WriteString("services: [*l8]\n")
	start := time.Now()
	_, err := config.Parse("t.yaml", []byte(b.String()))
	want := regexp.MustCompile(`^t\.yaml:1: services\[0\]: the file expands to more than \d+ values; are aliases \(\*name\) nested too deep\?$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("got %v, want %s", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s, want the decoder to give up quickly", d)
	}
}
