package lb

import (
	"golang.org/x/sys/unix"
	"strconv"

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
	connectRefused, connectTimeouts atomic.Uint64
	resets                          atomic.Uint64
}

func (c *counters) snapshot() api.ConnStats {
	return api.ConnStats{
		Active: c.active.Load(), Total: c.total.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		ConnectErrors: c.connectErrors.Load(), Retries: c.retries.Load(), Refused: c.refused.Load(),
		Denied:         c.denied.Load(),
		ConnectRefused: c.connectRefused.Load(), ConnectTimeouts: c.connectTimeouts.Load(), Resets: c.resets.Load(),
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
		{"connect_refused_total", "Failed connects to backends that the backend refused (ECONNREFUSED)."},
		{"connect_timeouts_total", "Failed connects to backends that timed out (connect_timeout)."},
		{"resets_total", "Connections that ended by a read or write error (a reset, mostly) rather than a clean close."},
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
	ch <- descLoopTotal
	ch <- descLoopActive
}

// The relay loops' shares of the connections (one loop per core).
var (
	descLoopTotal  = prometheus.NewDesc("seamark_lb_loop_connections_total", "Clients each relay loop accepted.", []string{"loop"}, nil)
	descLoopActive = prometheus.NewDesc("seamark_lb_loop_active_connections", "Connections each relay loop holds now.", []string{"loop"}, nil)
)

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
	c.s.mu.Lock()
	loops := c.s.loops
	c.s.mu.Unlock()
	for i, l := range loops {
		ch <- prometheus.MustNewConstMetric(descLoopTotal, prometheus.CounterValue, float64(l.total.Load()), strconv.Itoa(i))
		ch <- prometheus.MustNewConstMetric(descLoopActive, prometheus.GaugeValue, float64(l.active.Load()), strconv.Itoa(i))
	}
}

func emit(ch chan<- prometheus.Metric, d map[string]*prometheus.Desc, s api.ConnStats, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d["active_connections"], prometheus.GaugeValue, float64(s.Active), labels...)
	ch <- prometheus.MustNewConstMetric(d["connections_total"], prometheus.CounterValue, float64(s.Total), labels...)
	ch <- prometheus.MustNewConstMetric(d["bytes_in_total"], prometheus.CounterValue, float64(s.BytesIn), labels...)
	ch <- prometheus.MustNewConstMetric(d["bytes_out_total"], prometheus.CounterValue, float64(s.BytesOut), labels...)
	ch <- prometheus.MustNewConstMetric(d["connect_errors_total"], prometheus.CounterValue, float64(s.ConnectErrors), labels...)
	ch <- prometheus.MustNewConstMetric(d["connect_refused_total"], prometheus.CounterValue, float64(s.ConnectRefused), labels...)
	ch <- prometheus.MustNewConstMetric(d["connect_timeouts_total"], prometheus.CounterValue, float64(s.ConnectTimeouts), labels...)
	ch <- prometheus.MustNewConstMetric(d["resets_total"], prometheus.CounterValue, float64(s.Resets), labels...)
	ch <- prometheus.MustNewConstMetric(d["retries_total"], prometheus.CounterValue, float64(s.Retries), labels...)
	ch <- prometheus.MustNewConstMetric(d["refused_total"], prometheus.CounterValue, float64(s.Refused), labels...)
	ch <- prometheus.MustNewConstMetric(d["denied_total"], prometheus.CounterValue, float64(s.Denied), labels...)
}

// tcpBytes reads the kernel's counters of a client socket: bytes received
// from the client and bytes the client acknowledged.
func tcpBytes(fd int) (in, out uint64, ok bool) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, 0, false
	}
	in, out = info.Bytes_received, info.Bytes_acked
	// A FIN takes one sequence number, which both counters include once it
	// has been received (or, for ours, acknowledged).
	switch info.State {
	case tcpCloseWait, tcpLastAck, tcpClosing:
		in = sub1(in)
	case tcpFinWait2:
		out = sub1(out)
	case tcpTimeWait:
		in, out = sub1(in), sub1(out)
	}
	return in, out, true
}

// TCP states of tcp_info (include/net/tcp_states.h).
const (
	tcpFinWait2  = 5
	tcpTimeWait  = 6
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)

func sub1(x uint64) uint64 {
	if x == 0 {
		return 0
	}
	return x - 1
}

// account adds c's bytes since the last sample to its port and backend, and
// reports whether any moved.
func (s *Server) account(c *conn) bool {
	c.mu.Lock()
	in, out, ok := uint64(0), uint64(0), false
	if c.client >= 0 {
		in, out, ok = tcpBytes(c.client)
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	return c.addBytes(in, out)
}

// addBytes raises c's byte counts to in and out (never lowers them) and
// reports whether they moved.
func (c *conn) addBytes(in, out uint64) bool {
	moved := false
	if in > c.in {
		c.port.stats.bytesIn.Add(in - c.in)
		c.be.stats.bytesIn.Add(in - c.in)
		c.in, moved = in, true
	}
	if out > c.out {
		c.port.stats.bytesOut.Add(out - c.out)
		c.be.stats.bytesOut.Add(out - c.out)
		c.out, moved = out, true
	}
	return moved
}
