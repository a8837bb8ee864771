package lifecycle

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the Prometheus metrics of a Server. Create them with NewMetrics; a Server
// without Metrics creates its own on a private registry and serves them on /metrics.
type Metrics struct {
	// InFlight is the number of requests being served.
	InFlight prometheus.Gauge
	// LongLived is the number of long-lived requests (see LongLived) being served.
	LongLived prometheus.Gauge
	// Requests counts served requests by status class ("2xx", "5xx", ...).
	Requests *prometheus.CounterVec
	// ConnectionClose counts responses sent with Connection: close while draining.
	ConnectionClose prometheus.Counter
	// Draining is 1 while the server drains, else 0.
	Draining prometheus.Gauge
	// Ready is 1 while the server is serving and not draining, else 0.
	Ready prometheus.Gauge
	// PhaseSeconds is how long the last run of each drain phase took
	// ("drain_delay", "shutdown").
	PhaseSeconds *prometheus.GaugeVec
	// ForcedClose counts shutdowns that hit the shutdown timeout and closed connections.
	ForcedClose prometheus.Counter
	// Maintenance is 1 while maintenance mode is on, as seen by this instance.
	Maintenance prometheus.Gauge

	gatherer prometheus.Gatherer
}

// NewMetrics creates the lifecycle metrics and registers them with reg. When reg is nil
// a new registry is used, with the Go runtime and process collectors added.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	var gatherer prometheus.Gatherer = prometheus.DefaultGatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	m := &Metrics{
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_http_in_flight_requests", Help: "Requests being served."}),
		LongLived: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_http_long_lived_requests", Help: "Long-lived requests (streams, hijacked connections) being served."}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_http_requests_total", Help: "Served requests by status class."}, []string{"code"}),
		ConnectionClose: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tandem_lifecycle_connection_close_total", Help: "Responses sent with Connection: close while draining."}),
		Draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_lifecycle_draining", Help: "1 while the instance drains."}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_lifecycle_ready", Help: "1 while the instance serves and is not draining."}),
		PhaseSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_lifecycle_phase_seconds", Help: "Duration of the last run of each drain phase."}, []string{"phase"}),
		ForcedClose: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tandem_lifecycle_forced_close_total", Help: "Shutdowns that hit the shutdown timeout."}),
		Maintenance: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_maintenance_enabled", Help: "1 while maintenance mode is on."}),
		gatherer: gatherer,
	}
	reg.MustRegister(m.InFlight, m.LongLived, m.Requests, m.ConnectionClose, m.Draining, m.Ready,
		m.PhaseSeconds, m.ForcedClose, m.Maintenance)
	return m
}

// Gatherer returns what /metrics serves.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.gatherer }
