package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseText parses a text exposition with the Prometheus parser, failing the test on
// what it rejects.
func parseText(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects the exposition: %v\n%s", err, text)
	}
	return fams
}

func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	return parseText(t, buf.Bytes())
}

// value returns the value of a family's metric whose labels are the pairs given.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName(), l.GetValue())
		}
		if strings.Join(got, "\x00") != strings.Join(labels, "\x00") {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%q", name, labels)
	return 0
}

// TestMetricsFamilies: /metrics has the families it had when lifecycle used the
// Prometheus Go client, with the same names, types and help texts. The Go and process
// families are compared with what the client's own collectors give today; the
// lifecycle families with the documented list.
func TestMetricsFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	want, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type fam struct{ name, kind, help string }
	var wantFams []fam
	for _, f := range want {
		wantFams = append(wantFams, fam{f.GetName(), strings.ToLower(f.GetType().String()), f.GetHelp()})
	}
	for _, f := range []fam{
		{"tandem_http_in_flight_requests", "gauge", "Requests being served."},
		{"tandem_http_long_lived_requests", "gauge", "Long-lived requests (streams, hijacked connections) being served."},
		{"tandem_http_requests_total", "counter", "Served requests by status class."},
		{"tandem_lifecycle_connection_close_total", "counter", "Responses sent with Connection: close while draining."},
		{"tandem_lifecycle_draining", "gauge", "1 while the instance drains."},
		{"tandem_lifecycle_forced_close_total", "counter", "Shutdowns that hit the shutdown timeout."},
		{"tandem_lifecycle_phase_seconds", "gauge", "Duration of the last run of each drain phase."},
		{"tandem_lifecycle_ready", "gauge", "1 while the instance serves and is not draining."},
		{"tandem_maintenance_enabled", "gauge", "1 while maintenance mode is on."},
	} {
		wantFams = append(wantFams, f)
	}
	m := NewMetrics()
	m.Requests.WithLabelValues("2xx").Inc() // a vector without children has no samples
	m.PhaseSeconds.WithLabelValues("shutdown").Set(1)
	var buf bytes.Buffer
	if err := m.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	got := parseText(t, buf.Bytes())
	var gotFams []fam
	for _, f := range got {
		gotFams = append(gotFams, fam{f.GetName(), strings.ToLower(f.GetType().String()), f.GetHelp()})
	}
	for _, l := range [][]fam{wantFams, gotFams} {
		sort.Slice(l, func(i, j int) bool { return l[i].name < l[j].name })
	}
	if fmt.Sprint(gotFams) != fmt.Sprint(wantFams) {
		t.Errorf("families:\n%s\nwant:\n%s", famList(gotFams), famList(wantFams))
	}
	var names []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if n, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(n)[0])
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("families are not sorted by name: %v", names)
	}
}

func famList[T any](l []T) string {
	var b strings.Builder
	for _, f := range l {
		fmt.Fprintf(&b, "  %v\n", f)
	}
	return b.String()
}

// TestMetricsRuntimeValues: the Go and process values agree with the Prometheus Go
// client's collectors, read right after ours. Values that move between the two reads
// (memory, CPU, traffic) are compared by order or loosely.
func TestMetricsRuntimeValues(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process metrics are read from /proc")
	}
	ours := scrape(t, NewMetrics())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		theirs[f.GetName()] = f
	}
	for _, tc := range []struct {
		name   string
		labels []string
		cmp    string // "=": equal; "<=": ours is not above theirs (counters); "~": within a factor of 2
	}{
		{"go_info", []string{"version", runtime.Version()}, "="},
		{"go_gc_gogc_percent", nil, "="},
		{"go_gc_gomemlimit_bytes", nil, "="},
		{"go_sched_gomaxprocs_threads", nil, "="},
		{"go_goroutines", nil, "<="}, // the client gathers in goroutines of its own
		{"go_threads", nil, "~"},
		{"go_memstats_alloc_bytes_total", nil, "<="},
		{"go_memstats_mallocs_total", nil, "<="},
		{"go_memstats_frees_total", nil, "<="},
		{"go_memstats_sys_bytes", nil, "~"},
		{"go_memstats_heap_sys_bytes", nil, "~"},
		{"go_memstats_heap_inuse_bytes", nil, "~"},
		{"go_memstats_stack_sys_bytes", nil, "~"},
		{"go_memstats_next_gc_bytes", nil, "~"},
		{"go_memstats_last_gc_time_seconds", nil, "<="},
		{"process_cpu_seconds_total", nil, "<="},
		{"process_max_fds", nil, "="},
		{"process_virtual_memory_max_bytes", nil, "="},
		{"process_start_time_seconds", nil, "="},
		{"process_open_fds", nil, "~"},
		{"process_resident_memory_bytes", nil, "~"},
		{"process_virtual_memory_bytes", nil, "~"},
		{"process_network_receive_bytes_total", nil, "<="},
		{"process_network_transmit_bytes_total", nil, "<="},
	} {
		o, th := value(t, ours, tc.name, tc.labels...), value(t, theirs, tc.name, tc.labels...)
		var ok bool
		switch tc.cmp {
		case "=":
			ok = o == th
		case "<=":
			ok = o <= th
		case "~":
			ok = o > 0 && o <= 2*th && th <= 2*o
		}
		if !ok {
			t.Errorf("%s: ours %g, the Prometheus client's %g: want %s", tc.name, o, th, tc.cmp)
		}
	}
	// The GC summary: runtime.GC makes a pause to count.
	runtime.GC()
	after := scrape(t, NewMetrics())
	f := after["go_gc_duration_seconds"]
	if s := f.GetMetric()[0].GetSummary(); s.GetSampleCount() == 0 || len(s.GetQuantile()) != 5 || s.GetQuantile()[4].GetValue() <= 0 {
		t.Errorf("go_gc_duration_seconds after a GC: %v", s)
	}
	if v := value(t, after, "process_cpu_seconds_total"); v <= 0 {
		t.Errorf("process_cpu_seconds_total %g: want above 0", v)
	}
}

