package server

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
)

// emptyGuard rejects a reload that would remove every zone, service,
// listener or group the running config has, unless the new file says
// allow_empty: true. An empty or truncated file is the usual cause.
func emptyGuard(old, f *config.File) error {
	if f.AllowEmpty {
		return nil
	}
	var gone []string
	if len(old.Zones) > 0 && len(f.Zones) == 0 {
		gone = append(gone, fmt.Sprintf("all %d zones", len(old.Zones)))
	}
	if len(old.Services) > 0 && len(f.Services) == 0 {
		gone = append(gone, fmt.Sprintf("all %d services", len(old.Services)))
	}
	if len(old.Listeners) > 0 && len(f.Listeners) == 0 {
		gone = append(gone, fmt.Sprintf("all %d listeners", len(old.Listeners)))
	}
	if len(old.Groups) > 0 && len(f.Groups) == 0 {
		gone = append(gone, fmt.Sprintf("all %d groups", len(old.Groups)))
	}
	if len(gone) == 0 {
		return nil
	}
	return fmt.Errorf("the file would delete %s (is it empty or cut short?); if that is meant, add \"allow_empty: true\" at the top level", strings.Join(gone, ", "))
}

// reloads remembers the outcome of the last config load, for /v1/status,
// the dashboard and the metrics. Start counts as a successful load.
type reloads struct {
	mu      sync.Mutex
	st      api.ConfigStatus
	success prometheus.Gauge
	okAt    prometheus.Gauge
}

func newReloads(file string, reg prometheus.Registerer) *reloads {
	r := &reloads{
		st: api.ConfigStatus{File: file},
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_config_last_reload_success", Help: "Whether the last config load (start or SIGHUP) succeeded (1) or was rejected (0).",
		}),
		okAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seamark_config_last_reload_success_timestamp_seconds", Help: "When the config was last loaded successfully (Unix seconds).",
		}),
	}
	reg.MustRegister(r.success, r.okAt)
	r.record(time.Now(), nil)
	return r
}

func (r *reloads) record(at time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.LastReload, r.st.LastReloadSuccess, r.st.Error = at, err == nil, ""
	if err != nil {
		r.st.Error = err.Error()
		r.success.Set(0)
		return
	}
	r.st.LastSuccess = at
	r.success.Set(1)
	r.okAt.Set(float64(at.UnixNano()) / 1e9)
}

func (r *reloads) status() api.ConfigStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}
