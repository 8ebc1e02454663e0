package route53_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

// These tests drive Debian's awscli and python3-boto3, unmodified, against a
// real seamark server, and check the answers with dig.

const (
	writeKey, writeSecret = "ops", "ops-secret-0123456789"
	readKey, readSecret   = "viewer", "viewer-secret-0123456789"
)

// need finds a tool: in CI a missing one fails the test, locally it skips.
func need(t *testing.T, path, pkg string, check ...string) {
	t.Helper()
	_, err := os.Stat(path)
	if err == nil && len(check) > 0 {
		err = exec.Command(check[0], check[1:]...).Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (install the Debian package %s): %v", path, pkg, err)
		}
		t.Skipf("%s is missing: install the Debian package %s", path, pkg)
	}
}

type env struct {
	t    *testing.T
	srv  *server.Server
	url  string
	dir  string
	vars []string
}

func start(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server and runs the AWS CLI")
	}
	need(t, "/usr/bin/aws", "awscli")
	need(t, "/usr/bin/dig", "bind9-dnsutils")
	need(t, "/usr/bin/python3", "python3-boto3", "/usr/bin/python3", "-c", "import boto3")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	yaml := fmt.Sprintf(`zones: [cluster.test]
api:
  tokens:
    - {name: %s, secret: %s, access: write}
    - {name: %s, secret: %s, access: read}
`, writeKey, writeSecret, readKey, readSecret)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ReadSecrets(); err != nil {
		t.Fatal(err)
	}
	f.Server.DataDir, f.Server.HTTPAddr = filepath.Join(dir, "data"), "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Options{Config: f, ConfigPath: cfg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{t: t, srv: s, url: "http://" + s.HTTPAddr().String(), dir: dir}
	e.credentials(writeKey, writeSecret)
	return e
}

