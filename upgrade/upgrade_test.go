package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/haproxytest"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/proving"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/local"
)

const instanceEnv = "TANDEM_UPGRADE_TEST_INSTANCE"

func TestMain(m *testing.M) {
	if os.Getenv(instanceEnv) == "1" {
		// This process is an instance of the example app started by the local backend.
		os.Exit(proving.InstanceMain(context.Background(), os.Args[1:]))
	}
	pgtest.Main(m)
}

// env is one test's database, releases of the example and local backend directory.
type env struct {
	t    *testing.T
	url  string
	dir  string
	pool *pgxpool.Pool
	be   *local.Backend
}

func newEnv(t *testing.T) *env {
	t.Helper()
	haproxytest.Require(t)
	e := &env{t: t, url: pgtest.NewDatabase(t), dir: t.TempDir()}
	e.pool = pgtest.NewPool(t, e.url)
	if err := os.CopyFS(filepath.Join(e.dir, "releases"), catalog.ReleaseFiles); err != nil {
		t.Fatal(err)
	}
	e.be = e.backend()
	t.Cleanup(func() {
		e.be.Shutdown(context.Background())
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(e.dir, "local", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	return e
}

// backend returns a new local backend over the test's directory: a stand-in for the
// next tandem process, which adopts what the last one left running.
func (e *env) backend() *local.Backend {
	e.t.Helper()
	be, err := local.New(local.Options{Dir: filepath.Join(e.dir, "local"), RouterLag: 200 * time.Millisecond,
		Tandem: os.Args[0], Env: []string{instanceEnv + "=1"}, ReadyTimeout: 60 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	return be
}

// release reads release v of the example, with one instance per workload and a short
// drain.
func (e *env) release(v string) *upgrade.Release {
	e.t.Helper()
	rel, err := upgrade.ReadRelease(filepath.Join(e.dir, "releases", v))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range rel.Workloads {
		l := rel.Workloads[i].Local
		l.Instances = 1
		l.Command = append(l.Command, "--drain-delay", "300ms", "--shutdown-timeout", "5s")
	}
	rel.Timeouts.OldGone.Duration = time.Minute
	return rel
}

func (e *env) upgrader(opts upgrade.Options) *upgrade.Upgrader {
	e.t.Helper()
	opts.PostgresURL, opts.PollInterval = e.url, 100*time.Millisecond
	if opts.Backend == nil {
		opts.Backend = e.be
	}
	u, err := upgrade.Open(context.Background(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(u.Close)
	return u
}

// install installs release v1 with rows items.
func (e *env) install(rows int) {
	e.t.Helper()
	ctx := context.Background()
	rec, err := e.upgrader(upgrade.Options{}).Apply(ctx, e.release("v1"))
	if err != nil {
		e.t.Fatal(err)
	}
	pool, err := lifecycle.NewPool(ctx, e.url, rec.NewVersionSchema)
	if err != nil {
		e.t.Fatal(err)
	}
	defer pool.Close()
	if err := catalog.Seed(ctx, pool, rows); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, "ANALYZE items"); err != nil {
		e.t.Fatal(err)
	}
}

// alive returns the app versions and schema versions the registry shows alive.
func (e *env) alive() []string {
	e.t.Helper()
	vs, err := (&lifecycle.Registry{DB: e.pool}).Versions(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s@%s×%d", v.AppVersion, v.SchemaVersion, v.Instances))
	}
	return out
}

// served fetches an item through the router and returns the release that answered.
func (e *env) served() string {
	e.t.Helper()
	e.be.WaitRouter()
	// A reload returns once the new HAProxy process is started; the one it replaces
	// accepts new connections on the shared socket until the new one has taken it over
	// and it has handled its soft-stop signal, a moment later (longer on a busy machine).
	// Wait for that, or a request sent right after a roll may still reach an old,
	// draining instance through it.
	e.waitOneRouterProcess()
	// A new connection each time: an idle one may still be served by an HAProxy process
	// a reload replaced, with the servers it had.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(e.be.RouterURL() + "/api/items/1")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /api/items/1: %s: %s", resp.Status, b)
	}
	return resp.Header.Get(catalog.ReleaseHeader)
}

// waitOneRouterProcess waits until a single HAProxy process serves the test's router:
// the processes a reload replaced have exited, which a soft-stopped process without a
// connection does at once. After 10 s it goes on regardless (an old process may hold a
// long connection); the request that follows then says what answers.
func (e *env) waitOneRouterProcess() {
	e.t.Helper()
	dir := filepath.Join(e.dir, "local") + string(filepath.Separator)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if haproxyProcesses(e.t, dir) <= 1 {
			return
		}
	}
}

// haproxyProcesses counts the live HAProxy processes whose configuration is in dir.
func haproxyProcesses(t *testing.T, dir string) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue // gone meanwhile, or a zombie (whose cmdline is empty)
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "haproxy" && slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, dir) }) {
			n++
		}
	}
	return n
}

