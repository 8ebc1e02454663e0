package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		kind    string
		arg     string
		wantErr string
	}{
		{spec: "10.0.1.5", kind: SourceLiteral, arg: "10.0.1.5"},
		{spec: "2001:db8::5", kind: SourceLiteral, arg: "2001:db8::5"},
		{spec: "iface:eth0", kind: SourceIface, arg: "eth0"},
		{spec: "iface:eth0:1", kind: SourceIface, arg: "eth0:1"},
		{spec: "url:http://169.254.169.254/latest/meta-data/local-ipv4", kind: SourceURL, arg: "http://169.254.169.254/latest/meta-data/local-ipv4"},
		{spec: "route:10.0.0.1", kind: SourceRoute, arg: "10.0.0.1"},
		{spec: "route:2001:db8::1", kind: SourceRoute, arg: "2001:db8::1"},
		{spec: "route:[2001:db8::1]:443", kind: SourceRoute, arg: "[2001:db8::1]:443"},
		{spec: "route:db.example.com", kind: SourceRoute, arg: "db.example.com"},
		{spec: "cmd:hostname -I | cut -d' ' -f1", kind: SourceCmd, arg: "hostname -I | cut -d' ' -f1"},
		{spec: " CMD: echo 10.0.0.1 ", kind: SourceCmd, arg: "echo 10.0.0.1"},
		{spec: "", wantErr: "is empty"},
		{spec: "0.0.0.0", wantErr: "cannot be dialled"},
		{spec: "ff02::1", wantErr: "cannot be dialled"},
		{spec: "eth0", wantErr: "neither an IP address nor a source"},
		{spec: "dns:db.example.com", wantErr: `"dns" is not a kind of address source`},
		{spec: "iface:", wantErr: "missing what to read"},
		{spec: "url:ftp://x/y", wantErr: "is not an http(s) URL"},
		{spec: "url:169.254.169.254/latest", wantErr: "is not an http(s) URL"},
		{spec: "route:a b", wantErr: "is not a host"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := ParseSource(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", s, err, tc.wantErr)
				}
				return
			}
			if err != nil || s.Kind != tc.kind || s.Arg != tc.arg {
				t.Fatalf("got %+v, %v; want kind %s arg %q", s, err, tc.kind, tc.arg)
			}
			if again, err := ParseSource(s.String()); err != nil || again.Kind != s.Kind || again.Arg != s.Arg {
				t.Fatalf("String() %q does not read back: %+v %v", s.String(), again, err)
			}
		})
	}
}

func TestParseAddrText(t *testing.T) {
	for _, tc := range []struct {
		text, want, wantErr string
	}{
		{text: "10.0.1.5", want: "10.0.1.5"},
		{text: "203.0.113.9\n", want: "203.0.113.9"},
		{text: "  10.0.1.5 172.17.0.1 \n", want: "10.0.1.5"},
		{text: "::ffff:10.0.1.5", want: "10.0.1.5"},
		{text: "2001:db8::7", want: "2001:db8::7"},
		{text: "", wantErr: "answered nothing"},
		{text: "<html>nope</html>", wantErr: "not an IP address"},
		{text: "0.0.0.0", wantErr: "cannot be dialled"},
	} {
		a, err := ParseAddrText([]byte(tc.text))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAddrText(%q) = %v, %v; want an error with %q", tc.text, a, err, tc.wantErr)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("ParseAddrText(%q) = %v, %v; want %s", tc.text, a, err, tc.want)
		}
	}
}

func testFinder(tokenURL string) *finder {
	return &finder{hc: &http.Client{Timeout: 2 * time.Second}, tokenURL: tokenURL, cmdTimeout: 2 * time.Second}
}

func mustSource(t *testing.T, spec string) Source {
	t.Helper()
	s, err := ParseSource(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Each source on this machine: iface:lo, route:127.0.0.1, cmd:, a literal.
func TestFindLocalSources(t *testing.T) {
	for _, tc := range []struct {
		spec, want, wantErr string
	}{
		{spec: "iface:lo", want: "127.0.0.1"},
		{spec: "route:127.0.0.1", want: "127.0.0.1"},
		{spec: "route:127.0.0.9:80", want: "127.0.0.1"},
		{spec: "route:[::1]:53", want: "::1"},
		{spec: "cmd:echo 127.0.0.7", want: "127.0.0.7"},
		{spec: "cmd:printf '127.0.0.8 10.9.9.9\\n'", want: "127.0.0.8"},
		{spec: "192.0.2.1", want: "192.0.2.1"},
		{spec: "iface:nosuch0", wantErr: `no network interface "nosuch0"`},
		{spec: "cmd:echo broken >&2; exit 3", wantErr: "exit status 3: broken"},
		{spec: "cmd:echo not-an-address", wantErr: `answered "not-an-address", which is not an IP address`},
		{spec: "cmd:sleep 10", wantErr: "did not finish within"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			f := testFinder("")
			f.cmdTimeout = 300 * time.Millisecond
			a, err := f.find(context.Background(), mustSource(t, tc.spec))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error with %q", a, err, tc.wantErr)
				}
				return
			}
			if err != nil || a != netip.MustParseAddr(tc.want) {
				t.Fatalf("got %v, %v; want %s", a, err, tc.want)
			}
		})
	}
}

// metadataServer stands in for a cloud metadata service with IMDSv2: a PUT on
// the token path with a TTL header gets a token; GETs need that token when
// requireToken is set.
type metadataServer struct {
	*httptest.Server
	requireToken bool
	tokens, gets atomic.Int32
}

