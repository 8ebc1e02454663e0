package route53

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/registry"
	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// fixture is the handler on a real store and registry, unsigned.
func fixture(t *testing.T, creds ...Credential) (*httptest.Server, *store.Store) {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	cfg := api.Service{Name: "cfg", Port: 3000, Source: api.SourceConfig, Check: api.Check{Type: api.CheckNone}}
	cfg.SetDefaults()
	if _, err := st.Reconcile(ctx, store.Desired{
		store.ZoneKey("cluster.test."): &api.Zone{Name: "cluster.test.", Source: api.SourceConfig},
		store.ServiceKey("cfg"):        &cfg,
	}); err != nil {
		t.Fatal(err)
	}
	w := registry.NewWatcher(st, nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	srv := httptest.NewServer(New(Options{Store: st, Snapshots: w, InsecureUnsigned: len(creds) == 0, Credentials: creds}))
	t.Cleanup(srv.Close)
	return srv, st
}

func call(t *testing.T, srv *httptest.Server, method, path, body string, signer ...Credential) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	for _, c := range signer {
		sign(req, []byte(body), c.AccessKeyID, c.Secret, time.Now())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func batch(changes ...string) string {
	return `<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes>` + strings.Join(changes, "") + `</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`
}

func chg(action, name, typ string, ttl int, extra string, values ...string) string {
	var rr strings.Builder
	for _, v := range values {
		rr.WriteString("<ResourceRecord><Value>" + v + "</Value></ResourceRecord>")
	}
	return fmt.Sprintf(`<Change><Action>%s</Action><ResourceRecordSet><Name>%s</Name><Type>%s</Type>%s<TTL>%d</TTL><ResourceRecords>%s</ResourceRecords></ResourceRecordSet></Change>`, action, name, typ, extra, ttl, rr.String())
}

// Route 53's validation of change batches, applied in sequence on one zone:
// each step either succeeds or fails whole with Route 53's code and message.
func TestChangeValidation(t *testing.T) {
	srv, st := fixture(t)
	path := "/2013-04-01/hostedzone/" + ZoneID("cluster.test.") + "/rrset/"
	hc := `<CreateHealthCheckRequest><CallerReference>r1</CallerReference><HealthCheckConfig><IPAddress>127.0.46.31</IPAddress><Port>3000</Port><Type>TCP</Type></HealthCheckConfig></CreateHealthCheckRequest>`
	code, body := call(t, srv, "POST", "/2013-04-01/healthcheck", hc)
	if code != 201 {
		t.Fatalf("create health check: %d %s", code, body)
	}
	hcID := healthCheckID("r1")
	dbx := api.Service{Name: "dbx", Port: 3000, Source: api.SourceAPI, Check: api.Check{Type: api.CheckNone}}
	dbx.SetDefaults()
	if _, err := st.PutService(context.Background(), dbx, true); err != nil {
		t.Fatal(err)
	}
	agentNode := api.Node{ID: "agent-1", Service: "dbx", Address: netip.MustParseAddr("127.0.46.37"), Source: api.SourceAgent}
	agentNode.SetDefaults()
	rev, _, err := st.PutNode(context.Background(), agentNode, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, srv, rev)
	multi := func(id string) string {
		return "<SetIdentifier>" + id + "</SetIdentifier><MultiValueAnswer>true</MultiValueAnswer>"
	}
	tests := []struct {
		name, body string
		code       int
		want       string
	}{
		{"create", batch(chg("CREATE", "www.cluster.test", "A", 60, "", "127.0.46.30")), 200, "<Status>INSYNC</Status>"},
		{"create again", batch(chg("CREATE", "www.cluster.test", "A", 60, "", "127.0.46.30")), 400,
			"[Tried to create resource record set [name=&#39;www.cluster.test.&#39;, type=&#39;A&#39;] but it already exists]"},
		{"delete with other values", batch(chg("DELETE", "www.cluster.test", "A", 60, "", "127.0.46.39")), 400, "but the values provided do not match the current values"},
		{"delete with another TTL", batch(chg("DELETE", "www.cluster.test", "A", 61, "", "127.0.46.30")), 400, "but the values provided do not match the current values"},
		{"two failures in one batch", batch(chg("DELETE", "x.cluster.test", "A", 60, "", "127.0.46.30"), chg("CREATE", "www.cluster.test", "A", 60, "", "127.0.46.30")), 400,
			"[Tried to delete resource record set [name=&#39;x.cluster.test.&#39;, type=&#39;A&#39;] but it was not found, Tried to create"},
		{"delete then create replaces", batch(chg("DELETE", "www.cluster.test", "A", 60, "", "127.0.46.30"), chg("CREATE", "www.cluster.test", "A", 60, "", "127.0.46.33")), 200, "INSYNC"},
		{"upsert", batch(chg("UPSERT", "www.cluster.test", "A", 60, "", "127.0.46.34")), 200, "INSYNC"},
		{"bad address", batch(chg("UPSERT", "www.cluster.test", "A", 60, "", "not-an-ip")), 400, "<Code>InvalidChangeBatch</Code>"},
		{"multivalue with health check", batch(chg("CREATE", "db.cluster.test", "A", 5, multi("127.0.46.31")+"<HealthCheckId>"+hcID+"</HealthCheckId>", "127.0.46.31")), 200, "INSYNC"},
		{"plain set beside multivalue", batch(chg("CREATE", "db.cluster.test", "A", 5, "", "127.0.46.32")), 400, "cannot be created as a weighted or multivalue set exists"},
		{"multivalue beside plain", batch(chg("CREATE", "www.cluster.test", "A", 5, multi("a"), "127.0.46.32")), 400, "cannot be created as a non-weighted set exists"},
		{"weighted beside multivalue", batch(chg("CREATE", "db.cluster.test", "A", 5, "<SetIdentifier>w</SetIdentifier><Weight>1</Weight>", "127.0.46.32")), 400, "another routing policy"},
		{"set identifiers that collide as node IDs", batch(chg("CREATE", "db.cluster.test", "A", 5, multi("127_0_46_31"), "127.0.46.32")), 400, "choose another SetIdentifier"},
		{"unknown health check", batch(chg("CREATE", "db.cluster.test", "A", 5, multi("b")+"<HealthCheckId>nope</HealthCheckId>", "127.0.46.32")), 404, "<Code>NoSuchHealthCheck</Code>"},
		{"two values in a multivalue record", batch(chg("CREATE", "db.cluster.test", "A", 5, multi("c"), "127.0.46.32", "127.0.46.33")), 400, "exactly one value"},
		{"routed set two labels down", batch(chg("CREATE", "a.db.cluster.test", "A", 5, multi("c"), "127.0.46.32")), 400, "one label under the zone"},
		{"alias", batch(`<Change><Action>CREATE</Action><ResourceRecordSet><Name>al.cluster.test</Name><Type>A</Type><AliasTarget><HostedZoneId>Z</HostedZoneId><DNSName>x.</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet></Change>`), 400, "AliasTarget is not supported"},
		{"weight without identifier", batch(chg("CREATE", "w.cluster.test", "A", 5, "<Weight>3</Weight>", "127.0.46.32")), 400, "Missing field &#39;SetIdentifier&#39;"},
		{"node ID an agent has", batch(chg("CREATE", "dbx.cluster.test", "A", 5, multi("agent-1"), "127.0.46.36")), 400, "which another node (source agent) already has"},
		{"agent's service, other answers", batch(chg("CREATE", "dbx.cluster.test", "A", 60, multi("r1"), "127.0.46.36")), 400, "also has nodes registered outside Route 53"},
		{"agent's service, same answers", batch(chg("CREATE", "dbx.cluster.test", "A", 5, multi("r1"), "127.0.46.36")), 200, "INSYNC"},
		{"wildcard", batch(chg("CREATE", "*.w.cluster.test", "TXT", 60, "", `"hi"`)), 200, "INSYNC"},
		{"config service", batch(chg("CREATE", "cfg.cluster.test", "A", 60, multi("x"), "127.0.46.35")), 400, "declared in the config file"},
		{"bad action", batch(chg("REPLACE", "www.cluster.test", "A", 60, "", "127.0.46.30")), 400, "<Code>InvalidInput</Code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, "POST", path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s\nwant %d and %q", code, body, tc.code, tc.want)
			}
		})
	}
	// The multivalue record is node 127-0-46-31 of service db, probed at
	// the health check's port.
	code, body = call(t, srv, "GET", "/2013-04-01/hostedzone/"+ZoneID("cluster.test.")+"/rrset", "")
	if code != 200 || !strings.Contains(body, "<SetIdentifier>127.0.46.31</SetIdentifier><MultiValueAnswer>true</MultiValueAnswer><TTL>5</TTL>") {
		t.Fatalf("list: %d %s", code, body)
	}
	// Health checks: idempotent create, conflicting create, in use.
	if code, body = call(t, srv, "POST", "/2013-04-01/healthcheck", hc); code != 201 || !strings.Contains(body, hcID) {
		t.Fatalf("create again with the same reference: %d %s", code, body)
	}
	if code, body = call(t, srv, "POST", "/2013-04-01/healthcheck", strings.Replace(hc, "3000", "3001", 1)); code != 409 || !strings.Contains(body, "HealthCheckAlreadyExists") {
		t.Fatalf("same reference, other config: %d %s", code, body)
	}
	if code, body = call(t, srv, "DELETE", "/2013-04-01/healthcheck/"+hcID, ""); code != 400 || !strings.Contains(body, "HealthCheckInUse") {
		t.Fatalf("delete a used health check: %d %s", code, body)
	}
	del := batch(chg("DELETE", "db.cluster.test", "A", 5, multi("127.0.46.31")+"<HealthCheckId>"+hcID+"</HealthCheckId>", "127.0.46.31"))
	if code, body = call(t, srv, "POST", path, del); code != 200 {
		t.Fatalf("delete the multivalue record: %d %s", code, body)
	}
	if code, body = call(t, srv, "DELETE", "/2013-04-01/healthcheck/"+hcID, ""); code != 200 {
		t.Fatalf("delete the health check: %d %s", code, body)
	}
	if code, body = call(t, srv, "GET", "/2013-04-01/healthcheck/"+hcID, ""); code != 404 || !strings.Contains(body, "NoSuchHealthCheck") {
		t.Fatalf("get a deleted health check: %d %s", code, body)
	}
	if _, body = call(t, srv, "GET", "/2013-04-01/hostedzone/"+ZoneID("cluster.test.")+"/rrset", ""); !strings.Contains(body, `<Name>\052.w.cluster.test.</Name>`) {
		t.Fatalf("list: the wildcard is not written as Route 53 writes it: %s", body)
	}
	if code, body = call(t, srv, "GET", "/2013-04-01/trafficpolicies", ""); code != 400 || !strings.Contains(body, "docs/route53.md") {
		t.Fatalf("unsupported operation: %d %s", code, body)
	}
}

