package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/config"
)

func TestCheckExposure(t *testing.T) {
	tls := config.TLS{CertFile: "c.pem", KeyFile: "k.pem"}
	tokens := []config.Token{{Name: "ops", Secret: "x", Access: "write"}}
	for _, tc := range []struct {
		name    string
		srv     config.Server
		tokens  []config.Token
		wantErr string // "" for none
	}{
		{"loopback default", config.Server{HTTPAddr: "127.0.0.1:9400", EtcdClientAddr: "127.0.0.1:9479"}, nil, ""},
		{"localhost and ::1", config.Server{HTTPAddr: "localhost:9400", EtcdClientAddr: "[::1]:9479"}, nil, ""},
		{"other loopback", config.Server{HTTPAddr: "127.0.42.1:9400", EtcdClientAddr: "127.0.0.1:0"}, nil, ""},
		{"wildcard plain", config.Server{HTTPAddr: "0.0.0.0:9400", EtcdClientAddr: "127.0.0.1:9479"}, nil, "server.tls (cert_file, key_file) and api.tokens"},
		{"empty host", config.Server{HTTPAddr: ":9400", EtcdClientAddr: "127.0.0.1:9479"}, tokens, "server.tls"},
		{"tls without token", config.Server{HTTPAddr: "[::]:9400", EtcdClientAddr: "127.0.0.1:9479", TLS: tls}, nil, "set api.tokens"},
		{"a name", config.Server{HTTPAddr: "seamark.example:9400", EtcdClientAddr: "127.0.0.1:9479", TLS: tls}, nil, "api.tokens"},
		{"tls and token", config.Server{HTTPAddr: "10.0.0.1:9400", EtcdClientAddr: "127.0.0.1:9479", TLS: tls}, tokens, ""},
		{"etcd exposed", config.Server{HTTPAddr: "127.0.0.1:9400", EtcdClientAddr: "0.0.0.0:9479", TLS: tls}, tokens, "server.etcd_client_addr"},
		{"etcd external", config.Server{HTTPAddr: "127.0.0.1:9400", EtcdClientAddr: "0.0.0.0:9479", EtcdEndpoints: []string{"https://10.0.0.1:2379"}}, nil, ""},
		{"opt-out", config.Server{HTTPAddr: "0.0.0.0:9400", EtcdClientAddr: "0.0.0.0:9479", InsecureExpose: true}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &config.File{Server: tc.srv, API: config.API{Tokens: tc.tokens}}
			err := checkExposure(f)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			case err != nil && (strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "insecure_expose")):
				t.Fatalf("error %q is not one line naming server.insecure_expose", err)
			}
		})
	}
}

func TestHTTPErrorLogIsLimited(t *testing.T) {
	var lines []string
	h := &recordHandler{lines: &lines}
	now := time.Unix(0, 0)
	w := &limitedWriter{log: slog.New(h), burst: 3, interval: time.Second, now: func() time.Time { return now }}
	for range 100 {
		w.Write([]byte("http: TLS handshake error\n"))
	}
	if len(lines) != 3 {
		t.Fatalf("got %d lines in one interval, want 3", len(lines))
	}
	now = now.Add(time.Second)
	w.Write([]byte("again\n"))
	if len(lines) != 4 || !strings.Contains(lines[3], "suppressed_before=97") {
		t.Fatalf("got %q, want a 4th line counting 97 suppressed", lines)
	}
}

type recordHandler struct {
	slog.Handler
	lines *[]string
}

func (h *recordHandler) Enabled(_ context.Context, _ slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	*h.lines = append(*h.lines, s)
	return nil
}
