package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// /metrics passes Prometheus' own lint (promtool check metrics runs the same
// rules), and says which build runs.
func TestMetricsLintClean(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seamark.yaml")
	if err := os.WriteFile(cfg, []byte(`zones: [lint.test]
services: [{name: app, port: 3000, check: {type: tcp, interval: 1s}}]
listeners: [{name: l, port: 1, bind: 127.0.0.1, service: app}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg, filepath.Join(dir, "data"))
	defer s.Close()
	text := metricsText(t, s.HTTPAddr().String())
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if !strings.Contains(text, `seamark_build_info{goversion="go`) || !strings.Contains(text, `version="test"} 1`) {
		t.Errorf("no seamark_build_info with the version in /metrics")
	}
}