// checkUpgraded asserts that v2 is done: recorded, alone in the registry, serving.
func (e *env) checkUpgraded(rec *upgrade.Record) {
	e.t.Helper()
	if rec.Status != upgrade.StatusDone {
		e.t.Errorf("upgrade %d is %s at %s (%s)", rec.ID, rec.Status, rec.Step, rec.Error)
	}
	want := "v2@" + rec.NewVersionSchema
	for _, a := range e.alive() {
		if !strings.HasPrefix(a, want+"×") {
			e.t.Errorf("alive after the upgrade: %v, want only %s", e.alive(), want)
			break
		}
	}
	if got := e.served(); got != "v2" {
		e.t.Errorf("served by %q, want v2", got)
	}
	m, err := migrate.Open(context.Background(), e.url, migrate.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer m.Close(context.Background())
	st, err := m.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if st.State != "complete" || st.VersionSchema != rec.NewVersionSchema {
		e.t.Errorf("engine: %s at %s, want complete at %s", st.State, st.VersionSchema, rec.NewVersionSchema)
	}
}

var errCrash = errors.New("simulated crash")

// TestResumeAfterEachStep stops the upgrade before each of its steps, as a crash there
// would, then resumes it with a new backend and a new Upgrader (a new process) to the
// end.
func TestResumeAfterEachStep(t *testing.T) {
	steps := upgrade.StepsOf(&upgrade.Release{Maintenance: upgrade.MaintenanceExpand,
		Workloads: []upgrade.Workload{{Name: "api", Order: 1}, {Name: "worker", Order: 2}}})
	for _, stop := range steps[:len(steps)-1] {
		t.Run(strings.ReplaceAll(stop, "/", "-"), func(t *testing.T) {
			e := newEnv(t)
			e.install(2000)
			ctx := context.Background()
			u := e.upgrader(upgrade.Options{BeforeStep: func(step string) error {
				if step == stop {
					return errCrash
				}
				return nil
			}})
			rec, err := u.Apply(ctx, e.release("v2"))
			if !errors.Is(err, errCrash) {
				t.Fatalf("apply: %v, want the crash", err)
			}
			if rec.Status != upgrade.StatusRunning || rec.Step != stop || !strings.Contains(rec.Error, "simulated crash") {
				t.Fatalf("recorded %s at %s (%q), want running at %s", rec.Status, rec.Step, rec.Error, stop)
			}
			// Another apply is refused while this one is unfinished.
			if _, err := e.upgrader(upgrade.Options{}).Apply(ctx, e.release("v2")); err == nil || !strings.Contains(err.Error(), "resume") {
				t.Errorf("a second apply: %v, want a refusal that says resume", err)
			}
			e.be = e.backend()
			rec, err = e.upgrader(upgrade.Options{Backend: e.be}).Resume(ctx, "catalog")
			if err != nil {
				t.Fatal(err)
			}
			e.checkUpgraded(rec)
		})
	}
}

// TestResumeMidStep interrupts the upgrade in the middle of the backfill and in the
// middle of the roll, then resumes it.
func TestResumeMidStep(t *testing.T) {
	tests := []struct {
		name string
		// stop returns whether to interrupt at this progress line.
		stop func(step, line string) bool
	}{
		{"backfill", func(step, line string) bool { return step == upgrade.StepExpand && strings.HasPrefix(line, "backfill") }},
		// Interrupted while the first new instance starts: the resumed roll adopts it.
		{"roll", func(step, line string) bool {
			return step == "roll/api" && strings.Contains(line, "0 of 1 new ready, 1 old serving")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.install(60_000)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopped := false
			u := e.upgrader(upgrade.Options{
				OnProgress: func(step, line string) {
					if !stopped && tc.stop(step, line) {
						stopped = true
						cancel()
					}
				},
				Migrate: migrate.Options{BackfillBatchTime: 5 * time.Millisecond, BackfillWorkers: 1},
			})
			rec, err := u.Apply(ctx, e.release("v2"))
			if err == nil || !stopped {
				t.Fatalf("apply was not interrupted (%v, at %v)", err, rec)
			}
			e.be = e.backend()
			rec, err = e.upgrader(upgrade.Options{Backend: e.be}).Resume(context.Background(), "catalog")
			if err != nil {
				t.Fatal(err)
			}
			e.checkUpgraded(rec)
			var n int64
			if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM items WHERE label IS NULL").Scan(&n); err != nil || n != 0 {
				t.Errorf("%d rows without the computed column (%v)", n, err)
			}
		})
	}
}