// TestMetricsLifecycleValues: what the Server sets is what /metrics says, label values
// escaped so that the Prometheus parser reads them back unchanged.
func TestMetricsLifecycleValues(t *testing.T) {
	m := NewMetrics()
	m.InFlight.Inc()
	m.InFlight.Inc()
	m.InFlight.Dec()
	m.LongLived.Add(3)
	m.Requests.WithLabelValues("2xx").Inc()
	m.Requests.WithLabelValues("2xx").Add(2)
	m.Requests.WithLabelValues("5xx").Inc()
	m.Requests.WithLabelValues("5xx").Add(-7) // ignored: a counter does not go down
	odd := "a \"quoted\" back\\slash\nnew line é"
	m.Requests.WithLabelValues(odd).Inc()
	m.PhaseSeconds.WithLabelValues("drain_delay").Set(10.25)
	m.PhaseSeconds.WithLabelValues("shutdown").Set(math.Inf(1))
	m.Maintenance.Set(1)
	m.ForcedClose.Inc()
	got := scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tandem_http_in_flight_requests", nil, 1},
		{"tandem_http_long_lived_requests", nil, 3},
		{"tandem_http_requests_total", []string{"code", "2xx"}, 3},
		{"tandem_http_requests_total", []string{"code", "5xx"}, 1},
		{"tandem_http_requests_total", []string{"code", odd}, 1},
		{"tandem_lifecycle_phase_seconds", []string{"phase", "drain_delay"}, 10.25},
		{"tandem_lifecycle_phase_seconds", []string{"phase", "shutdown"}, math.Inf(1)},
		{"tandem_maintenance_enabled", nil, 1},
		{"tandem_lifecycle_forced_close_total", nil, 1},
		{"tandem_lifecycle_ready", nil, 0},
		{"tandem_lifecycle_connection_close_total", nil, 0},
	} {
		if v := value(t, got, tc.name, tc.labels...); v != tc.want {
			t.Errorf("%s%q = %g, want %g", tc.name, tc.labels, v, tc.want)
		}
	}
	if m.Requests.WithLabelValues("2xx").Value() != 3 || m.InFlight.Value() != 1 {
		t.Error("Value does not read what was set")
	}
}

// TestMetricsServed: a Server serves the metrics on its metrics path in the text
// format, with Extra's families after its own; when Extra fails, after writing part of
// its output, lifecycle's own are served, without Extra's, and the error logged.
func TestMetricsServed(t *testing.T) {
	// Extra as docs/lifecycle.md shows it, over a Prometheus client registry.
	appRegistry := prometheus.NewRegistry()
	orders := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_orders_total", Help: "Orders taken."})
	appRegistry.MustRegister(orders)
	orders.Add(7)
	m := NewMetrics()
	extraErr := error(nil)
	m.Extra = func(w io.Writer) error {
		families, err := appRegistry.Gather()
		if err != nil {
			return err
		}
		if extraErr != nil {
			_, _ = io.WriteString(w, "# HELP app_half A family cut in the middle.\n# TYPE app_half gau")
			return extraErr
		}
		enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		return nil
	}
	var logs bytes.Buffer
	s := &Server{HTTP: &http.Server{}, Metrics: m, MetricsPath: "/m", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s.init()
	h := s.wrap(http.NotFoundHandler())
	get := func() (*http.Response, map[string]*dto.MetricFamily) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/m", nil).WithContext(context.Background()))
		return rec.Result(), parseText(t, rec.Body.Bytes())
	}
	resp, fams := get()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.StatusCode != 200 || value(t, fams, "app_orders_total") != 7 || fams["go_goroutines"] == nil || fams["tandem_lifecycle_ready"] == nil {
		t.Errorf("status %d, families %d: want 200 and the Go, lifecycle and extra families", resp.StatusCode, len(fams))
	}
	extraErr = errors.New("registry gone")
	resp, fams = get()
	if resp.StatusCode != 200 || fams["tandem_lifecycle_ready"] == nil || fams["app_orders_total"] != nil || !strings.Contains(logs.String(), "registry gone") {
		t.Errorf("with Extra failing: status %d, %d families, logs %q: want 200, lifecycle's families alone, the error logged",
			resp.StatusCode, len(fams), logs.String())
	}
}
