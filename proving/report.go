package proving

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Event is something that happened during the run, such as a step of the rollout.
type Event struct {
	AtS  float64 `json:"at_s"` // seconds since the load started
	What string  `json:"what"`
}

// Bucket is one interval of the timeline.
type Bucket struct {
	StartS   float64 `json:"start_s"`
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// Report is the outcome of a run. Latency figures are over the API requests (streams
// last StreamDuration by design and are reported apart); counts are over all requests.
type Report struct {
	Instances    int     `json:"instances"`
	Rate         int     `json:"rate"`
	DurationS    float64 `json:"duration_s"`
	RouterLagS   float64 `json:"router_lag_s"`
	RouterMode   string  `json:"router_mode"`
	Drain        bool    `json:"drain"`
	DrainDelayS  float64 `json:"drain_delay_s"`
	StreamShare  float64 `json:"stream_share"`
	RolloutStart float64 `json:"rollout_start_s"`
	RolloutEnd   float64 `json:"rollout_end_s"`

	Total int `json:"total"`
	// ServedBy counts the answers by the release that made them.
	ServedBy      map[string]int `json:"served_by"`
	Failed        int            `json:"failed"`
	FailedByClass map[string]int `json:"failed_by_class"`
	P50MS         float64        `json:"p50_ms"`
	P99MS         float64        `json:"p99_ms"`
	MaxMS         float64        `json:"max_ms"`
	SteadyP99MS   float64        `json:"steady_p99_ms"`
	RolloutP99MS  float64        `json:"rollout_p99_ms"`
	// RolloutRequests are the API requests sent during the rollout; RolloutSlow those
	// of them slower than twice the steady p99. The p99 target holds while RolloutSlow
	// stays under 1% of RolloutRequests; the upgrade's steps say where they were.
	RolloutRequests int `json:"rollout_requests"`
	RolloutSlow     int `json:"rollout_slow"`

	Streams       int     `json:"streams"`
	StreamsFailed int     `json:"streams_failed"`
	StreamP99MS   float64 `json:"stream_p99_ms"`

	TasksQueued  int `json:"tasks_queued"`
	TasksDone    int `json:"tasks_done"`
	TasksPending int `json:"tasks_pending"`
	TasksDoubled int `json:"tasks_doubled"`

	// Upgrade is what the run saw of the upgrade, when it upgraded.
	Upgrade *UpgradeReport `json:"upgrade,omitempty"`
	// Kube is what a run on Kubernetes (RunKube) saw of the cluster.
	Kube *KubeReport `json:"kube,omitempty"`
	// Saturated says the machine could not carry the load before the rollout began:
	// steady-state latency far above what an idle instance answers in, so failures or
	// slow requests are the machine's, not the drain's.
	Saturated string `json:"saturated,omitempty"`

	// FirstErrors are a few failures, for diagnosis.
	FirstErrors []string `json:"first_errors,omitempty"`
	Events      []Event  `json:"events"`
	Timeline    []Bucket `json:"timeline"`
	BucketS     float64  `json:"bucket_s"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// percentile returns the p-th percentile (0..100) of sorted, by nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func latencies(recs []Record, keep func(Record) bool) []time.Duration {
	var out []time.Duration
	for _, r := range recs {
		if keep(r) {
			out = append(out, r.Latency)
		}
	}
	slices.Sort(out)
	return out
}

func buildReport(o Options, recs []Record, events []Event, rolloutStart, rolloutEnd time.Duration) *Report {
	sort.Slice(recs, func(i, j int) bool { return recs[i].Start < recs[j].Start })
	rep := &Report{
		Instances: o.Instances, Rate: o.Rate, RouterLagS: o.RouterLag.Seconds(), RouterMode: o.RouterMode,
		Drain: !o.NoDrain, DrainDelayS: o.DrainDelay.Seconds(), StreamShare: o.StreamShare,
		RolloutStart: rolloutStart.Seconds(), RolloutEnd: rolloutEnd.Seconds(),
		FailedByClass: map[string]int{}, ServedBy: map[string]int{}, Events: events,
	}
	var last time.Duration
	for _, r := range recs {
		rep.Total++
		if r.Release != "" {
			rep.ServedBy[r.Release]++
		}
		if r.Kind == "stream" {
			rep.Streams++
		}
		if r.Class != "" {
			rep.Failed++
			rep.FailedByClass[r.Class]++
			if r.Kind == "stream" {
				rep.StreamsFailed++
			}
			if len(rep.FirstErrors) < 10 {
				msg := r.Err
				if msg == "" {
					msg = fmt.Sprintf("status %d", r.Status)
				}
				rep.FirstErrors = append(rep.FirstErrors, fmt.Sprintf("%.3fs %s %s: %s", r.Start.Seconds(), r.Kind, r.Class, msg))
			}
		}
		last = max(last, r.Start)
	}
	rep.DurationS = math.Round(last.Seconds()*10) / 10
	api := func(r Record) bool { return r.Kind == "api" }
	all := latencies(recs, api)
	rep.P50MS, rep.P99MS = ms(percentile(all, 50)), ms(percentile(all, 99))
	if len(all) > 0 {
		rep.MaxMS = ms(all[len(all)-1])
	}
	// Steady state: after a short warm-up, before the rollout.
	warm := min(2*time.Second, rolloutStart/4)
	rep.SteadyP99MS = ms(percentile(latencies(recs, func(r Record) bool {
		return api(r) && r.Start >= warm && r.Start < rolloutStart
	}), 99))
	during := latencies(recs, func(r Record) bool {
		return api(r) && r.Start >= rolloutStart && r.Start <= rolloutEnd
	})
	rep.RolloutP99MS = ms(percentile(during, 99))
	rep.RolloutRequests, rep.RolloutSlow = len(during), rep.slow(during)
	rep.StreamP99MS = ms(percentile(latencies(recs, func(r Record) bool { return r.Kind == "stream" }), 99))
	rep.Saturated = saturation(recs, rep.SteadyP99MS, rolloutStart)

	// Timeline in buckets of 250 ms (1 s for long runs).
	bucket := 250 * time.Millisecond
	if last > 2*time.Minute {
		bucket = time.Second
	}
	rep.BucketS = bucket.Seconds()
	n := int(last/bucket) + 1
	lats := make([][]time.Duration, n)
	rep.Timeline = make([]Bucket, n)
	for i := range rep.Timeline {
		rep.Timeline[i].StartS = (time.Duration(i) * bucket).Seconds()
	}
	for _, r := range recs {
		i := int(r.Start / bucket)
		b := &rep.Timeline[i]
		b.Requests++
		if r.Class != "" {
			b.Failed++
		}
		if api(r) {
			lats[i] = append(lats[i], r.Latency)
		}
	}
	for i := range rep.Timeline {
		slices.Sort(lats[i])
		rep.Timeline[i].P50MS = ms(percentile(lats[i], 50))
		rep.Timeline[i].P99MS = ms(percentile(lats[i], 99))
		if len(lats[i]) > 0 {
			rep.Timeline[i].MaxMS = ms(lats[i][len(lats[i])-1])
		}
	}
	return rep
}

// slow counts the latencies of sorted over twice the steady p99.
func (r *Report) slow(sorted []time.Duration) int {
	limit := time.Duration(2 * r.SteadyP99MS * float64(time.Millisecond))
	i, _ := slices.BinarySearch(sorted, limit+1)
	return len(sorted) - i
}

// stepLatency sets the latency figures of the upgrade's steps from the run's records:
// the API requests sent while each step ran.
func (r *Report) stepLatency(recs []Record) {
	if r.Upgrade == nil {
		return
	}
	for i := range r.Upgrade.Steps {
		st := &r.Upgrade.Steps[i]
		from := time.Duration(st.StartS * float64(time.Second))
		to := from + time.Duration(st.DurationS*float64(time.Second))
		lat := latencies(recs, func(rec Record) bool { return rec.Kind == "api" && rec.Start >= from && rec.Start < to })
		st.Requests, st.P99MS, st.Slow = len(lat), ms(percentile(lat, 99)), r.slow(lat)
		if len(lat) > 0 {
			st.MaxMS = ms(lat[len(lat)-1])
		}
	}
}

// saturatedP99 is the steady-state p99 above which the machine, not the rollout, is the
// bottleneck: an instance answers a read by primary key in a millisecond or two.
const saturatedP99 = 200 * time.Millisecond

// saturation says why the machine looks saturated before the rollout, or "".
func saturation(recs []Record, steadyP99MS float64, rolloutStart time.Duration) string {
	dropped := 0
	for _, r := range recs {
		if r.Start < rolloutStart && r.Err == errGeneratorSaturated {
			dropped++
		}
	}
	switch {
	case dropped > 0:
		return fmt.Sprintf("the load generator could not keep up before the rollout (%d requests not sent); lower --rate", dropped)
	case steadyP99MS > ms(saturatedP99):
		return fmt.Sprintf("steady-state p99 was %.0f ms before the rollout (over %s): the machine cannot carry this rate; lower --rate or --instances",
			steadyP99MS, saturatedP99)
	}
	return ""
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Summary writes a few human-readable lines about the run.
func (r *Report) Summary(w io.Writer) {
	mode := "with drain"
	if !r.Drain {
		mode = "WITHOUT drain"
	}
	fmt.Fprintf(w, "%d instances, %d req/s for %.0fs, router lag %.1fs (%s), %s\n",
		r.Instances, r.Rate, r.DurationS, r.RouterLagS, r.RouterMode, mode)
	fmt.Fprintf(w, "requests: %d total, %d failed", r.Total, r.Failed)
	if r.Failed > 0 {
		var parts []string
		for _, c := range sortedKeys(r.FailedByClass) {
			parts = append(parts, fmt.Sprintf("%s %d", c, r.FailedByClass[c]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if len(r.ServedBy) > 0 {
		var parts []string
		for _, v := range sortedKeys(r.ServedBy) {
			parts = append(parts, fmt.Sprintf("%s %d", v, r.ServedBy[v]))
		}
		fmt.Fprintf(w, "answered by release: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "latency (API): p50 %.1f ms, p99 %.1f ms, max %.1f ms; p99 steady %.1f ms, during rollout %.1f ms (%.2f×)\n",
		r.P50MS, r.P99MS, r.MaxMS, r.SteadyP99MS, r.RolloutP99MS, r.LatencyRatio())
	if r.RolloutRequests > 0 {
		fmt.Fprintf(w, "during the rollout, %d of %d API requests (%.2f%%) took over twice the steady p99 (the target allows under 1%%)\n",
			r.RolloutSlow, r.RolloutRequests, 100*float64(r.RolloutSlow)/float64(r.RolloutRequests))
	}
	fmt.Fprintf(w, "streams: %d, %d failed, p99 %.0f ms; worker tasks: %d queued, %d done, %d pending, %d done twice\n",
		r.Streams, r.StreamsFailed, r.StreamP99MS, r.TasksQueued, r.TasksDone, r.TasksPending, r.TasksDoubled)
	fmt.Fprintf(w, "rollout: %.1fs to %.1fs\n", r.RolloutStart, r.RolloutEnd)
	if r.Upgrade != nil {
		r.Upgrade.summary(w)
	}
	if r.Kube != nil {
		r.Kube.summary(w)
	}
	if r.Saturated != "" {
		fmt.Fprintf(w, "WARNING: the machine was saturated: %s\n", r.Saturated)
	}
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteSVG draws the timeline: p50 and p99 latency (log scale) and failed requests per
// interval, with the run's events marked.
func (r *Report) WriteSVG(path string) error {
	const (
		W                = 1000.0
		left, right      = 70.0, 20.0
		top, bottom      = 60.0, 110.0
		failH            = 60.0 // height of the failures strip below the latency plot
		minMS, maxMSAxis = 0.1, 100000.0
	)
	plotW := W - left - right
	const plotH = 270.0
	eventRows := max(1, (len(r.Events)+2)/3)
	H := top + plotH + bottom + float64(eventRows)*13
	span := float64(len(r.Timeline)) * r.BucketS
	if span <= 0 {
		span = 1
	}
	x := func(s float64) float64 { return left + s/span*plotW }
	hi := minMS * 10
	for _, b := range r.Timeline {
		hi = max(hi, b.P99MS, b.MaxMS)
	}
	hi = min(math.Pow(10, math.Ceil(math.Log10(hi))), maxMSAxis)
	y := func(v float64) float64 {
		v = max(v, minMS)
		return top + plotH - (math.Log10(v)-math.Log10(minMS))/(math.Log10(hi)-math.Log10(minMS))*plotH
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	mode := "with drain"
	if !r.Drain {
		mode = "without drain"
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14">tandem prove: %d instances, %d req/s, router lag %.1fs (%s), %s — %d requests, %d failed</text>`+"\n",
		left, r.Instances, r.Rate, r.RouterLagS, r.RouterMode, mode, r.Total, r.Failed)
	// Rollout window.
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#fff3cd"/>`+"\n",
		x(r.RolloutStart), top, max(1, x(r.RolloutEnd)-x(r.RolloutStart)), plotH)
	// The upgrade's steps, as a strip of bands along the bottom of the plot.
	if r.Upgrade != nil {
		colors := []string{"#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9"}
		for i, st := range r.Upgrade.Steps {
			x0, x1 := x(st.StartS), x(st.StartS+st.DurationS)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="14" fill="%s"><title>%s: %.1fs, p99 %.1f ms, %d of %d requests over 2× steady p99</title></rect>`+"\n",
				x0, top+plotH-14, max(1.5, x1-x0), colors[i%len(colors)], html.EscapeString(st.Step), st.DurationS, st.P99MS, st.Slow, st.Requests)
			switch label := html.EscapeString(st.Step); {
			case x1-x0 > 110:
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9">%s, p99 %.0f ms</text>`+"\n", x0+2, top+plotH-4, label, st.P99MS)
			case x1-x0 > 40:
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9">%s</text>`+"\n", x0+2, top+plotH-4, label)
			}
		}
	}
	// Axes and grid.
	for v := minMS; v <= hi*1.0001; v *= 10 {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%g ms</text>`+"\n", left-5, y(v)+4, v)
	}
	step := niceStep(span)
	for s := 0.0; s <= span; s += step {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#eee"/>`+"\n", x(s), x(s), top, top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%gs</text>`+"\n", x(s), top+plotH+failH+18, s)
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	// The target: twice the steady p99.
	if r.SteadyP99MS > 0 {
		ty := y(2 * r.SteadyP99MS)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6,4"/>`+"\n", left, W-right, ty, ty)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="9" fill="#d62728" text-anchor="end">2× steady p99 (%.1f ms)</text>`+"\n", W-right-4, ty-3, 2*r.SteadyP99MS)
	}
	// Latency lines.
	for _, line := range []struct {
		color string
		v     func(Bucket) float64
	}{{"#1f77b4", func(b Bucket) float64 { return b.P50MS }}, {"#ff7f0e", func(b Bucket) float64 { return b.P99MS }}} {
		var pts []string
		for _, bk := range r.Timeline {
			if bk.Requests == 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(bk.StartS+r.BucketS/2), y(line.v(bk))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", line.color, strings.Join(pts, " "))
	}
	// Failures strip.
	ft := top + plotH + 5
	maxFail := 1
	for _, bk := range r.Timeline {
		maxFail = max(maxFail, bk.Failed)
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, ft, plotW, failH-10)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">failed</text>`+"\n", left-5, ft+15)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">(max %d)</text>`+"\n", left-5, ft+28, maxFail)
	bw := max(1, plotW/float64(max(1, len(r.Timeline))))
	for _, bk := range r.Timeline {
		if bk.Failed == 0 {
			continue
		}
		h := float64(bk.Failed) / float64(maxFail) * (failH - 10)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728"/>`+"\n", x(bk.StartS), ft+failH-10-h, bw, h)
	}
	// Events: numbered marks on the plot, listed below it.
	for i, e := range r.Events {
		ex := x(e.AtS)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#555" stroke-dasharray="3,3"/>`+"\n", ex, ex, top, ft+failH-10)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9" text-anchor="middle" fill="#333">%d</text>`+"\n",
			ex, top-2-float64(i%3)*9, i+1)
	}
	listTop := top + plotH + failH + 40
	for i, e := range r.Events {
		col, row := i/eventRows, i%eventRows
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" fill="#333">%d. %.1fs %s</text>`+"\n",
			left+float64(col)*plotW/3, listTop+float64(row)*13, i+1, e.AtS, html.EscapeString(e.What))
	}
	// Legend.
	fmt.Fprintf(&b, `<text x="%.0f" y="38" fill="#1f77b4">— p50 latency (API)</text>`+"\n", W-right-330)
	fmt.Fprintf(&b, `<text x="%.0f" y="38" fill="#ff7f0e">— p99 latency (API)</text>`+"\n", W-right-200)
	fmt.Fprintf(&b, `<text x="%.0f" y="38" fill="#b8860b">▮ rollout</text>`+"\n", W-right-70)
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func niceStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300} {
		if span/s <= 12 {
			return s
		}
	}
	return 600
}
