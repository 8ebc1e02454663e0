package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/seamark/seamark/internal/testenv"
)

// browser is a headless Chromium driven over the DevTools protocol: one
// page, commands sent as JSON over the page's websocket.
type browser struct {
	t    testing.TB
	proc *proc
	ws   *websocket.Conn

	next    atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan cdpReply
	closed  chan struct{}
}

type cdpReply struct {
	ID     int64           `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://127\.0\.0\.1:\d+)/`)

// chromiumPath finds Debian's chromium, or skips the test naming the package.
func chromiumPath(t testing.TB) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Skip(t, "chromium not installed: apt-get install chromium fonts-dejavu-core (CI installs it)")
	return ""
}

// startBrowser runs headless Chromium with a width×height window and
// connects to its first page. It is killed at the end of the test.
func startBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	bin := chromiumPath(t)
	profile := t.TempDir()
	// Registered before the process, so it runs after the process group is
	// killed: no chromium process (they all carry the profile dir) is left.
	t.Cleanup(func() { noProcessMentions(t, profile, 5*time.Second) })
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir=" + profile, fmt.Sprintf("--window-size=%d,%d", width, height),
		"--hide-scrollbars", "--force-color-profile=srgb", "--lang=en-US", "--log-level=3",
		"about:blank",
	}
	p := startProc(t, "chromium", bin, args...)
	base := p.waitOutput(devtoolsRE, 30*time.Second)
	httpBase := "http://" + base[len("ws://"):]
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(httpBase + "/json/list")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		if err == nil {
			for _, tg := range targets {
				if tg.Type == "page" {
					return dialPage(t, p, tg.WS)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium shows no page target (%v): %+v", err, targets)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialPage(t testing.TB, p *proc, url string) *browser {
	t.Helper()
	cfg, err := websocket.NewConfig(url, "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("connect to chromium's page: %v", err)
	}
	ws.MaxPayloadBytes = 64 << 20
	b := &browser{t: t, proc: p, ws: ws, waiting: map[int64]chan cdpReply{}, closed: make(chan struct{})}
	go b.read()
	t.Cleanup(func() { ws.Close(); <-b.closed })
	b.call("Page.enable", nil, nil)
	b.call("Runtime.enable", nil, nil)
	return b
}

// read hands every reply to the call waiting for it; events are dropped.
func (b *browser) read() {
	defer close(b.closed)
	for {
		var msg []byte
		if err := websocket.Message.Receive(b.ws, &msg); err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var r cdpReply
		if json.Unmarshal(msg, &r) != nil || r.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[r.ID]
		delete(b.waiting, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// call sends a DevTools command and decodes its result into out (if not nil).
func (b *browser) call(method string, params any, out any) {
	b.t.Helper()
	id := b.next.Add(1)
	ch := make(chan cdpReply, 1)
	b.mu.Lock()
	b.waiting[id] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := websocket.Message.Send(b.ws, string(msg)); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.t.Fatalf("%s: chromium closed the connection:\n%s", method, b.proc.output())
		}
		if r.Error != nil {
			b.t.Fatalf("%s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				b.t.Fatalf("%s: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer from chromium in 30s", method)
	}
}

// navigate loads url and waits for the load event's document to be ready.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.waitJS(`document.readyState === "complete" && location.href === `+jsString(url), 15*time.Second)
}

// eval runs a JavaScript expression in the page and returns its value.
func (b *browser) eval(expr string) any {
	b.t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.Exception != nil {
		b.t.Fatalf("evaluate %s: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	return r.Result.Value
}

// waitJS polls a boolean expression until it is true; it returns how long
// that took.
func (b *browser) waitJS(expr string, timeout time.Duration) time.Duration {
	b.t.Helper()
	t0 := time.Now()
	for {
		if v, _ := b.eval(expr).(bool); v {
			return time.Since(t0)
		}
		if time.Since(t0) > timeout {
			b.t.Fatalf("page never satisfied %s within %v; it shows:\n%v", expr, timeout, b.eval(`document.body.innerText`))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// viewport sets the page's size; mobile makes it behave as a phone's.
func (b *browser) viewport(width, height int, mobile bool) {
	b.t.Helper()
	scale := 1.0
	if mobile {
		scale = 2
	}
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile,
	}, nil)
}

// screenshot writes the whole page (not only the viewport) as PNG to path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var m struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	b.call("Page.getLayoutMetrics", nil, &m)
	var shot struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": m.Content.Width, "height": m.Content.Height, "scale": 1},
	}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// echoServer accepts TCP connections on 127.0.0.1:0 and echoes what it reads;
// stop closes the listener and every open connection.
type echoServer struct {
	addr string
	stop func()
}

func startEcho(t testing.TB) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[io.Closer]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return &echoServer{addr: ln.Addr().String(), stop: stop}
}

// noProcessMentions fails the test when, after timeout, a process's command
// line still contains s, or it still runs in a directory under s.
func noProcessMentions(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			cwd, _ := os.Readlink("/proc/" + d.Name() + "/cwd")
			if (err == nil && bytes.Contains(cmd, []byte(s))) || strings.HasPrefix(cwd, s) {
				left = append(left, d.Name())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v still run with %s after the test", left, s)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
