package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seamark/seamark/internal/ui"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHandlerServesFiles(t *testing.T) {
	h := ui.Handler()
	tests := []struct {
		path, ctype, contains string
		code                  int
	}{
		{"/ui/", "text/html", `<script src="app.js"`, 200},
		{"/ui/app.js", "javascript", "blocking", 200},
		{"/ui/app.js", "javascript", "config reload refused", 200}, // status.config shown when a reload failed
		{"/ui/app.js", "javascript", "store unavailable", 200},     // status.store.available false shown
		{"/ui/style.css", "text/css", "prefers-color-scheme", 200},
		{"/ui/favicon.svg", "image/svg+xml", "<svg", 200},
		{"/ui/nope.js", "", "", 404},
		{"/other", "", "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, h, tc.path, nil)
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.code != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "connect-src 'self'", "script-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if again, _ := get(t, h, tc.path, map[string]string{"If-None-Match": etag}); again.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with the ETag: got %d, want 304", again.StatusCode)
			}
		})
	}
}

// The dashboard works without any network but its own server: nothing in it
// names another host, and every file the page loads is embedded.
func TestNoExternalReferences(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	dir := "static"
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m == "http://www.w3.org" { // the SVG namespace, never fetched
				continue
			}
			t.Errorf("%s names another host: %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, index := get(t, ui.Handler(), "/ui/", nil)
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html loads %d files, want at least app.js, style.css and the icon", len(refs))
	}
	for _, r := range refs {
		ref := r[1]
		if strings.HasPrefix(ref, "../v1/") || ref == "./" {
			continue // the API of the same server, and the page itself
		}
		if resp, _ := get(t, ui.Handler(), "/ui/"+ref, nil); resp.StatusCode != 200 {
			t.Errorf("index.html loads %s: got %d, want 200 (is it embedded?)", ref, resp.StatusCode)
		}
	}
}