const testToken = "AQAEAFakeToken=="

func newMetadataServer(t *testing.T, requireToken bool) *metadataServer {
	m := &metadataServer{requireToken: requireToken}
	mux := http.NewServeMux()
	mux.HandleFunc("/latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "token: use PUT", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "missing ttl header", http.StatusBadRequest)
			return
		}
		m.tokens.Add(1)
		w.Write([]byte(testToken))
	})
	addr := func(text string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			m.gets.Add(1)
			if m.requireToken && r.Header.Get("X-aws-ec2-metadata-token") != testToken {
				http.Error(w, "", http.StatusUnauthorized)
				return
			}
			w.Write([]byte(text))
		}
	}
	mux.Handle("/latest/meta-data/local-ipv4", addr("10.0.1.5"))
	mux.Handle("/latest/meta-data/public-ipv4", addr("203.0.113.9"))
	m.Server = httptest.NewServer(mux)
	t.Cleanup(m.Close)
	return m
}

// The metadata case, including the IMDSv2 token exchange: one token per
// round of discovery, sent with every GET.
func TestFindFromMetadata(t *testing.T) {
	m := newMetadataServer(t, true)
	ctx := context.Background()

	f := testFinder(m.URL + "/latest/api/token")
	local, err := f.find(ctx, mustSource(t, "url:"+m.URL+"/latest/meta-data/local-ipv4"))
	if err != nil || local != netip.MustParseAddr("10.0.1.5") {
		t.Fatalf("local-ipv4 with a token: got %v, %v; want 10.0.1.5", local, err)
	}
	public, err := f.find(ctx, mustSource(t, "url:"+m.URL+"/latest/meta-data/public-ipv4"))
	if err != nil || public != netip.MustParseAddr("203.0.113.9") {
		t.Fatalf("public-ipv4 with a token: got %v, %v; want 203.0.113.9", public, err)
	}
	if got := m.tokens.Load(); got != 1 {
		t.Errorf("fetched %d tokens for two addresses in one round, want 1", got)
	}

	// Without --imds-token-url, a service that requires a token answers 401.
	_, err = testFinder("").find(ctx, mustSource(t, "url:"+m.URL+"/latest/meta-data/local-ipv4"))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a token: got %v, want a 401 error", err)
	}
	// A token URL that does not answer is named in the error.
	_, err = testFinder(m.URL+"/nope").find(ctx, mustSource(t, "url:"+m.URL+"/latest/meta-data/local-ipv4"))
	if err == nil || !strings.Contains(err.Error(), "IMDSv2 token from") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("bad token URL: got %v", err)
	}
	// IMDSv1 style: no token needed, none asked for.
	v1 := newMetadataServer(t, false)
	a, err := testFinder("").find(ctx, mustSource(t, "url:"+v1.URL+"/latest/meta-data/local-ipv4"))
	if err != nil || a != netip.MustParseAddr("10.0.1.5") || v1.tokens.Load() != 0 {
		t.Fatalf("IMDSv1: got %v, %v (%d tokens); want 10.0.1.5 without a token", a, err, v1.tokens.Load())
	}
}

// The first source that yields wins; when none does, each one's reason is given.
func TestFirstSourceWins(t *testing.T) {
	m := newMetadataServer(t, true)
	ctx := context.Background()
	f := testFinder(m.URL + "/latest/api/token")
	sources := []Source{
		mustSource(t, "iface:nosuch0"),
		mustSource(t, "url:"+m.URL+"/latest/meta-data/missing"),
		mustSource(t, "url:"+m.URL+"/latest/meta-data/public-ipv4"),
		mustSource(t, "cmd:echo 127.0.0.7"),
	}
	a, from, err := f.first(ctx, sources)
	if err != nil || a != netip.MustParseAddr("203.0.113.9") || from.Kind != SourceURL {
		t.Fatalf("got %v from %v, %v; want 203.0.113.9 from the public-ipv4 URL", a, from, err)
	}
	_, _, err = f.first(ctx, sources[:2])
	if err == nil || !strings.Contains(err.Error(), "nosuch0") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("none yields: got %v, want both reasons", err)
	}
}

// With no source given, the address is the route to the first server.
func TestDefaultSourceIsRouteToServer(t *testing.T) {
	for _, tc := range []struct{ server, want string }{
		{"http://127.0.0.1:9400", "route:127.0.0.1"},
		{"10.0.0.1:9400", "route:10.0.0.1"},
		{"http://[::1]:9400", "route:[::1]"},
		{"https://seamark.example.com", "route:seamark.example.com"},
	} {
		c := Config{Servers: []string{tc.server}}
		if got := c.Sources(); len(got) != 1 || got[0].String() != tc.want {
			t.Errorf("servers %s: got sources %v, want %s", tc.server, got, tc.want)
		}
	}
}

// A cmd: source that runs too long is killed with everything it started.
func TestCmdTimeoutKillsItsChildren(t *testing.T) {
	pidFile := t.TempDir() + "/pid"
	f := testFinder("")
	f.cmdTimeout = 200 * time.Millisecond
	_, err := f.find(context.Background(), mustSource(t, "cmd:sleep 30 & echo $! > "+pidFile+"; wait"))
	if err == nil || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("got %v, want a timeout", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %s still runs: %s", pid, stat)
		}
	}
}
