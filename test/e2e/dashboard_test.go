package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// The dashboard in a real browser (headless Chromium) against the real
// binary: a node whose port closes shows as down within 2 s; while a client
// loop makes connections the listener, its backend and the total show
// conn/s above zero; a backend whose port refuses shows refused connect
// errors; a port range opens port by port; the servers list names this
// server; a group whose other member does not run warns that it has no
// live standby. The page fits a phone's width, and screenshots of both are
// saved in the test's temp dir.
// With SEAMARK_SCREENSHOT_DIR set they are copied there too (that is how
// docs/dashboard.png is made: see docs/dashboard.md).
func TestDashboardShowsNodeDown(t *testing.T) {
	if testing.Short() {
		t.Skip("process and browser test")
	}
	chromiumPath(t)
	dir := t.TempDir()
	lbPort, legacyPort, closedPort, capPort := freePort(t), freePort(t), freePort(t), freePort(t)
	// A port range on an address of this test's own (127.0.51.0/24), so no
	// other test's sockets take one of its ports.
	const rangeAddr, rangeFirst = "127.0.51.1", 19100
	cfg := filepath.Join(dir, "seamark.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
zones: [cluster.test]
services:
  - name: db
    port: 5432
    check: {type: none}
    nodes: [{id: db-a, address: 127.0.0.11}, {id: db-b, address: 127.0.0.12}]
  - name: app
    port: 8080
    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
  - name: legacy
    port: %d
    check: {type: none}
    nodes: [{id: old-1, address: 127.0.0.1}]
listeners:
  - {name: client-one, port: %d, bind: 127.0.0.1, service: app, max_conns: 20}
  - {name: legacy-one, port: %d, bind: 127.0.0.1, service: legacy, retries: 0}
  - {name: range, ports: "%d-%d", bind: %s, service: app}
  - {name: capped, port: %d, bind: 127.0.0.1, service: app, max_conns: 1}
groups:
  - name: lb
    members: [{name: lb1, address: 127.0.0.21, priority: 151}, {name: lb2, address: 127.0.0.22, priority: 150}]
`, closedPort, lbPort, legacyPort, rangeFirst, rangeFirst+3, rangeAddr, capPort))
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--name", "checker-1", "--member", "lb1")
	ctx := ctxTimeout(t, 90*time.Second)

	backends := []*echoServer{startEcho(t), startEcho(t)}
	for i, b := range backends {
		ap := netip.MustParseAddrPort(b.addr)
		n := api.Node{ID: fmt.Sprintf("app-%d", i+1), Service: "app", Address: ap.Addr(), Port: int(ap.Port())}
		if _, err := s.client.Register(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	waitNodes(t, s, "app", 2)
	if _, err := s.client.ChangeRecords(ctx, "cluster.test", api.ChangeBatch{Changes: []api.Change{
		{Action: api.ActionCreate, Record: api.Record{Name: "www", Type: "A", Values: []string{"192.0.2.10", "192.0.2.11"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	// A connection through the balancer, left open: the page shows it live.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lbPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	for i := range 20 {
		fmt.Fprintf(conn, "hello seamark %d\n", i)
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatalf("echo through the listener: %v", err)
		}
	}

	b := startBrowser(t, 1440, 1000)
	b.viewport(1440, 1000, false)
	b.navigate(s.url + "/ui/")
	node := func(id, health string) string {
		return fmt.Sprintf(`(document.querySelector('[data-node="app/%s"]') || {dataset: {}}).dataset.health === %q`, id, health)
	}
	b.waitJS(node("app-1", "healthy")+" && "+node("app-2", "healthy"), 15*time.Second)
	b.waitJS(`document.getElementById("live").dataset.state === "live"`, 5*time.Second)
	// The open connection and its bytes (the balancer samples byte counts
	// every few seconds) show in the listener's row.
	row := `document.querySelector('[data-listener="client-one"]')`
	b.waitJS(row+` !== null && `+row+`.querySelector("[data-active]").dataset.active === "1" && !`+row+`.querySelector("td.totals .muted").textContent.startsWith("0 B")`, 15*time.Second)

	// The node goes down: its port closes. The checker needs about
	// interval×fall+timeout (0.5 s) to decide; the page follows at once.
	t0 := time.Now()
	backends[1].stop()
	b.waitJS(node("app-2", "down"), 2*time.Second)
	shown := time.Since(t0)
	t.Logf("the page shows app-2 down %v after its port closed (check: 200ms x fall 2 + 100ms timeout)", shown.Round(time.Millisecond))
	if !b.eval(node("app-1", "healthy")).(bool) {
		t.Fatal("app-1 does not show healthy after app-2 went down")
	}
	// The event timeline gets the transition; the group its active member.
	b.waitJS(`[...document.querySelectorAll('#events li')].some(li => li.textContent.includes("app/app-2") && li.textContent.includes("unhealthy"))`, 5*time.Second)
	b.waitJS(`document.querySelector('[data-member="lb/lb1"].active-row') !== null`, 15*time.Second)
	b.waitJS(`document.querySelector('[data-zone="cluster.test."]') !== null && document.body.innerText.includes("192.0.2.11")`, 5*time.Second)

	// Rates: a bounded client loop makes short connections through the
	// listener and one port of the range; the page measures conn/s between
	// two reads of /v1/lb.
	stop := make(chan struct{})
	loopDone := make(chan int)
	go func() {
		n := 0
		defer func() { loopDone <- n }()
		for i := 0; i < 3000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			addr := fmt.Sprintf("127.0.0.1:%d", lbPort)
			if i%3 == 0 {
				addr = fmt.Sprintf("%s:%d", rangeAddr, rangeFirst+1)
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "ping %d\n", i)
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				n++
			}
			c.Close()
		}
	}()
	stopLoop := func() {
		select {
		case <-stop:
			return
		default:
		}
		close(stop)
		t.Logf("client loop: %d connections echoed", <-loopDone)
	}
	defer stopLoop()
	const positive = `(el) => el !== null && Number(el.dataset.cps) > 0`
	b.waitJS(`(`+positive+`)(document.querySelector('[data-listener="client-one"]')) && (`+positive+`)(document.getElementById("total-rates")) && (`+positive+`)(document.querySelector('[data-backend="app/app-1"]'))`, 15*time.Second)
	t.Logf("rates shown: client-one %s conn/s, total %s conn/s",
		b.eval(`document.querySelector('[data-listener="client-one"]').dataset.cps`), b.eval(`document.getElementById("total-rates").dataset.cps`))
	if got := b.eval(`document.querySelector('[data-listener="client-one"] [data-active]').textContent`).(string); !strings.Contains(got, "/ 20") {
		t.Errorf("client-one's active cell says %q, want its max_conns 20 beside it", got)
	}
	if got := b.eval(`document.querySelector('[data-listener="client-one"] .peak').textContent`).(string); !strings.Contains(got, "/s") {
		t.Errorf("client-one's peak cell says %q, want the peak active and conn/s", got)
	}

	// Error breakdown: legacy's only node refuses connections.
	for range 3 {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", legacyPort), time.Second); err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Read(make([]byte, 1))
			c.Close()
		}
	}
	b.waitJS(`(() => { const l = document.querySelector('[data-listener="legacy-one"] td.errs'), be = document.querySelector('[data-backend="legacy/old-1"] td.errs');
		return l && be && Number(l.dataset.refused) > 0 && Number(be.dataset.refused) > 0 && l.dataset.timeouts === "0" && l.textContent.includes("refused"); })()`, 10*time.Second)

	// The range is one row; a click opens its four ports, one with traffic.
	rng := `document.querySelector('[data-listener="range"]')`
	b.waitJS(rng+` !== null && `+rng+`.dataset.ports === "4" && document.querySelectorAll("tr.port-row").length === 0`, 5*time.Second)
	b.eval(`document.querySelector('[data-expand="range"]').click(), true`)
	b.waitJS(fmt.Sprintf(`document.querySelectorAll('tr.port-row[data-port^="range "]').length === 4 && Number(document.querySelector('tr.port-row[data-port="range %s:%d"]').dataset.cps) > 0`, rangeAddr, rangeFirst+1), 10*time.Second)

	// max_conns: capped carries one connection; two more wait in the
	// kernel's accept queue, and the row says so.
	for range 3 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", capPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	b.waitJS(`(() => { const r = document.querySelector('[data-listener="capped"]'), a = r && r.querySelector("[data-active]");
		return r && r.classList.contains("cap") && a.dataset.active === "1" && a.dataset.queued === "2" && r.textContent.includes("at max_conns") && r.textContent.includes("2 queued"); })()`, 10*time.Second)

	// Servers: this one, its checker, marked as the one the page reads.
	b.waitJS(`(() => { const r = document.querySelector('[data-server="checker-1"]'); return r !== null && r.classList.contains("this-server") && r.dataset.degraded === "false" && r.textContent.includes("this page"); })()`, 10*time.Second)
	// lb2 never campaigns: lb1 is active with no live standby.
	b.waitJS(`document.querySelector('[data-group="lb"] [data-nostandby="lb"]') !== null`, 10*time.Second)
	b.eval(`window.scrollTo(0, 0), true`)
	time.Sleep(300 * time.Millisecond) // let the last counters poll land before the picture
	shots := []string{filepath.Join(dir, "dashboard.png")}
	b.screenshot(shots[0])
	stopLoop()

	// A phone: one column, nothing wider than the screen (tables scroll
	// inside their cards).
	b.viewport(390, 844, true)
	b.waitJS(`getComputedStyle(document.querySelector(".cols")).gridTemplateColumns.split(" ").length === 1`, 5*time.Second)
	if fits := b.eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`).(bool); !fits {
		t.Errorf("on a 390px wide phone the page is %v px wide", b.eval(`document.documentElement.scrollWidth`))
	}
	shots = append(shots, filepath.Join(dir, "dashboard-phone.png"))
	b.screenshot(shots[1])
	for _, p := range shots {
		st, err := os.Stat(p)
		if err != nil || st.Size() < 10_000 {
			t.Fatalf("screenshot %s: %v (size %d), want a real picture", p, err, sizeOf(st))
		}
		t.Logf("screenshot: %s (%d bytes)", p, st.Size())
		if out := os.Getenv("SEAMARK_SCREENSHOT_DIR"); out != "" {
			data, _ := os.ReadFile(p)
			if err := os.WriteFile(filepath.Join(out, filepath.Base(p)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// With tokens configured and anonymous reads off, the page asks for a token,
// keeps it, and then shows the data.
func TestDashboardAsksForToken(t *testing.T) {
	if testing.Short() {
		t.Skip("process and browser test")
	}
	chromiumPath(t)
	dir := t.TempDir()
	secret := "dashboard-read-token"
	writeFile(t, filepath.Join(dir, "ro.token"), secret+"\n")
	cfg := filepath.Join(dir, "seamark.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
zones: [cluster.test]
api:
  anonymous_read: false
  tokens: [{name: ro, secret_file: %s, access: read}]
services:
  - {name: db, port: 5432, check: {type: none}, nodes: [{id: db-a, address: 127.0.0.11}]}
`, filepath.Join(dir, "ro.token")))
	s := startServer(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	b := startBrowser(t, 1280, 900)
	b.navigate(s.url + "/ui/")
	b.waitJS(`!document.getElementById("auth").hidden && document.getElementById("live").dataset.state === "token"`, 10*time.Second)
	if got := b.eval(`document.getElementById("auth-msg").textContent`).(string); !strings.Contains(got, "needs a token") {
		t.Fatalf("the token prompt says %q, want it to say the server needs a token", got)
	}
	b.eval(`document.getElementById("auth-token").value = "wrong"; document.getElementById("auth-form").requestSubmit(); true`)
	b.waitJS(`!document.getElementById("auth").hidden && document.getElementById("auth-msg").textContent.includes("not known")`, 10*time.Second)
	b.eval(`document.getElementById("auth-token").value = ` + jsString(secret) + `; document.getElementById("auth-form").requestSubmit(); true`)
	b.waitJS(`document.getElementById("auth").hidden && document.querySelector('[data-node="db/db-a"]') !== null`, 10*time.Second)
	// The token is kept: a reload reads at once.
	b.navigate(s.url + "/ui/?again")
	b.waitJS(`document.querySelector('[data-node="db/db-a"]') !== null && document.getElementById("auth").hidden`, 10*time.Second)
	if got := b.eval(`localStorage.getItem("seamark.token")`); got != secret {
		t.Fatalf("localStorage holds %v, want the token", got)
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

// waitNodes waits until service has want healthy nodes.
func waitNodes(t testing.TB, s *server, service string, want int) {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	var idx int64
	for ctx.Err() == nil {
		nodes, next, err := s.client.Nodes(ctx, service, &api.QueryOptions{HealthyOnly: true, Index: idx, Wait: time.Second})
		if err == nil && len(nodes) == want {
			return
		}
		idx = next
	}
	t.Fatalf("%s never had %d healthy nodes", service, want)
}
