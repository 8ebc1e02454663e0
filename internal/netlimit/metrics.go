package netlimit

import "github.com/prometheus/client_golang/prometheus"

// Register adds the surface's metrics to reg: seamark_conn_limit,
// seamark_conn_active, seamark_conn_refused_total{reason} and
// seamark_accept_errors_total, each labelled surface=<name>.
func (s *Surface) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	l := prometheus.Labels{"surface": s.name}
	return reg.Register(&surfaceCollector{s: s,
		limit:   prometheus.NewDesc("seamark_conn_limit", "Most connections the surface holds (0: only the descriptor budget bounds it).", nil, l),
		active:  prometheus.NewDesc("seamark_conn_active", "Connections the surface holds.", nil, l),
		refused: prometheus.NewDesc("seamark_conn_refused_total", "Connections turned away (cap, budget), closed to make room (evicted), or accept pauses at the cap (paused).", []string{"reason"}, l),
		errs:    prometheus.NewDesc("seamark_accept_errors_total", "Accept errors (EMFILE and the like), each followed by a back-off.", nil, l),
	})
}

type surfaceCollector struct {
	s                            *Surface
	limit, active, refused, errs *prometheus.Desc
}

func (c *surfaceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.active
	ch <- c.refused
	ch <- c.errs
}

func (c *surfaceCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.s.Max()))
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(c.s.Active()))
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.s.Refused(r)), string(r))
	}
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(c.s.acceptErrors.Load()))
}

// Register adds the budget's metrics to reg: seamark_fd_limit,
// seamark_fd_reserve, seamark_fd_held, seamark_fd_open and
// seamark_fd_budget_refused_total.
func (b *Budget) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	return reg.Register(&budgetCollector{b: b,
		limit:   prometheus.NewDesc("seamark_fd_limit", "The process's open-file limit.", nil, nil),
		reserve: prometheus.NewDesc("seamark_fd_reserve", "Descriptors kept free for the store, the checker and the API's own work.", nil, nil),
		held:    prometheus.NewDesc("seamark_fd_held", "Descriptors held by network surfaces' connections.", nil, nil),
		open:    prometheus.NewDesc("seamark_fd_open", "Descriptors open in the process (sampled).", nil, nil),
		refused: prometheus.NewDesc("seamark_fd_budget_refused_total", "Connections refused because the process as a whole came near its limit.", nil, nil),
	})
}

type budgetCollector struct {
	b                                   *Budget
	limit, reserve, held, open, refused *prometheus.Desc
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.reserve
	ch <- c.held
	ch <- c.open
	ch <- c.refused
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.b.Limit()))
	ch <- prometheus.MustNewConstMetric(c.reserve, prometheus.GaugeValue, float64(c.b.Reserve()))
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(c.b.Held()))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(c.b.Open()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.b.refusedFDs.Load()))
}
