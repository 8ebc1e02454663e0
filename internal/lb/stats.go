package lb

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seamark/seamark/api"
)

// counters are the live numbers of a listener port or a backend.
type counters struct {
	active                          atomic.Int64
	total, bytesIn, bytesOut        atomic.Uint64
	connectErrors, retries, refused atomic.Uint64
	denied                          atomic.Uint64
}

func (c *counters) snapshot() api.ConnStats {
	return api.ConnStats{
		Active: c.active.Load(), Total: c.total.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		ConnectErrors: c.connectErrors.Load(), Retries: c.retries.Load(), Refused: c.refused.Load(),
		Denied: c.denied.Load(),
	}
}

// collector exports the counters to Prometheus at scrape time, summed per
// listener name (a port range is one series, whatever its size) and per
// backend, so the data path never touches a Prometheus object.
type collector struct{ s *Server }

var (
	descListener = map[string]*prometheus.Desc{}
	descBackend  = map[string]*prometheus.Desc{}
	metricNames  = []struct{ name, help string }{
		{"active_connections", "Open connections."},
		{"connections_total", "Connections accepted (listener) or opened (backend)."},
		{"bytes_in_total", "Bytes received from clients."},
		{"bytes_out_total", "Bytes sent to clients."},
		{"connect_errors_total", "Failed connects to backends."},
		{"retries_total", "Connections that went on to another backend after a failed connect."},
		{"refused_total", "Clients closed because no backend could be reached."},
		{"denied_total", "Clients closed by the listener's allow/deny lists, or for sending PROXY from outside accept_proxy_from."},
	}
)

// descMaxConns is each listener's max_conns (per port; 0: none).
var descMaxConns = prometheus.NewDesc("seamark_lb_listener_max_conns", "A listener's cap of connections per port (max_conns; 0: none). At it the port stops accepting.", []string{"listener"}, nil)

func init() {
	for _, m := range metricNames {
		descListener[m.name] = prometheus.NewDesc("seamark_lb_listener_"+m.name, m.help, []string{"listener"}, nil)
		descBackend[m.name] = prometheus.NewDesc("seamark_lb_backend_"+m.name, m.help, []string{"service", "node"}, nil)
	}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descListener {
		ch <- d
	}
	for _, d := range descBackend {
		ch <- d
	}
	ch <- descMaxConns
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	byName := map[string]*api.ConnStats{}
	for _, l := range c.s.Stats() {
		s := byName[l.Name]
		if s == nil {
			s = &api.ConnStats{}
			byName[l.Name] = s
		}
		s.Add(l.ConnStats)
	}
	for name, s := range byName {
		emit(ch, descListener, *s, name)
	}
	c.s.mu.Lock()
	caps := map[string]int{}
	for _, p := range c.s.ports {
		caps[p.key.name] = p.spec.Load().MaxConns
	}
	c.s.mu.Unlock()
	for name, n := range caps {
		ch <- prometheus.MustNewConstMetric(descMaxConns, prometheus.GaugeValue, float64(n), name)
	}
	for _, b := range c.s.backendList() {
		emit(ch, descBackend, b.stats.snapshot(), b.service, b.node)
	}
}

func emit(ch chan<- prometheus.Metric, d map[string]*prometheus.Desc, s api.ConnStats, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d["active_connections"], prometheus.GaugeValue, float64(s.Active), labels...)
	ch <- prometheus.MustNewConstMetric(d["connections_total"], prometheus.CounterValue, float64(s.Total), labels...)
	ch <- prometheus.MustNewConstMetric(d["bytes_in_total"], prometheus.CounterValue, float64(s.BytesIn), labels...)
	ch <- prometheus.MustNewConstMetric(d["bytes_out_total"], prometheus.CounterValue, float64(s.BytesOut), labels...)
	ch <- prometheus.MustNewConstMetric(d["connect_errors_total"], prometheus.CounterValue, float64(s.ConnectErrors), labels...)
	ch <- prometheus.MustNewConstMetric(d["retries_total"], prometheus.CounterValue, float64(s.Retries), labels...)
	ch <- prometheus.MustNewConstMetric(d["refused_total"], prometheus.CounterValue, float64(s.Refused), labels...)
	ch <- prometheus.MustNewConstMetric(d["denied_total"], prometheus.CounterValue, float64(s.Denied), labels...)
}
