package proving

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

const instanceEnv = "TANDEM_PROVING_TEST_INSTANCE"

func TestMain(m *testing.M) {
	if os.Getenv(instanceEnv) == "1" {
		// This process is an instance of the example app started by Run.
		os.Exit(catalog.Main(context.Background(), "catalog", os.Args[1:]))
	}
	pgtest.Main(m)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestProveCI is a CI-sized proving run: two instances, a low rate, a short router lag,
// a rolling restart through a real HAProxy. With drain, no request may fail.
func TestProveCI(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
		if _, err := lookHAProxy(); err != nil {
			t.Skip("haproxy is not installed")
		}
	}
	tests := []struct {
		name    string
		mode    string
		noDrain bool
	}{
		{"reload", RouterReload, false},
		{"runtime API", RouterRuntime, false},
		// The control: without drain the harness must see failures, or a zero above
		// would prove nothing.
		{"reload without drain", RouterReload, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Options{
				Instances:       2,
				Rate:            40,
				Duration:        10 * time.Second,
				RolloutAt:       3 * time.Second,
				RouterLag:       time.Second,
				RouterMode:      tc.mode,
				NoDrain:         tc.noDrain,
				DrainDelay:      5 * time.Second, // router lag + a wide margin for a loaded machine
				ShutdownTimeout: 30 * time.Second,
				StreamShare:     0.05,
				StreamDuration:  500 * time.Millisecond,
				TaskRate:        5,
				InstanceCommand: []string{os.Args[0]},
				InstanceEnv:     []string{instanceEnv + "=1"},
				PostgresURL:     pgtest.NewDatabase(t),
				WorkDir:         dir,
				Logger:          slog.New(slog.NewTextHandler(logWriter{t}, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			var sum strings.Builder
			rep.Summary(&sum)
			t.Log("\n" + sum.String())
			if rep.Total < 200 {
				t.Errorf("only %d requests were made", rep.Total)
			}
			switch {
			case tc.noDrain && rep.Failed == 0:
				t.Errorf("no request failed without drain: the harness does not see failures")
			case !tc.noDrain && rep.Failed != 0:
				t.Errorf("%d requests failed with drain: %v; first: %s", rep.Failed, rep.FailedByClass,
					strings.Join(rep.FirstErrors, "; "))
			}
			if rep.Streams == 0 {
				t.Error("no streaming request was made")
			}
			if rep.TasksPending != 0 {
				t.Errorf("%d worker tasks still pending", rep.TasksPending)
			}
			if rep.RolloutEnd <= rep.RolloutStart {
				t.Errorf("rollout window %.1f..%.1f", rep.RolloutStart, rep.RolloutEnd)
			}
			json, svg := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.svg")
			if err := rep.WriteJSON(json); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteSVG(svg); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(json)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{`"total"`, `"failed"`, `"failed_by_class"`, `"p50_ms"`, `"p99_ms"`,
				`"max_ms"`, `"steady_p99_ms"`, `"rollout_p99_ms"`} {
				if !strings.Contains(string(b), key) {
					t.Errorf("report lacks %s", key)
				}
			}
			if t.Failed() {
				for _, f := range []string{"haproxy.log", "i1.log", "i3.log"} {
					if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
						t.Logf("%s:\n%s", f, b)
					}
				}
			}
		})
	}
}
