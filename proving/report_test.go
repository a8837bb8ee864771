package proving

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuildReport(t *testing.T) {
	var recs []Record
	// 10 s at 100 req/s: 1 ms each, 20 ms during the rollout (4 s to 6 s), a few failures.
	for i := 0; i < 1000; i++ {
		at := time.Duration(i) * 10 * time.Millisecond
		r := Record{Start: at, Kind: "api", Status: 200, Latency: time.Millisecond}
		if at >= 4*time.Second && at < 6*time.Second {
			r.Latency = 20 * time.Millisecond
		}
		switch i {
		case 450:
			r.Class, r.Status = Class5xx, 503
		case 460:
			r.Class, r.Status, r.Err = ClassRefused, 0, "connection refused"
		case 470:
			r.Kind, r.Class, r.Err = "stream", ClassTruncated, "unexpected EOF"
		}
		recs = append(recs, r)
	}
	events := []Event{{0, "load starts"}, {4, "rollout starts"}, {4.5, "SIGTERM i1"}, {6, "rollout over"}}
	rep := buildReport(Options{Instances: 2, Rate: 100, RouterMode: RouterReload}, recs, events, 4*time.Second, 6*time.Second)
	// Two steps: 4 s to 5 s and 5 s to 6.5 s; the requests of 6 s to 6.5 s took 1 ms.
	rep.Upgrade = &UpgradeReport{Steps: []StepTiming{{Step: "expand", StartS: 4, DurationS: 1}, {Step: "roll/api", StartS: 5, DurationS: 1.5}}}
	rep.stepLatency(recs)

	tests := []struct {
		name      string
		got, want float64
	}{
		{"total", float64(rep.Total), 1000},
		{"failed", float64(rep.Failed), 3},
		{"5xx", float64(rep.FailedByClass[Class5xx]), 1},
		{"refused", float64(rep.FailedByClass[ClassRefused]), 1},
		{"truncated", float64(rep.FailedByClass[ClassTruncated]), 1},
		{"streams", float64(rep.Streams), 1},
		{"p50", rep.P50MS, 1},
		{"steady p99", rep.SteadyP99MS, 1},
		{"rollout p99", rep.RolloutP99MS, 20},
		{"max", rep.MaxMS, 20},
		{"rollout requests", float64(rep.RolloutRequests), 200}, // 4 s to 6 s inclusive, less the stream
		{"rollout slow", float64(rep.RolloutSlow), 199},         // all but the one at 6 s (1 ms)
		{"expand requests", float64(rep.Upgrade.Steps[0].Requests), 99},
		{"expand p99", rep.Upgrade.Steps[0].P99MS, 20},
		{"expand slow", float64(rep.Upgrade.Steps[0].Slow), 99},
		{"roll requests", float64(rep.Upgrade.Steps[1].Requests), 150},
		{"roll p99", rep.Upgrade.Steps[1].P99MS, 20},
		{"roll max", rep.Upgrade.Steps[1].MaxMS, 20},
		{"roll slow", float64(rep.Upgrade.Steps[1].Slow), 100},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if len(rep.Timeline) != 40 || rep.Timeline[18].Failed != 3 {
		t.Errorf("timeline: %d buckets, bucket 18 has %d failures", len(rep.Timeline), rep.Timeline[18].Failed)
	}

	out := filepath.Join(t.TempDir(), "r.svg")
	if p := os.Getenv("PROVING_SVG_OUT"); p != "" {
		out = p
	}
	if err := rep.WriteSVG(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
	}
	if !strings.Contains(string(b), "SIGTERM i1") {
		t.Error("SVG lacks the events")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{io.ErrUnexpectedEOF, ClassReset},
		{os.ErrDeadlineExceeded, ClassTimeout},
		{os.ErrNotExist, ClassOther},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
