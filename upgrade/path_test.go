package upgrade_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade"
)

// catalog returns the example's releases as a catalog, each changed by mod if given.
func (e *env) catalog(mod func(*upgrade.Release)) *upgrade.Catalog {
	e.t.Helper()
	var rels []*upgrade.Release
	for _, v := range catalog.Releases {
		r := e.release(v)
		if mod != nil {
			mod(r)
		}
		rels = append(rels, r)
	}
	cat, err := upgrade.NewCatalog(rels...)
	if err != nil {
		e.t.Fatal(err)
	}
	return cat
}

// engine returns the engine's status of the example's schema.
func (e *env) engine() *migrate.Status {
	e.t.Helper()
	m, err := migrate.Open(context.Background(), e.url, migrate.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer m.Close(context.Background())
	st, err := m.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// checkRuns asserts that only release v runs, on schema version vs, and serves.
func (e *env) checkRuns(v, vs string) {
	e.t.Helper()
	for _, a := range e.alive() {
		if !strings.HasPrefix(a, v+"@"+vs+"×") {
			e.t.Errorf("alive: %v, want only %s@%s", e.alive(), v, vs)
			break
		}
	}
	if got := e.served(); got != v {
		e.t.Errorf("served by %q, want %s", got, v)
	}
}

func (e *env) schemaExists(name string) bool {
	e.t.Helper()
	var ok bool
	if err := e.pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok); err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// TestPathPlan plans v1 -> v3 through the catalog: two hops, as v3 is compatible from
// v2 only; without the catalog, v3 alone is refused with the reason.
func TestPathPlan(t *testing.T) {
	e := newEnv(t)
	e.install(100)
	ctx := context.Background()
	u := e.upgrader(upgrade.Options{})
	pp, err := u.PlanPath(ctx, e.catalog(nil), "v3", upgrade.PathOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var hops []string
	for _, h := range pp.Hops {
		hops = append(hops, h.Release)
	}
	if !pp.Possible || !slices.Equal(hops, []string{"v2", "v3"}) || pp.To != "v2" || len(pp.Pending) != 4 { // core's three and the reviews plugin's one
		t.Errorf("path v1 -> v3: possible %v %q, hops %v, first hop to %s with %v pending", pp.Possible, pp.Problems, hops, pp.To, pp.Pending)
	}
	for _, h := range pp.Hops {
		if h.Mode != upgrade.ModeRolling || !slices.Contains(h.Steps, upgrade.StepContract) {
			t.Errorf("hop %s: %s, steps %v; want a whole rolling upgrade", h.Release, h.Mode, h.Steps)
		}
	}
	only, err := upgrade.NewCatalog(e.release("v3"))
	if err != nil {
		t.Fatal(err)
	}
	pp, err = u.PlanPath(ctx, only, "v3", upgrade.PathOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pp.Possible || !strings.Contains(strings.Join(pp.Problems, "\n"), "no zero-downtime path from v1 to v3") {
		t.Errorf("v3 alone: possible %v, problems %q; want the missing path named", pp.Possible, pp.Problems)
	}
	if _, err := u.ApplyPath(ctx, only, "v3", upgrade.PathOptions{}); !errors.As(err, new(*upgrade.PlanError)) {
		t.Errorf("apply v3 alone: %v, want a *PlanError", err)
	}
	if got := e.served(); got != "v1" {
		t.Errorf("served by %q after the refusal, want v1", got)
	}
}

// TestPathResume runs v1 -> v3 (two hops) and stops it, as a crash would, between the
// hops and inside the second one; a new process (backend and Upgrader) resumes the path
// to its end.
func TestPathResume(t *testing.T) {
	tests := []struct {
		name string
		opts func(crash func()) upgrade.Options
	}{
		{"between hops", func(crash func()) upgrade.Options {
			return upgrade.Options{BeforeHop: func(hop int) error {
				if hop == 1 {
					crash()
					return errCrash
				}
				return nil
			}}
		}},
		{"inside the second hop", func(crash func()) upgrade.Options {
			rolls := 0
			return upgrade.Options{BeforeStep: func(step string) error {
				if step == "roll/api" {
					if rolls++; rolls == 2 {
						crash()
						return errCrash
					}
				}
				return nil
			}}
		}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			e := newEnv(t)
			e.install(2000)
			ctx := context.Background()
			crashed := false
			u := e.upgrader(tc.opts(func() { crashed = true }))
			path, err := u.ApplyPath(ctx, e.catalog(nil), "v3", upgrade.PathOptions{})
			if !errors.Is(err, errCrash) || !crashed {
				t.Fatalf("apply: %v, want the crash", err)
			}
			if path.ID == 0 || path.Status != upgrade.StatusRunning || len(path.Upgrades) == 0 || path.Upgrades[0].Status != upgrade.StatusDone {
				t.Fatalf("path after the crash: %+v", path)
			}
			// A new apply is refused while the path is unfinished.
			if _, err := e.upgrader(upgrade.Options{}).ApplyPath(ctx, e.catalog(nil), "v3", upgrade.PathOptions{}); err == nil || !strings.Contains(err.Error(), "resume") {
				t.Errorf("a second apply: %v, want a refusal that says resume", err)
			}
			rep, err := e.upgrader(upgrade.Options{}).Status(ctx, "catalog")
			if err != nil || rep.Path == nil || rep.Path.ID != path.ID || !slices.Equal(rep.Path.Versions, []string{"v2", "v3"}) {
				t.Fatalf("status during the path: %+v (%v)", rep, err)
			}

			e.be = e.backend()
			rec, err := e.upgrader(upgrade.Options{Backend: e.be}).Resume(ctx, "catalog")
			if err != nil {
				t.Fatal(err)
			}
			if rec.To != "v3" || rec.Status != upgrade.StatusDone || rec.PathID != path.ID {
				t.Fatalf("resumed: upgrade %d to %s, %s (path %d)", rec.ID, rec.To, rec.Status, rec.PathID)
			}
			e.checkRuns("v3", rec.NewVersionSchema)
			if st := e.engine(); st.State != "complete" || st.VersionSchema != rec.NewVersionSchema {
				t.Errorf("engine: %s at %s, want complete at %s", st.State, st.VersionSchema, rec.NewVersionSchema)
			}
			rep, err = e.upgrader(upgrade.Options{}).Status(ctx, "catalog")
			if err != nil || rep.Path == nil || rep.Path.Status != upgrade.StatusDone || len(rep.Path.Upgrades) != 2 {
				t.Fatalf("status after the path: %+v (%v)", rep.Path, err)
			}
			for i, want := range []string{"v2", "v3"} {
				if up := rep.Path.Upgrades[i]; up.To != want || up.Status != upgrade.StatusDone {
					t.Errorf("hop %d: to %s, %s; want %s, done", i+1, up.To, up.Status, want)
				}
			}
			var n int64
			if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM items WHERE label IS NULL").Scan(&n); err != nil || n != 0 {
				t.Errorf("%d rows without label (%v)", n, err)
			}
		})
	}
}

// TestPathAbortBetweenHops stops a path between its hops with Abort: the path ends there,
// the first hop stays done, and a new apply starts from what runs.
func TestPathAbortBetweenHops(t *testing.T) {
	e := newEnv(t)
	e.install(500)
	ctx := context.Background()
	u := e.upgrader(upgrade.Options{BeforeHop: func(hop int) error {
		if hop == 1 {
			return errCrash
		}
		return nil
	}})
	path, err := u.ApplyPath(ctx, e.catalog(nil), "v3", upgrade.PathOptions{})
	if !errors.Is(err, errCrash) {
		t.Fatalf("apply: %v, want the crash", err)
	}
	rec, err := e.upgrader(upgrade.Options{}).Abort(ctx, "catalog")
	if err != nil || rec == nil || rec.To != "v2" || rec.Status != upgrade.StatusDone {
		t.Fatalf("abort between hops: %+v (%v), want the first hop's upgrade, done", rec, err)
	}
	rep, err := e.upgrader(upgrade.Options{}).Status(ctx, "catalog")
	if err != nil || rep.Path == nil || rep.Path.ID != path.ID || rep.Path.Status != upgrade.StatusAborted {
		t.Fatalf("status after the abort: %+v (%v)", rep.Path, err)
	}
	e.checkRuns("v2", rec.NewVersionSchema)
	if _, err := e.upgrader(upgrade.Options{}).Resume(ctx, "catalog"); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume after the abort: %v, want nothing to resume", err)
	}
	path, err = e.upgrader(upgrade.Options{}).ApplyPath(ctx, e.catalog(nil), "v3", upgrade.PathOptions{})
	if err != nil || path.ID != 0 || len(path.Upgrades) != 1 || path.Upgrades[0].From != "v2" {
		t.Fatalf("apply v3 again: %+v (%v), want one hop from v2", path, err)
	}
	e.checkRuns("v3", path.Upgrades[0].NewVersionSchema)
}

// TestDeferredContract upgrades to v2 with its contract deferred, rolls the app back to
// v1 and forward again with no database change, then upgrades to v3, which completes
// v2's contract first, and only once no v1 instance is alive.
func TestDeferredContract(t *testing.T) {
	e := newEnv(t)
	e.install(1000)
	ctx := context.Background()
	defer2 := func(r *upgrade.Release) {
		if r.Version == "v2" {
			r.Contract = upgrade.ContractDeferred
		}
	}
	cat := e.catalog(defer2)
	v1, _ := cat.Release("v1")
	v2, _ := cat.Release("v2")
	v3, _ := cat.Release("v3")
	u := e.upgrader(upgrade.Options{})

	up2, err := u.Apply(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	e.checkRuns("v2", up2.NewVersionSchema)
	st := e.engine()
	if st.Active == nil || st.Active.Name != up2.Migration || !e.schemaExists(up2.OldVersionSchema) {
		t.Fatalf("after v2 (deferred): engine %s, active %v; v1's schema %s exists: %v", st.State, st.Active, up2.OldVersionSchema, e.schemaExists(up2.OldVersionSchema))
	}
	rep, err := u.Status(ctx, "catalog")
	if err != nil || rep.PendingContract == nil || rep.PendingContract.Release != "v2" || rep.PendingContract.OldRelease != "v1" {
		t.Fatalf("status: pending contract %+v (%v)", rep.PendingContract, err)
	}
	p, err := u.Plan(ctx, v3)
	if err != nil || !p.Possible || p.PendingContract == nil || p.Steps[1] != upgrade.StepCompleteDeferred {
		t.Fatalf("plan v3: possible %v %q, pending %+v, steps %v (%v)", p.Possible, p.Problems, p.PendingContract, p.Steps, err)
	}

	// The app back to v1: a roll, no database change.
	p, err = u.Plan(ctx, v1)
	if err != nil || !p.Possible || p.Mode != upgrade.ModeRollback || p.TargetVersionSchema != up2.OldVersionSchema {
		t.Fatalf("plan v1: %+v (%v)", p, err)
	}
	back, err := u.Apply(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if back.Mode != upgrade.ModeRollback || back.Migration != "" {
		t.Errorf("rollback: mode %s, migration %q", back.Mode, back.Migration)
	}
	e.checkRuns("v1", up2.OldVersionSchema)
	if st := e.engine(); st.Active == nil || st.Active.Name != up2.Migration {
		t.Errorf("after the app rollback the engine has %v in progress, want %s still", st.Active, up2.Migration)
	}
	// v3 cannot run beside v1: the path goes through v2 again.
	if p, err := u.Plan(ctx, v3); err != nil || p.Possible {
		t.Errorf("plan v3 beside v1: possible %v (%v)", p.Possible, err)
	}

	// Forward again: a roll to v2, its contract still deferred.
	fwd, err := u.Apply(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	e.checkRuns("v2", up2.NewVersionSchema)
	if fwd.Migration != "" || !e.schemaExists(up2.OldVersionSchema) {
		t.Errorf("roll forward: migration %q, v1's schema exists %v", fwd.Migration, e.schemaExists(up2.OldVersionSchema))
	}

	// v3 completes v2's contract first, once no v1 instance is alive: one registers just
	// before, so the step must wait for it and stop; resumed after it is gone, the
	// upgrade ends.
	v3.Timeouts.OldGone.Duration = 2 * time.Second
	var ghost *lifecycle.Registration
	reg := &lifecycle.Registry{DB: e.pool}
	u3 := e.upgrader(upgrade.Options{BeforeStep: func(step string) error {
		if step == upgrade.StepCompleteDeferred && ghost == nil {
			ghost, err = reg.Register(ctx, lifecycle.Instance{App: "catalog", Role: "api", AppVersion: "v1", SchemaVersion: up2.OldVersionSchema})
			return err
		}
		return nil
	}})
	rec, err := u3.Apply(ctx, v3)
	if err == nil || !strings.Contains(err.Error(), "catalog v1 on "+up2.OldVersionSchema) {
		t.Fatalf("v3 beside a live v1 instance: %v, want the step to name it", err)
	}
	if rec.Step != upgrade.StepCompleteDeferred || !e.schemaExists(up2.OldVersionSchema) {
		t.Fatalf("stopped at %s; v1's schema exists %v", rec.Step, e.schemaExists(up2.OldVersionSchema))
	}
	if err := ghost.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err = e.upgrader(upgrade.Options{}).Resume(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	e.checkRuns("v3", rec.NewVersionSchema)
	if e.schemaExists(up2.OldVersionSchema) || e.schemaExists(up2.NewVersionSchema) {
		t.Errorf("after v3: v1's schema %s exists %v, v2's %s exists %v; want both gone", up2.OldVersionSchema,
			e.schemaExists(up2.OldVersionSchema), up2.NewVersionSchema, e.schemaExists(up2.NewVersionSchema))
	}
	if st := e.engine(); st.State != "complete" || st.VersionSchema != rec.NewVersionSchema {
		t.Errorf("engine: %s at %s", st.State, st.VersionSchema)
	}
	var order []string
	for _, ev := range rec.Events {
		if ev.What == "begins" {
			order = append(order, ev.Step)
		}
	}
	i, j := slices.Index(order, upgrade.StepCompleteDeferred), slices.Index(order, upgrade.StepExpand)
	if i < 0 || j < 0 || i > j {
		t.Errorf("steps %v: want complete-deferred before expand", order)
	}
	rep, err = u.Status(ctx, "catalog")
	if err != nil || rep.PendingContract != nil {
		t.Errorf("status after v3: pending %+v (%v)", rep.PendingContract, err)
	}
}

// TestDowntime installs v3 over v1 directly: refused without downtime, done as a
// maintenance-window upgrade with AllowDowntime. A poller through the router sees the
// window; the upgrade's measured downtime must cover what it saw.
func TestDowntime(t *testing.T) {
	e := newEnv(t)
	e.install(1000)
	ctx := context.Background()
	only, err := upgrade.NewCatalog(e.release("v3"))
	if err != nil {
		t.Fatal(err)
	}
	u := e.upgrader(upgrade.Options{})
	pp, err := u.PlanPath(ctx, only, "v3", upgrade.PathOptions{AllowDowntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if !pp.Possible || pp.Mode != upgrade.ModeDowntime || pp.ExpectedDowntime == nil || pp.ExpectedDowntime.Total.Duration <= 0 ||
		len(pp.DowntimeReasons) == 0 || !strings.Contains(pp.DowntimeReasons[0], "compatible-from v2") {
		t.Fatalf("downtime plan: %+v", pp.Plan)
	}

	// Poll through the router every 20 ms, recording when requests succeed.
	e.be.WaitRouter()
	url := e.be.RouterURL() + "/api/items/1"
	pollCtx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var gap time.Duration
	var failed int
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		last := time.Now()
		for pollCtx.Err() == nil {
			resp, err := client.Get(url)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			mu.Lock()
			if ok {
				gap = max(gap, time.Since(last))
				last = time.Now()
			} else {
				failed++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	path, err := u.ApplyPath(ctx, only, "v3", upgrade.PathOptions{AllowDowntime: true})
	e.be.WaitRouter()
	time.Sleep(300 * time.Millisecond)
	stop()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	rec := path.Upgrades[0]
	if rec.Mode != upgrade.ModeDowntime || rec.From != "v1" {
		t.Errorf("upgrade: mode %s from %s", rec.Mode, rec.From)
	}
	e.checkRuns("v3", rec.NewVersionSchema)
	if st := e.engine(); st.State != "complete" || st.VersionSchema != rec.NewVersionSchema {
		t.Errorf("engine: %s at %s", st.State, st.VersionSchema)
	}
	// The timeline as the state schema holds it, which the report was made from: its
	// times to the microsecond, its durations to the millisecond.
	st, err := u.Status(ctx, "catalog")
	if err != nil || st.Upgrade == nil || st.Upgrade.ID != rec.ID {
		t.Fatalf("status: %+v, %v", st, err)
	}
	measured := st.Upgrade.Downtime()
	if d := (rec.Downtime() - measured).Abs(); d > time.Millisecond {
		t.Errorf("downtime from the returned timeline %s, from the stored one %s", rec.Downtime(), measured)
	}
	reported := slices.ContainsFunc(st.Upgrade.Events, func(ev upgrade.Event) bool {
		return strings.HasPrefix(ev.What, "downtime: ") && (ev.Duration-measured).Abs() < 2*time.Millisecond
	})
	t.Logf("downtime: expected %s (%s), measured %s; the poller saw a gap of %s, %d failed requests",
		pp.ExpectedDowntime.Total, pp.ExpectedDowntime.Basis, measured, gap, failed)
	if measured <= 0 || !reported {
		t.Errorf("measured downtime %s, reported in the timeline %v", measured, reported)
	}
	if failed == 0 {
		t.Error("the poller saw no failure: there was no window to measure")
	}
	// The poller's gap spans the window plus a poll on each side and the router's lag.
	if slack := 500 * time.Millisecond; gap > measured+slack {
		t.Errorf("the poller saw no answer for %s, more than the measured downtime %s", gap, measured)
	}
}
