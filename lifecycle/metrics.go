package lifecycle

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
)

// Metrics are the metrics of a Server, served on /metrics in the Prometheus text format
// (version 0.0.4) with the Go runtime's and the process's own metrics (go_*, process_*).
// Create them with NewMetrics; a Server without Metrics creates its own.
//
// Lifecycle writes the exposition itself instead of linking a Prometheus client
// library, whose package initialisation every program linking lifecycle (the tandem
// command among them) paid at each start. An application's own metrics are served on
// the same endpoint through Extra.
type Metrics struct {
	// InFlight is the number of requests being served.
	InFlight *Gauge
	// LongLived is the number of long-lived requests (see LongLived) being served.
	LongLived *Gauge
	// Requests counts served requests by status class ("2xx", "5xx", ...).
	Requests *CounterVec
	// ConnectionClose counts responses sent with Connection: close while draining.
	ConnectionClose *Counter
	// Draining is 1 while the server drains, else 0.
	Draining *Gauge
	// Ready is 1 while the server is serving and not draining, else 0.
	Ready *Gauge
	// PhaseSeconds is how long the last run of each drain phase took
	// ("drain_delay", "shutdown").
	PhaseSeconds *GaugeVec
	// ForcedClose counts shutdowns that hit the shutdown timeout and closed connections.
	ForcedClose *Counter
	// Maintenance is 1 while maintenance mode is on, as seen by this instance.
	Maintenance *Gauge

	// Extra, when set, writes more metric families in the text format after
	// lifecycle's own: the application's metrics, say. With a Prometheus client
	// library's registry it encodes what the registry gathers; that registry must not
	// hold the Go and process collectors, whose metrics lifecycle already serves. When
	// it fails, /metrics serves lifecycle's own metrics alone and logs the error.
	Extra func(w io.Writer) error

	families []family // lifecycle's own, sorted by name
}

// NewMetrics creates the lifecycle metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		InFlight: &Gauge{}, LongLived: &Gauge{}, Requests: &CounterVec{vec[Counter, *Counter]{label: "code"}},
		ConnectionClose: &Counter{}, Draining: &Gauge{}, Ready: &Gauge{},
		PhaseSeconds: &GaugeVec{vec[Gauge, *Gauge]{label: "phase"}}, ForcedClose: &Counter{}, Maintenance: &Gauge{},
	}
	m.families = []family{
		{"tandem_http_in_flight_requests", "Requests being served.", "gauge", m.InFlight},
		{"tandem_http_long_lived_requests", "Long-lived requests (streams, hijacked connections) being served.", "gauge", m.LongLived},
		{"tandem_http_requests_total", "Served requests by status class.", "counter", m.Requests},
		{"tandem_lifecycle_connection_close_total", "Responses sent with Connection: close while draining.", "counter", m.ConnectionClose},
		{"tandem_lifecycle_draining", "1 while the instance drains.", "gauge", m.Draining},
		{"tandem_lifecycle_ready", "1 while the instance serves and is not draining.", "gauge", m.Ready},
		{"tandem_lifecycle_phase_seconds", "Duration of the last run of each drain phase.", "gauge", m.PhaseSeconds},
		{"tandem_lifecycle_forced_close_total", "Shutdowns that hit the shutdown timeout.", "counter", m.ForcedClose},
		{"tandem_maintenance_enabled", "1 while maintenance mode is on.", "gauge", m.Maintenance},
	}
	sort.Slice(m.families, func(i, j int) bool { return m.families[i].name < m.families[j].name })
	return m
}

// WriteText writes the metrics in the Prometheus text format: the Go runtime's, the
// process's (on Linux), lifecycle's own, then Extra's. Its error is the writer's or
// Extra's.
func (m *Metrics) WriteText(w io.Writer) error {
	if _, err := w.Write(m.appendOwn(nil)); err != nil {
		return err
	}
	if m.Extra != nil {
		return m.Extra(w)
	}
	return nil
}

// appendOwn appends the exposition of all but Extra's metrics to b.
func (m *Metrics) appendOwn(b []byte) []byte {
	e := &expo{b: b}
	writeGoMetrics(e)
	writeProcessMetrics(e)
	for _, f := range m.families {
		e.header(f.name, f.help, f.kind)
		f.values.expose(e, f.name)
	}
	return e.b
}

// Handler serves the metrics (WriteText) over HTTP, as a Server does on its
// MetricsPath; use it to serve them elsewhere. It logs Extra's errors to slog.Default().
func (m *Metrics) Handler() http.Handler { return m.handler(slog.Default()) }

func (m *Metrics) handler(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bytes.NewBuffer(m.appendOwn(nil))
		if n := buf.Len(); m.Extra != nil {
			if err := m.Extra(buf); err != nil {
				// Half a family would make the whole scrape fail to parse.
				log.Error("metrics: the extra metrics failed; serving lifecycle's own", "err", err)
				buf.Truncate(n)
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// family is one metric family of lifecycle's own.
type family struct {
	name, help, kind string
	values           exposer
}

// exposer writes the samples of one family.
type exposer interface {
	expose(e *expo, name string)
}

// atomicFloat is a float64 updated atomically.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) load() float64            { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) store(v float64)          { f.bits.Store(math.Float64bits(v)) }
func (f *atomicFloat) expose(e *expo, n string) { e.sample(n, "", "", f.load()) }
func (f *atomicFloat) add(d float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Counter is a metric that only goes up. The zero value is ready to use.
type Counter struct{ atomicFloat }

// Inc adds 1.
func (c *Counter) Inc() { c.add(1) }

// Add adds d; a counter never goes down, so a negative d is ignored.
func (c *Counter) Add(d float64) {
	if d > 0 {
		c.add(d)
	}
}

// Value returns the count.
func (c *Counter) Value() float64 { return c.load() }

// Gauge is a metric that goes up and down. The zero value is ready to use.
type Gauge struct{ atomicFloat }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.store(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.add(-1) }

// Add adds d, which may be negative.
func (g *Gauge) Add(d float64) { g.add(d) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return g.load() }

// vec is a metric with one label: one T per label value, created on first use.
type vec[T any, P interface {
	*T
	load() float64
}] struct {
	label string
	mu    sync.Mutex
	m     map[string]*T
}

func (v *vec[T, P]) get(value string) *T {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]*T{}
	}
	t, ok := v.m[value]
	if !ok {
		t = new(T)
		v.m[value] = t
	}
	return t
}

func (v *vec[T, P]) expose(e *expo, name string) {
	v.mu.Lock()
	values := make([]string, 0, len(v.m))
	for k := range v.m {
		values = append(values, k)
	}
	sort.Strings(values)
	ts := make([]P, len(values))
	for i, k := range values {
		ts[i] = v.m[k]
	}
	v.mu.Unlock()
	for i, k := range values {
		e.sample(name, v.label, k, ts[i].load())
	}
}

// CounterVec is a Counter per value of one label.
type CounterVec struct{ vec[Counter, *Counter] }

// WithLabelValues returns the Counter of a label value, creating it on first use.
func (c *CounterVec) WithLabelValues(value string) *Counter { return c.get(value) }

// GaugeVec is a Gauge per value of one label.
type GaugeVec struct{ vec[Gauge, *Gauge] }

// WithLabelValues returns the Gauge of a label value, creating it on first use.
func (g *GaugeVec) WithLabelValues(value string) *Gauge { return g.get(value) }