// TestAbort aborts before contract (everything goes back to v1) and after it (refused,
// and resume finishes the upgrade).
func TestAbort(t *testing.T) {
	t.Run("before contract", func(t *testing.T) {
		e := newEnv(t)
		e.install(1000)
		ctx := context.Background()
		u := e.upgrader(upgrade.Options{BeforeStep: func(step string) error {
			if step == upgrade.StepWaitOldGone {
				return errCrash
			}
			return nil
		}})
		if _, err := u.Apply(ctx, e.release("v2")); !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
		if got := e.served(); got != "v2" {
			t.Fatalf("served by %q before the abort, want v2", got)
		}
		if up, err := upgrade.InProgress(ctx, e.pool, "", "public"); err != nil || up == nil || up.Migration == "" {
			t.Fatalf("in progress: %+v (%v), want the upgrade with its migration", up, err)
		}
		rec, err := e.upgrader(upgrade.Options{}).Abort(ctx, "catalog")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != upgrade.StatusAborted {
			t.Errorf("status %s", rec.Status)
		}
		if up, err := upgrade.InProgress(ctx, e.pool, "", "public"); err != nil || up != nil {
			t.Errorf("in progress after the abort: %+v (%v)", up, err)
		}
		if got := e.served(); got != "v1" {
			t.Errorf("served by %q after the abort, want v1", got)
		}
		for _, a := range e.alive() {
			if !strings.HasPrefix(a, "v1@"+rec.OldVersionSchema) {
				t.Errorf("alive after the abort: %v", e.alive())
			}
		}
		var exists bool
		if err := e.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", rec.NewVersionSchema).Scan(&exists); err != nil || exists {
			t.Errorf("version schema %s still exists after the abort (%v)", rec.NewVersionSchema, err)
		}
		// The aborted release can be applied again.
		rec, err = e.upgrader(upgrade.Options{}).Apply(ctx, e.release("v2"))
		if err != nil {
			t.Fatal(err)
		}
		e.checkUpgraded(rec)
	})
	t.Run("after contract", func(t *testing.T) {
		e := newEnv(t)
		e.install(1000)
		ctx := context.Background()
		rel := e.release("v2")
		rel.Maintenance = upgrade.MaintenanceUpgrade // a step after contract
		u := e.upgrader(upgrade.Options{BeforeStep: func(step string) error {
			if step == upgrade.StepMaintenanceOff {
				return errCrash
			}
			return nil
		}})
		if _, err := u.Apply(ctx, rel); !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
		_, err := e.upgrader(upgrade.Options{}).Abort(ctx, "catalog")
		if !errors.Is(err, upgrade.ErrContractBegun) || !strings.Contains(err.Error(), "resume") {
			t.Fatalf("abort after contract: %v", err)
		}
		rec, err := e.upgrader(upgrade.Options{}).Resume(ctx, "catalog")
		if err != nil {
			t.Fatal(err)
		}
		e.checkUpgraded(rec)
		st, err := lifecycle.GetMaintenance(ctx, e.pool, "")
		if err != nil || st.Enabled {
			t.Errorf("maintenance %+v (%v) after the upgrade", st, err)
		}
	})
}