// A register credential changes only weighted and multivalue sets of its
// services (and health checks); a read credential changes nothing.
func TestRegisterScope(t *testing.T) {
	reg := Credential{AccessKeyID: "agents", Secret: "agent-secret", Access: AccessRegister, Services: []string{"db"}}
	ro := Credential{AccessKeyID: "viewer", Secret: "viewer-secret", Access: AccessRead}
	srv, _ := fixture(t, reg, ro)
	path := "/2013-04-01/hostedzone/" + ZoneID("cluster.test.") + "/rrset/"
	multi := "<SetIdentifier>n1</SetIdentifier><MultiValueAnswer>true</MultiValueAnswer>"
	tests := []struct {
		name   string
		cred   Credential
		method string
		path   string
		body   string
		code   int
		want   string
	}{
		{"register: its service", reg, "POST", path, batch(chg("CREATE", "db.cluster.test", "A", 5, multi, "127.0.46.41")), 200, "INSYNC"},
		{"register: another service", reg, "POST", path, batch(chg("CREATE", "web.cluster.test", "A", 5, multi, "127.0.46.42")), 403, "access register for services db, not web"},
		{"register: a plain set", reg, "POST", path, batch(chg("CREATE", "www.cluster.test", "A", 5, "", "127.0.46.42")), 403, "not authorized to change plain record sets"},
		{"register: a health check", reg, "POST", "/2013-04-01/healthcheck", `<CreateHealthCheckRequest><CallerReference>a</CallerReference><HealthCheckConfig><IPAddress>127.0.46.41</IPAddress><Type>TCP</Type></HealthCheckConfig></CreateHealthCheckRequest>`, 201, "<Port>80</Port>"},
		{"register: reads", reg, "GET", "/2013-04-01/hostedzone", "", 200, "<Name>cluster.test.</Name>"},
		{"read: reads", ro, "GET", path, "", 200, "<SetIdentifier>n1</SetIdentifier>"},
		{"read: no change", ro, "POST", path, batch(chg("DELETE", "db.cluster.test", "A", 5, multi, "127.0.46.41")), 403, "<Code>AccessDenied</Code>"},
		{"read: no health check", ro, "DELETE", "/2013-04-01/healthcheck/" + healthCheckID("a"), "", 403, "<Code>AccessDenied</Code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, tc.method, tc.path, tc.body, tc.cred)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s\nwant %d and %q", code, body, tc.code, tc.want)
			}
		})
	}
}