// credentials writes an AWS config and credentials file in the test's
// directory and points the clients at them.
func (e *env) credentials(key, secret string) {
	awsDir := filepath.Join(e.dir, "aws-"+key+"-"+secret[:3])
	if err := os.MkdirAll(awsDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	conf := filepath.Join(awsDir, "config")
	creds := filepath.Join(awsDir, "credentials")
	_ = os.WriteFile(conf, []byte("[default]\nregion = us-east-1\noutput = json\n"), 0o600)
	_ = os.WriteFile(creds, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", key, secret)), 0o600)
	e.vars = []string{
		"PATH=/usr/bin:/bin", "HOME=" + awsDir, "LANG=C.UTF-8",
		"AWS_CONFIG_FILE=" + conf, "AWS_SHARED_CREDENTIALS_FILE=" + creds,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "SEAMARK_URL=" + e.url,
	}
}

// run runs a command with the AWS environment and extra variables; it
// returns stdout, stderr and the exit code.
func (e *env) run(extra []string, name string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(slices.Clone(e.vars), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), code
}

func (e *env) mustRun(extra []string, name string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(extra, name, args...)
	if code != 0 {
		e.t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (e *env) aws(args ...string) (string, string, int) {
	return e.run(nil, "/usr/bin/aws", append([]string{"--endpoint-url", e.url}, args...)...)
}

// dig asks the server's DNS for name's A records, sorted.
func (e *env) dig(name string) []string {
	e.t.Helper()
	addr := e.srv.DNSAddr()
	out := e.mustRun(nil, "/usr/bin/dig", "+short", "+tries=1", "+time=2", "-p", fmt.Sprint(addr.Port()), "@"+addr.Addr().String(), name, "A")
	var ips []string
	for _, l := range strings.Fields(out) {
		ips = append(ips, l)
	}
	slices.Sort(ips)
	return ips
}

// insync asks GetChange (with the AWS CLI) until the change is INSYNC, then
// checks that dig shows want within 100 ms of that answer.
func (e *env) insync(changeID, name string, want []string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errs, code := e.aws("route53", "get-change", "--id", changeID, "--query", "ChangeInfo.Status", "--output", "text")
		if code != 0 {
			e.t.Fatalf("get-change %s: exit %d: %s", changeID, code, errs)
		}
		if out == "INSYNC" {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("change %s still %s after 30s", changeID, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The server must answer the change within 100 ms of INSYNC. A query
	// from this process measures that; dig, a separate process whose start
	// alone can take longer than that on a loaded machine, then shows the
	// same answer.
	t0 := time.Now()
	fast := e.query(name)
	tookFast := time.Since(t0)
	got := e.dig(name)
	took := time.Since(t0)
	if !slices.Equal(fast, want) || !slices.Equal(got, want) {
		e.t.Fatalf("%s right after INSYNC: got %v (query after %v), dig %v (after %v); want %v", name, fast, tookFast, got, took, want)
	}
	if tookFast > 100*time.Millisecond {
		e.t.Fatalf("%s answered %v after INSYNC, want within 100ms", name, tookFast)
	}
	e.t.Logf("change %s: INSYNC, %s = %v answered %v later, dig %v later", changeID, name, got, tookFast.Round(10*time.Microsecond), took.Round(time.Millisecond))
}

// query asks the server's DNS for name's A records from this process.
func (e *env) query(name string) []string {
	e.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, e.srv.DNSAddr().String())
	if err != nil {
		e.t.Fatalf("query %s: %v", name, err)
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	slices.Sort(ips)
	return ips
}

// listen opens a TCP listener on addr (the node's "service port").
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// The field's node start and stop scripts, unchanged but for the endpoint:
// two nodes add themselves to a multivalue set with a TCP health check, dig
// follows each change and the health verdicts, and the stop script takes a
// node out again.
func TestStartStopScripts(t *testing.T) {
	e := start(t)
	script := func(name string) string { p, _ := filepath.Abs("testdata/" + name); return p }
	type node struct {
		ip    string
		ln    net.Listener
		state string
	}
	nodes := []*node{{ip: "127.0.46.1"}, {ip: "127.0.46.2"}}
	var want []string
	for _, n := range nodes {
		n.ln = listen(t, n.ip+":0")
		n.state = t.TempDir()
		port := n.ln.Addr().(*net.TCPAddr).Port
		vars := []string{"PUBLIC_IP=" + n.ip, fmt.Sprintf("PORT=%d", port), "STATE_DIR=" + n.state}
		t0 := time.Now()
		id := e.mustRun(vars, "/bin/bash", script("node-start.sh"), "cluster.test", "db.cluster.test")
		t.Logf("node-start.sh %s took %v", n.ip, time.Since(t0).Round(time.Millisecond))
		want = append(want, n.ip)
		e.insync(id, "db.cluster.test", want)
	}
	out, _, _ := e.aws("route53", "list-health-checks", "--query", "length(HealthChecks)")
	if out != "2" {
		t.Fatalf("list-health-checks: got %s health checks, want 2", out)
	}

	// Node 1's port closes: its health check fails and dig drops it.
	nodes[0].ln.Close()
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Equal(e.dig("db.cluster.test"), []string{"127.0.46.2"}) {
		if time.Now().After(deadline) {
			t.Fatalf("dig still answers %v 20s after node 1's port closed", e.dig("db.cluster.test"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	hcs, _, _ := e.aws("route53", "list-health-checks", "--query", "HealthChecks[?HealthCheckConfig.IPAddress=='127.0.46.1'].Id", "--output", "text")
	status, _, _ := e.aws("route53", "get-health-check-status", "--health-check-id", hcs, "--query", "HealthCheckObservations[0].StatusReport.Status", "--output", "text")
	if !strings.HasPrefix(status, "Failure") {
		t.Fatalf("get-health-check-status of node 1: got %q, want a Failure", status)
	}

	// The stop script removes node 2, then node 1.
	for _, i := range []int{1, 0} {
		n := nodes[i]
		id := e.mustRun([]string{"STATE_DIR=" + n.state}, "/bin/bash", script("node-stop.sh"), "cluster.test", "db.cluster.test")
		want = slices.DeleteFunc(want, func(ip string) bool { return ip == n.ip })
		if i == 1 {
			// Only node 1 is left and it is down: like Route 53, the set
			// answers every record when none is healthy.
			e.insync(id, "db.cluster.test", []string{"127.0.46.1"})
		} else {
			e.insync(id, "db.cluster.test", nil)
		}
	}
	if out, _, _ := e.aws("route53", "list-health-checks", "--query", "length(HealthChecks)"); out != "0" {
		t.Fatalf("after the stop scripts: %s health checks left, want 0", out)
	}
}

// The autoscaling Lambda writes the group's IPs with boto3's
// change_resource_record_sets: a plain record set, replaced on every change.
func TestLambdaChangeResourceRecordSets(t *testing.T) {
	e := start(t)
	lambda, _ := filepath.Abs("testdata/asg_lambda.py")
	steps := [][]string{
		{"127.0.46.11", "127.0.46.12", "127.0.46.13"},
		{"127.0.46.12", "127.0.46.13", "127.0.46.14", "127.0.46.15"},
		{"127.0.46.15"},
		{},
	}
	for _, ips := range steps {
		id := e.mustRun(nil, "/usr/bin/python3", append([]string{lambda}, ips...)...)
		want := slices.Clone(ips)
		slices.Sort(want)
		if len(want) == 0 {
			want = nil
		}
		e.insync(id, "seeds.cluster.test", want)
	}
}

// Route 53's errors reach the CLI as they would from Route 53.
func TestCLIErrors(t *testing.T) {
	e := start(t)
	zone, errs, code := e.aws("route53", "list-hosted-zones-by-name", "--dns-name", "cluster.test", "--query", "HostedZones[0].Id", "--output", "text")
	if code != 0 || !strings.HasPrefix(zone, "/hostedzone/Z") {
		t.Fatalf("list-hosted-zones-by-name: %q, exit %d: %s", zone, code, errs)
	}
	batch := func(action, name, ip string) string {
		return fmt.Sprintf(`{"Changes":[{"Action":%q,"ResourceRecordSet":{"Name":%q,"Type":"A","TTL":60,"ResourceRecords":[{"Value":%q}]}}]}`, action, name, ip)
	}
	tests := []struct {
		name     string
		key, sec string
		args     []string
		want     string
	}{
		{"delete a missing record", writeKey, writeSecret,
			[]string{"route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", batch("DELETE", "nothere.cluster.test", "127.0.46.9")},
			"An error occurred (InvalidChangeBatch) when calling the ChangeResourceRecordSets operation: [Tried to delete resource record set [name='nothere.cluster.test.', type='A'] but it was not found]"},
		{"wrong secret", writeKey, "not-the-secret",
			[]string{"route53", "list-hosted-zones"},
			"An error occurred (SignatureDoesNotMatch) when calling the ListHostedZones operation: The request signature we calculated does not match the signature you provided."},
		{"unknown access key", "nobody", writeSecret,
			[]string{"route53", "list-hosted-zones"},
			"An error occurred (InvalidClientTokenId) when calling the ListHostedZones operation"},
		{"read token changes", readKey, readSecret,
			[]string{"route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", batch("CREATE", "www.cluster.test", "127.0.46.9")},
			"An error occurred (AccessDenied) when calling the ChangeResourceRecordSets operation"},
		{"record outside the zone", writeKey, writeSecret,
			[]string{"route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", batch("CREATE", "www.example.com", "127.0.46.9")},
			"[RRSet with DNS name www.example.com. is not permitted in zone cluster.test.]"},
		{"unknown zone", writeKey, writeSecret,
			[]string{"route53", "get-hosted-zone", "--id", "ZNOTHERE"},
			"An error occurred (NoSuchHostedZone) when calling the GetHostedZone operation: No hosted zone found with ID: ZNOTHERE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.credentials(tc.key, tc.sec)
			defer e.credentials(writeKey, writeSecret)
			out, errs, code := e.aws(tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stdout: %s", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr: got %q, want it to contain %q", errs, tc.want)
			}
		})
	}
	// The read token may read, and the CREATE then DELETE round trip works.
	e.credentials(readKey, readSecret)
	if _, errs, code := e.aws("route53", "list-resource-record-sets", "--hosted-zone-id", zone); code != 0 {
		t.Fatalf("read token: list-resource-record-sets: exit %d: %s", code, errs)
	}
	e.credentials(writeKey, writeSecret)
	id, errs, code := e.aws("route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", batch("CREATE", "www.cluster.test", "127.0.46.9"), "--query", "ChangeInfo.Id", "--output", "text")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	e.insync(id, "www.cluster.test", []string{"127.0.46.9"})
	_, errs, code = e.aws("route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", batch("CREATE", "www.cluster.test", "127.0.46.9"))
	if want := "[Tried to create resource record set [name='www.cluster.test.', type='A'] but it already exists]"; code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("second create: exit %d, stderr %q, want %q", code, errs, want)
	}
}

// ListResourceRecordSets and ListHealthChecks page as on Route 53: the CLI
// and boto3's paginators follow NextRecordName/Type/Identifier and
// NextMarker one item at a time and see every set once. A weighted set
// answers one record per query.
func TestPagingAndWeighted(t *testing.T) {
	e := start(t)
	zone, errs, code := e.aws("route53", "list-hosted-zones", "--query", "HostedZones[0].Id", "--output", "text")
	if code != 0 {
		t.Fatalf("list-hosted-zones: exit %d: %s", code, errs)
	}
	changes := `{"Changes":[
	 {"Action":"CREATE","ResourceRecordSet":{"Name":"a.cluster.test","Type":"A","TTL":60,"ResourceRecords":[{"Value":"127.0.46.21"}]}},
	 {"Action":"CREATE","ResourceRecordSet":{"Name":"a.cluster.test","Type":"TXT","TTL":60,"ResourceRecords":[{"Value":"\"hello world\""}]}},
	 {"Action":"CREATE","ResourceRecordSet":{"Name":"b.a.cluster.test","Type":"CNAME","TTL":60,"ResourceRecords":[{"Value":"a.cluster.test."}]}},
	 {"Action":"CREATE","ResourceRecordSet":{"Name":"web.cluster.test","Type":"A","SetIdentifier":"one","Weight":10,"TTL":5,"ResourceRecords":[{"Value":"127.0.46.22"}]}},
	 {"Action":"CREATE","ResourceRecordSet":{"Name":"web.cluster.test","Type":"A","SetIdentifier":"two","Weight":20,"TTL":5,"ResourceRecords":[{"Value":"127.0.46.23"}]}}
	]}`
	id, errs, code := e.aws("route53", "change-resource-record-sets", "--hosted-zone-id", zone, "--change-batch", changes, "--query", "ChangeInfo.Id", "--output", "text")
	if code != 0 {
		t.Fatalf("change: exit %d: %s", code, errs)
	}
	e.insync(id, "a.cluster.test", []string{"127.0.46.21"})
	want := "a.cluster.test. A -\na.cluster.test. TXT -\nb.a.cluster.test. CNAME -\nweb.cluster.test. A one\nweb.cluster.test. A two"
	out, errs, code := e.aws("route53", "list-resource-record-sets", "--hosted-zone-id", zone, "--page-size", "1",
		"--query", "ResourceRecordSets[].[Name, Type, SetIdentifier || '-']", "--output", "text")
	if got := strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " | ")), " "); code != 0 || got != strings.Join(strings.Fields(strings.ReplaceAll(want, "\n", " | ")), " ") {
		t.Fatalf("list-resource-record-sets --page-size 1: exit %d (%s)\ngot:\n%s\nwant:\n%s", code, errs, out, want)
	}
	// boto3's paginator, and a start in the middle of the weighted set.
	py := `
import boto3, os, sys
c = boto3.client("route53", endpoint_url=os.environ["SEAMARK_URL"])
zone = sys.argv[1]
names = [(s["Name"], s["Type"], s.get("SetIdentifier", "-"), s.get("Weight", "-")) for page in
         c.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone, PaginationConfig={"PageSize": 2})
         for s in page["ResourceRecordSets"]]
print(names)
r = c.list_resource_record_sets(HostedZoneId=zone, StartRecordName="web.cluster.test", StartRecordType="A", StartRecordIdentifier="two", MaxItems="1")
print(r["ResourceRecordSets"][0]["SetIdentifier"], r["IsTruncated"])
print(c.list_resource_record_sets(HostedZoneId=zone, StartRecordName="a.cluster.test", StartRecordType="TXT", MaxItems="1")["ResourceRecordSets"][0]["ResourceRecords"])
`
	out = e.mustRun(nil, "/usr/bin/python3", "-c", py, zone)
	wantPy := `[('a.cluster.test.', 'A', '-', '-'), ('a.cluster.test.', 'TXT', '-', '-'), ('b.a.cluster.test.', 'CNAME', '-', '-'), ('web.cluster.test.', 'A', 'one', 10), ('web.cluster.test.', 'A', 'two', 20)]
two False
[{'Value': '"hello world"'}]`
	if out != wantPy {
		t.Fatalf("boto3:\ngot:\n%s\nwant:\n%s", out, wantPy)
	}
	// Weighted: one answer per query, drawn by weight from both records.
	seen := map[string]int{}
	for range 20 {
		got := e.dig("web.cluster.test")
		if len(got) != 1 {
			t.Fatalf("weighted set: dig answered %v, want one record", got)
		}
		seen[got[0]]++
	}
	if len(seen) != 2 {
		t.Fatalf("weighted set: 20 queries answered only %v", seen)
	}
}
