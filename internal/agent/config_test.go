package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

const goodFile = `# agent.yaml
servers: [http://10.0.0.1:9400, http://10.0.0.2:9400]
service: db
port: 3000
address_from: [iface:eth0, "cmd:hostname -I"]
imds_token_url: http://169.254.169.254/latest/api/token
alternates:
  - {label: public, from: "url:http://169.254.169.254/latest/meta-data/public-ipv4"}
  - {label: lan, from: 10.0.1.5}
ttl: 5s
unhealthy_after: 2s
wait_timeout: 1m
identity_addr: 0.0.0.0:9401
tags: {az: a}
command: [db-server, --port, "3000"]
`

func TestParseConfigFile(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Service != "db" || c.Port != 3000 || len(c.Servers) != 2 || c.TTL.D() != 5*time.Second ||
		c.UnhealthyAfter.D() != 2*time.Second || c.CheckInterval.D() != 500*time.Millisecond || c.WaitTimeout.D() != time.Minute ||
		len(c.Alternates) != 2 || c.Alternates[1].From != "10.0.1.5" || c.Tags["az"] != "a" || len(c.Command) != 3 ||
		c.StateFile != DefaultStateFile || c.Weight != 1 || c.BackoffMax.D() != DefaultBackoffMax {
		t.Fatalf("got %+v", c)
	}
	if got := c.Sources(); len(got) != 2 || got[1].Kind != SourceCmd {
		t.Fatalf("sources: got %v", got)
	}
	if leaseTTL(c.TTL.D()) != 4*time.Second {
		t.Fatalf("lease for 5s: got %v, want 4s", leaseTTL(c.TTL.D()))
	}
}

// An agent config decodes through the server's strict decoder: aliases work
// (within its budget), and the words are the same as for the server's file.
func TestConfigAliasesAndSharedWords(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte("service: &s db\nid: *s\nport: 3000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "db" || c.Service != "db" {
		t.Errorf("alias: id %q service %q, want db and db", c.ID, c.Service)
	}
	_, err = ParseConfig("agent.yaml", []byte("port: \"3000\"\n"))
	if want := `agent.yaml:1: port: "3000" is quoted text, not a number; write it without quotes`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// Every problem is reported at once, against the file line when the value
// came from the file and against the flag otherwise.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		flags      func(*Config)
		want       []string
	}{
		{name: "unknown key with a suggestion", file: "service: db\nport: 1\nservers: [x:1]\ntll: 5s\n",
			want: []string{`agent.yaml:4: tll: unknown key; did you mean "ttl"?`}},
		{name: "bad duration", file: "service: db\nport: 1\nservers: [x:1]\nttl: soon\n",
			want: []string{`agent.yaml:4: ttl: "soon" is not a duration`}},
		{name: "port as text", file: "service: db\nport: three\n",
			want: []string{`agent.yaml:2: port: "three" is not a whole number`}},
		{name: "map for a list", file: "alternates: {public: 10.0.0.1}\n",
			want: []string{"agent.yaml:1: alternates: is a map, not a list"}},
		{name: "unknown key in an alternate", file: "alternates: [{label: x, from: 10.0.0.1}, {label: y, frm: 10.0.0.2}]\n",
			want: []string{`agent.yaml:1: alternates[1].frm: unknown key; did you mean "from"?`}},
		{name: "set twice", file: "service: db\nservice: db2\n",
			want: []string{"agent.yaml:2: service: is given twice (first on line 1)"}},
		{name: "two documents", file: "service: db\n---\nport: 1\n",
			want: []string{"more than one YAML document"}},
		{name: "not a map", file: "- db\n",
			want: []string{"agent.yaml:1: the file must be a map"}},
		{name: "syntax", file: "service: [db\n",
			want: []string{"agent.yaml:1: invalid YAML: did not find expected ',' or ']'"}},
		{name: "validation against file lines", file: "servers: [\"http://\"]\nservice: DB\nport: 70000\nttl: 1s\naddress: iface:eth0\nalternates: [{label: x, from: nope}, {label: x, from: 10.0.0.1}]\ncheck_interval: 10s\n",
			want: []string{
				`agent.yaml:1: servers[0]: "http://" is not a server URL`,
				`agent.yaml:2: service: "DB" is not a valid name`,
				"agent.yaml:3: port: 70000 is not a port",
				"agent.yaml:4: ttl: 1s is too short",
				`agent.yaml:5: address: "iface:eth0" is not an IP address; use --address-from`,
				`agent.yaml:6: alternates[0].from: "nope" is neither an IP address nor a source`,
				`agent.yaml:6: alternates[1].label: "x" is given twice`,
				"agent.yaml:7: check_interval: 10s is longer than unhealthy_after (5s)",
			}},
		{name: "flags", flags: func(c *Config) {
			c.Service, c.Port, c.Servers = "db", 3000, []string{"http://10.0.0.1:9400"}
			c.AddressFrom = []string{"iface:eth0", "dns:x"}
			c.IdentityAddr = "9401"
			c.Weight = 5000
		}, want: []string{
			`--address-from[1]: "dns" is not a kind of address source`,
			`--identity-addr: "9401" is not host:port`,
			"--weight: 5000 is out of range (1-1000)",
		}},
		{name: "flag wins over the file line", file: "service: db\nport: 1\nservers: [x:1]\nttl: 5s\n", flags: func(c *Config) {
			c.TTL = api.Duration(time.Second)
			c.SetByFlag("ttl")
		}, want: []string{"--ttl: 1s is too short"}},
		{name: "nothing given", flags: func(*Config) {}, want: []string{
			"--server: none given", "--service: is empty", "--port: 0 is not a port",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{}
			var err error
			if tc.file != "" {
				c, err = ParseConfig("agent.yaml", []byte(tc.file))
			}
			if err == nil {
				if tc.flags != nil {
					tc.flags(c)
				}
				c.SetDefaults()
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestParseAlternate(t *testing.T) {
	a, err := ParseAlternate("public=url:http://169.254.169.254/latest/meta-data/public-ipv4")
	if err != nil || a.Label != "public" || a.From != "url:http://169.254.169.254/latest/meta-data/public-ipv4" {
		t.Fatalf("got %+v, %v", a, err)
	}
	if _, err := ParseAlternate("url:http://x"); err == nil || !strings.Contains(err.Error(), "LABEL=SOURCE") {
		t.Fatalf("without a label: got %v", err)
	}
}

func TestLeaseTTL(t *testing.T) {
	for _, tc := range []struct{ ttl, want time.Duration }{
		{1500 * time.Millisecond, time.Second},
		{2 * time.Second, time.Second},
		{2500 * time.Millisecond, 2 * time.Second},
		{10 * time.Second, 9 * time.Second},
		{time.Minute, 59 * time.Second},
	} {
		// A dead agent's node is gone within the lease and one sweep.
		if got := leaseTTL(tc.ttl); got != tc.want || got+leaseSweep > tc.ttl {
			t.Errorf("leaseTTL(%v) = %v, want %v (and lease+sweep within ttl)", tc.ttl, got, tc.want)
		}
	}
}
