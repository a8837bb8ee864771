package proving

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/haproxytest"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

const instanceEnv = "TANDEM_PROVING_TEST_INSTANCE"

func TestMain(m *testing.M) {
	if os.Getenv(instanceEnv) == "1" {
		// This process is an instance of the example app started by Run.
		os.Exit(InstanceMain(context.Background(), os.Args[1:]))
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
	haproxytest.Require(t)
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
			streams := 0.05
			if tc.noDrain {
				// HAProxy redispatches requests refused by a dead server, so what fails
				// without drain is what was in flight on it: keep streams in flight on
				// every instance, or the control proves nothing by chance.
				streams = 0.3
			}
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
				StreamShare:     streams,
				StreamDuration:  time.Second,
				TaskRate:        5,
				Tandem:          os.Args[0],
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
				dumpLogs(t, dir)
			}
		})
	}
}

// dumpLogs logs the run's HAProxy and instance logs.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "local", "*.log"))
	for _, f := range logs {
		if b, err := os.ReadFile(f); err == nil {
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s:\n%s", filepath.Base(f), b)
		}
	}
}

// TestProveUpgradeCI is a CI-sized proving run of a real upgrade, v1 -> v2 of the
// example: rename, a NOT NULL column computed by a backfill, a type change, under load
// through a real HAProxy with a lagging router. No request may fail, no task may be
// lost, no row may change, and contract must come after the last v1 instance left the
// registry.
func TestProveUpgradeCI(t *testing.T) {
	haproxytest.Require(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Instances:       2,
		Rate:            40,
		Duration:        12 * time.Second,
		RolloutAt:       3 * time.Second,
		RouterLag:       time.Second,
		DrainDelay:      4 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		StreamShare:     0.05,
		StreamDuration:  500 * time.Millisecond,
		WriteShare:      0.2,
		TaskRate:        5,
		Rows:            20_000,
		Upgrade:         "v2",
		Tandem:          os.Args[0],
		InstanceEnv:     []string{instanceEnv + "=1"},
		PostgresURL:     pgtest.NewDatabase(t),
		WorkDir:         dir,
		Logger:          slog.New(slog.NewTextHandler(logWriter{t}, nil)),
	})
	u := checkUpgradeRun(t, dir, rep, err)
	if rep.TasksPending != 0 || rep.TasksDoubled != 0 || rep.TasksDone == 0 {
		t.Errorf("tasks: %d done, %d pending, %d done twice", rep.TasksDone, rep.TasksPending, rep.TasksDoubled)
	}
	if !u.RowsIntact || u.ChecksumBefore.Rows < 20_000 {
		t.Errorf("rows: before %+v, after %+v", u.ChecksumBefore, u.ChecksumAfter)
	}
	if u.LastOldSeenS <= 0 || u.ContractAtS <= 0 || u.ContractAtS <= u.LastOldSeenS || !u.ContractAfterOldGone {
		t.Errorf("contract began at %.2fs, a v1 instance was last seen in the registry at %.2fs", u.ContractAtS, u.LastOldSeenS)
	}
	var steps []string
	for _, s := range u.Steps {
		steps = append(steps, s.Step)
	}
	want := []string{"preflight", "maintenance-on", "expand", "maintenance-off", "roll/api", "roll/worker", "wait-old-gone", "contract"}
	if strings.Join(steps, " ") != strings.Join(want, " ") {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if u.OldVersionSchema == u.NewVersionSchema {
		t.Errorf("schema version did not change: %s", u.NewVersionSchema)
	}
	if t.Failed() {
		dumpLogs(t, dir)
	}
}

// TestProvePathsCI is a CI-sized proving run of the upgrade paths under load through a
// real HAProxy: v1 -> v3 in two hops (v3 is compatible from v2 only), and a deferred
// contract: v2 with its contract deferred, the app rolled back to v1 and forward again
// with no database change, then v3, which completes v2's contract first. No request may
// fail, no row may change, and every contract must come after the last instance of the
// release whose schema version it drops.
func TestProvePathsCI(t *testing.T) {
	haproxytest.Require(t)
	tests := []struct {
		name     string
		upgrade  string
		then     []string
		deferred []string
		hops     []string
		// contracts are the contracts that must run, by the release they drop.
		contracts []string
	}{
		{"two hops", "v3", nil, nil, []string{"v1 -> v2 (rolling)", "v2 -> v3 (rolling)"}, []string{"v1", "v2"}},
		{"deferred contract", "v2", []string{"v1", "v2", "v3"}, []string{"v2"},
			[]string{"v1 -> v2 (rolling)", "v2 -> v1 (rollback)", "v1 -> v2 (rolling)", "v2 -> v3 (rolling)"}, []string{"v1", "v2"}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Options{
				Instances: 2, Rate: 40, Duration: 12 * time.Second, RolloutAt: 3 * time.Second,
				// The drain covers the router's lag (1 s), its coalescing (up to 1 s more)
				// and a keep-alive connection the old HAProxy still holds (the client
				// drops idle ones after 1 s), as in TestProveUpgradeCI.
				RouterLag: time.Second, DrainDelay: 4 * time.Second, ShutdownTimeout: 30 * time.Second,
				StreamShare: 0.05, StreamDuration: 500 * time.Millisecond, WriteShare: 0.2, TaskRate: 5, Rows: 5_000,
				Upgrade: tc.upgrade, Then: tc.then, DeferContract: tc.deferred,
				Tandem: os.Args[0], InstanceEnv: []string{instanceEnv + "=1"}, PostgresURL: pgtest.NewDatabase(t),
				WorkDir: dir, Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil)),
			})
			u := checkUpgradeRun(t, dir, rep, err)
			if !u.RowsIntact || u.ChecksumBefore.Rows < 5_000 {
				t.Errorf("rows: before %+v, after %+v", u.ChecksumBefore, u.ChecksumAfter)
			}
			if strings.Join(u.Hops, ", ") != strings.Join(tc.hops, ", ") {
				t.Errorf("hops %v, want %v", u.Hops, tc.hops)
			}
			var dropped []string
			for _, c := range u.Contracts {
				dropped = append(dropped, c.OldRelease)
				if !c.After || c.LastOldSeenS <= 0 {
					t.Errorf("%s began at %.2fs, a %s instance was last seen in the registry at %.2fs", c.Contract, c.AtS, c.OldRelease, c.LastOldSeenS)
				}
			}
			if strings.Join(dropped, " ") != strings.Join(tc.contracts, " ") || !u.ContractAfterOldGone {
				t.Errorf("contracts dropped %v, want %v (all after: %v)", dropped, tc.contracts, u.ContractAfterOldGone)
			}
			if t.Failed() {
				dumpLogs(t, dir)
			}
		})
	}
}

// checkUpgradeRun checks what every proof of an upgrade under load must show: the run
// ended without error, with an upgrade report, and no request failed. It logs the
// summary and returns the upgrade's report.
func checkUpgradeRun(t *testing.T, dir string, rep *Report, err error) *UpgradeReport {
	t.Helper()
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	var sum strings.Builder
	rep.Summary(&sum)
	t.Log("\n" + sum.String())
	if rep.Upgrade == nil {
		t.Fatal("the report has no upgrade")
	}
	if rep.Failed != 0 {
		t.Errorf("%d requests failed: %v; first: %s", rep.Failed, rep.FailedByClass, strings.Join(rep.FirstErrors, "; "))
	}
	return rep.Upgrade
}