// TestPlanVerdicts checks that plan refuses, with the reason, what cannot be done
// without downtime, and accepts what can.
func TestPlanVerdicts(t *testing.T) {
	e := newEnv(t)
	e.install(1000)
	ctx := context.Background()
	u := e.upgrader(upgrade.Options{})
	plan := func(rel *upgrade.Release) *upgrade.Plan { t.Helper(); return mustPlan(t, u, rel) }
	wantProblem := func(p *upgrade.Plan, want string) {
		t.Helper()
		if p.Possible || !strings.Contains(strings.Join(p.Problems, "\n"), want) {
			t.Errorf("plan: possible %v, problems %q; want one saying %q", p.Possible, p.Problems, want)
		}
	}

	p := plan(e.release("v2"))
	if !p.Possible || p.From != "v1" || len(p.Pending) != 4 || len(p.Backfills) == 0 { // core's 3, reviews' 1
		t.Errorf("v1 -> v2: %+v", p)
	}
	for _, b := range p.Backfills {
		if b.Table != "items" || b.Rows < 900 {
			t.Errorf("backfill estimate %+v, want items with ~1000 rows", b)
		}
	}

	// The window: v3 may only run beside v2, and v1 runs.
	wantProblem(plan(e.release("v3")), "older than this release's compatible-from v2")

	// A pending migration that does not validate against the live schema.
	bad := e.release("v2")
	mig := filepath.Join(bad.Dir, "migrations", "02_9_bad.json")
	if err := os.WriteFile(mig, []byte(`{"operations": [{"drop_column": {"table": "items", "column": "nope"}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wantProblem(plan(bad), "do not validate")
	if err := os.Remove(mig); err != nil {
		t.Fatal(err)
	}

	// Kubernetes manifests that would stall the roll (tandem check's rwo-volume).
	kube := e.release("v2")
	kube.Backend = "kube"
	kube.Manifests, _ = filepath.Abs(filepath.Join("kube", "check", "testdata", "rules", "rwo-volume.yaml"))
	if p := plan(kube); p.ManifestCheck == nil {
		t.Error("plan of a kube release with manifests: no manifest check")
	} else {
		wantProblem(p, "[rwo-volume]")
	}

	// An instance of a version older than the window, seen in the registry.
	reg := &lifecycle.Registry{DB: e.pool}
	g, err := reg.Register(ctx, lifecycle.Instance{App: "catalog", Role: "api", AppVersion: "v0", SchemaVersion: "public"})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(plan(e.release("v2")), "catalog v0 are running, older than")
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Another migration in progress.
	m, err := migrate.Open(ctx, e.url, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	other, err := migrate.Parse("other.json", "99_other", []byte(`{"operations": [{"add_column": {"table": "tasks", "column": {"name": "x", "type": "int", "nullable": true}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, other); err != nil {
		t.Fatal(err)
	}
	wantProblem(plan(e.release("v2")), "migration 99_other is in progress")
	if _, err := u.Apply(ctx, e.release("v2")); err == nil {
		t.Error("apply went ahead with another migration in progress")
	} else if pe := (*upgrade.PlanError)(nil); !errors.As(err, &pe) {
		t.Errorf("apply: %v, want a *PlanError", err)
	}
	if err := m.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Another upgrade holding the lock.
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('tandem.upgrade:catalog', 0))"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Apply(ctx, e.release("v2")); !errors.Is(err, upgrade.ErrBusy) {
		t.Errorf("apply beside a held lock: %v, want ErrBusy", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended('tandem.upgrade:catalog', 0))"); err != nil {
		t.Fatal(err)
	}
	if p := plan(e.release("v2")); !p.Possible {
		t.Errorf("v1 -> v2 after the checks: %q", p.Problems)
	}
}

// TestStatus shows the timeline and the instances.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	e.install(100)
	rep, err := e.upgrader(upgrade.Options{}).Status(context.Background(), "catalog")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Upgrade.Status != upgrade.StatusDone || len(rep.Upgrade.Events) < 8 || len(rep.Workloads) != 2 {
		t.Fatalf("status: %+v", rep)
	}
	for _, w := range rep.Workloads {
		if len(w.Instances) != 1 || w.Instances[0].Release != "v1" || w.Instances[0].State != upgrade.InstanceReady {
			t.Errorf("workload %s: %+v", w.Name, w.Instances)
		}
	}
}

// mustPlan is u's plan for rel; an error ends the test.
func mustPlan(t *testing.T, u *upgrade.Upgrader, rel *upgrade.Release) *upgrade.Plan {
	t.Helper()
	p, err := u.Plan(context.Background(), rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLockLost ends the session that holds the upgrade lock in the middle of an upgrade,
// as a server restart would: the upgrade stops at its step with ErrLockLost instead of
// running on unfenced, and resume finishes it.
func TestLockLost(t *testing.T) {
	e := newEnv(t)
	e.install(2000)
	ctx := context.Background()
	u := e.upgrader(upgrade.Options{BeforeStep: func(step string) error {
		if step != upgrade.StepExpand {
			return nil
		}
		var n int
		err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
			WHERE locktype = 'advisory' AND granted
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
		if err != nil || n != 1 {
			return fmt.Errorf("terminate the lock's session: %d sessions, %v", n, err)
		}
		time.Sleep(3 * time.Second) // past the lock's check
		return nil
	}})
	rec, err := u.Apply(ctx, e.release("v2"))
	if !errors.Is(err, upgrade.ErrLockLost) {
		t.Fatalf("apply: %v, want ErrLockLost", err)
	}
	if rec.Status != upgrade.StatusRunning || rec.Step != upgrade.StepExpand || !strings.Contains(rec.Error, "lost the upgrade lock") {
		t.Fatalf("recorded %s at %s (%q), want running at %s with the lost lock", rec.Status, rec.Step, rec.Error, upgrade.StepExpand)
	}
	e.be = e.backend()
	rec, err = e.upgrader(upgrade.Options{Backend: e.be}).Resume(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	e.checkUpgraded(rec)
}

// TestPlanDroppedWorkload: a release that drops a workload whose instances still run is
// refused by plan, naming the workload, since nothing would stop them before contract.
func TestPlanDroppedWorkload(t *testing.T) {
	e := newEnv(t)
	e.install(100)
	file := filepath.Join(e.dir, "releases", "v2", "tandem.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text, _, ok := strings.Cut(string(b), "  - name: worker\n")
	if !ok {
		t.Fatal("release v2 has no worker workload to drop")
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, e.upgrader(upgrade.Options{}), e.release("v2"))
	if p.Possible || !slices.ContainsFunc(p.Problems, func(s string) bool { return strings.Contains(s, "workload worker of release v1 is not in release v2") }) {
		t.Errorf("plan without the worker: possible %v, problems %q", p.Possible, p.Problems)
	}
}