// Nodes of an autoscaling group start together: concurrent batches adding
// records to one multivalue set all land.
func TestConcurrentStarts(t *testing.T) {
	srv, _ := fixture(t)
	path := "/2013-04-01/hostedzone/" + ZoneID("cluster.test.") + "/rrset/"
	const n = 10
	errs := make(chan string, n)
	for i := range n {
		go func() {
			ip := fmt.Sprintf("127.0.46.%d", 100+i)
			body := batch(chg("UPSERT", "db.cluster.test", "A", 5, "<SetIdentifier>"+ip+"</SetIdentifier><MultiValueAnswer>true</MultiValueAnswer>", ip))
			req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("%s: %d %s", ip, resp.StatusCode, b)
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	_, body := call(t, srv, "GET", "/2013-04-01/hostedzone/"+ZoneID("cluster.test.")+"/rrset", "")
	if got := strings.Count(body, "<SetIdentifier>"); got != n {
		t.Fatalf("after %d concurrent UPSERTs: %d records listed\n%s", n, got, body)
	}
}

// waitFor waits until the handler's snapshot shows store revision rev
// (GetChange turns INSYNC).
func waitFor(t *testing.T, srv *httptest.Server, rev int64) {
	t.Helper()
	path := "/2013-04-01/change/" + changeID(rev, time.Now())
	for range 250 {
		if _, body := call(t, srv, "GET", path, ""); strings.Contains(body, "INSYNC") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("revision %d not visible after 5s", rev)
}
