// Package ui is seamark's web dashboard, served by `seamark server` at /ui/.
//
// It is a few static files (HTML, CSS and plain JavaScript) compiled into the
// binary with go:embed: no build step, no CDN, nothing fetched from outside.
// The page reads only the public HTTP API of the server that served it (same
// origin): services and nodes with their health verdicts, listeners with the
// balancer's live counters (/v1/lb), balancer groups with their roles, zones
// and records, and the event log. Nodes and events follow the server through
// blocking reads (?index=), so a node that goes down shows as down as soon as
// the server's snapshot says so; counters are polled.
//
// The files themselves hold no data and are served to anyone; the data comes
// from the API, so when tokens are configured and anonymous reads are off the
// page asks for a token, keeps it in the browser's localStorage and sends it
// as "Authorization: Bearer". With a token saved the nodes table offers the
// operator's actions (drain, maint, ready: PUT and DELETE
// /v1/services/{service}/nodes/{id}/admin), which the server allows only
// to a write token. A Content-Security-Policy keeps the page from
// loading or contacting anything but its own server.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// files are the dashboard's files, rooted at static/.
var files = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees static/ exists
	}
	return sub
}()

// etags are the files' content hashes, so a browser revalidates cheaply.
var etags = func() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out["/"+path] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	out["/"] = out["/index.html"]
	return out
}()

// csp allows the page its own scripts, styles and API, and nothing else.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard's files for every path under Prefix. Requests
// outside Prefix get 404.
func Handler() http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files change with the binary: revalidate, never serve a stale
		// script against a newer API.
		h.Set("Cache-Control", "no-cache")
		if tag, ok := etags["/"+rest]; ok {
			h.Set("ETag", tag)
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + rest
		r2.URL.RawPath = ""
		fsrv.ServeHTTP(w, r2)
	})
}
