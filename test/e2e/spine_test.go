package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

func nodeIDs(t *testing.T, s *server, service string) []string {
	t.Helper()
	nodes, _, err := s.client.Nodes(ctxTimeout(t, 5*time.Second), service, nil)
	if err != nil {
		t.Fatalf("list nodes of %s: %v", service, err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

// The server answers /v1/status within 2s of start, and what was registered
// survives kill -9 and a restart, except a registration whose lease expired
// meanwhile.
func TestServerSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	start := time.Now()
	s := startServer(t, "server-1", "--data-dir", dir)
	ctx := ctxTimeout(t, 30*time.Second)
	st, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("status answered %v after start (store %s, etcd %s)", took.Round(time.Millisecond), st.Store.Kind, st.Store.EtcdVersion)
	if took > 2*time.Second {
		t.Errorf("status answered %v after start, want within 2s", took)
	}
	if st.Store.Kind != "embedded" {
		t.Errorf("got store kind %q, want embedded", st.Store.Kind)
	}
	if _, err := s.client.CreateService(ctx, api.Service{Name: "db", Port: 3000, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []api.Node{
		{ID: "kept", Service: "db", Address: netip.MustParseAddr("127.0.0.11")},
		{ID: "long-lease", Service: "db", Address: netip.MustParseAddr("127.0.0.12"), TTL: api.Duration(time.Minute)},
		{ID: "short-lease", Service: "db", Address: netip.MustParseAddr("127.0.0.13"), TTL: api.Duration(time.Second)},
	} {
		if _, err := s.client.Register(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	s.kill()
	// Long enough for the 1s lease to run out; the 1m one does not.
	time.Sleep(2 * time.Second)
	s2 := startServer(t, "server-1-again", "--data-dir", dir)
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = nodeIDs(t, s2, "db"); slices.Equal(got, []string{"kept", "long-lease"}) {
			return
		}
	}
	t.Fatalf("after kill -9 and restart: got nodes %v, want [kept long-lease]", got)
}

// Two servers on one external etcd see each other's writes at once.
func TestTwoServersShareExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	ep := startEtcd(t)
	a := startServer(t, "server-a", "--etcd-endpoints", ep)
	b := startServer(t, "server-b", "--etcd-endpoints", ep)
	ctx := ctxTimeout(t, 60*time.Second)
	st, err := b.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Store.Kind != "external" || !strings.HasPrefix(st.Store.EtcdVersion, "3.") {
		t.Fatalf("got store %+v, want an external etcd 3.x", st.Store)
	}
	if _, err := a.client.CreateService(ctx, api.Service{Name: "db", Port: 3000, Check: api.Check{Type: api.CheckNone}}); err != nil {
		t.Fatal(err)
	}
	// Reads are consistent per server (read-your-writes); across servers
	// the other one follows within milliseconds.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := b.client.Service(ctx, "db"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("server b never saw the service: %v", err)
		}
	}
	var lags []time.Duration
	for i := range 20 {
		writer, reader := a, b
		if i%2 == 1 {
			writer, reader = b, a
		}
		_, idx, err := reader.client.Nodes(ctx, "db", nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(chan time.Time, 1)
		go func() {
			for {
				nodes, next, err := reader.client.Nodes(ctx, "db", &api.QueryOptions{Index: idx, Wait: 5 * time.Second})
				if err != nil {
					return
				}
				if len(nodes) == i+1 {
					seen <- time.Now()
					return
				}
				idx = next
			}
		}()
		time.Sleep(20 * time.Millisecond) // let the blocking read arrive first
		id := "n" + string(rune('a'+i))
		res, err := writer.client.Register(ctx, api.Node{ID: id, Service: "db", Address: netip.MustParseAddr("127.0.0.1")})
		if err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		_ = res
		select {
		case at := <-seen:
			lags = append(lags, max(at.Sub(written), 0))
		case <-time.After(5 * time.Second):
			t.Fatalf("write %d on one server not seen by the other within 5s", i)
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	median, worst := lags[len(lags)/2], lags[len(lags)-1]
	t.Logf("write on one server -> visible on the other: median %v, worst %v over %d writes", median, worst, len(lags))
	if median > 100*time.Millisecond || worst > time.Second {
		t.Fatalf("cross-server visibility: median %v (want <= 100ms), worst %v (want <= 1s)", median, worst)
	}
}

// `seamark validate` prints every problem of a bad file with its line, and
// the server refuses to start on it.
func TestValidateAndRejectBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("zones: [cluster.test]\nservices:\n  - name: db\n    port: 70000\n    check: {interval: 1x}\n"), 0o600)
	v := startProc(t, "validate", seamarkBin, "validate", bad)
	<-v.done
	out := v.output()
	if v.cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("validate of a bad file exited %d, want 1:\n%s", v.cmd.ProcessState.ExitCode(), out)
	}
	for _, want := range []string{"bad.yaml:4: services[0].port: 70000 is not a port", "bad.yaml:5: services[0].check.interval: \"1x\" is not a duration"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	srv := startProc(t, "server-bad-config", seamarkBin, "server", "--config", bad, "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0")
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("server started on a bad config")
	}
	if code := srv.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(srv.output(), "config rejected") {
		t.Fatalf("server on a bad config exited %d:\n%s", code, srv.output())
	}
}
