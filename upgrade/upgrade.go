// Package upgrade is Tandem's orchestrator: it performs a whole zero-downtime upgrade of
// a PostgreSQL-backed service to a release described by its tandem.yaml (see Release).
//
// An upgrade is a sequence of steps (StepsOf), each recorded in the state schema before
// the next begins, so that an upgrade killed at any point is continued by Resume:
//
//	preflight -> maintenance on -> expand -> roll each workload -> old version gone?
//	                                                                 (registry AND backend)
//	                              maintenance off <- contract <-------------'
//
// Expand applies the release's pending migrations as one step (migrate.Migrator.Migrate);
// the roll replaces each workload's instances through a Backend, new instance first; the
// destructive contract waits until both the instance registry and the backend show no
// instance of the old version, draining ones included. Abort, before contract, rolls the
// workloads back to what they ran and rolls the migration back.
//
// One upgrade per app runs at a time, fenced by an advisory lock.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
)

// Options configure an Upgrader.
type Options struct {
	// PostgresURL is the database. Required.
	PostgresURL string
	// StateSchema holds Tandem's state [tandem].
	StateSchema string
	// Backend runs the release's instances. Required for Apply, Resume and Abort.
	Backend Backend
	// Migrate configures the engine for the expand and contract steps (its Schema and
	// StateSchema come from the release and from StateSchema).
	Migrate migrate.Options
	// RegistryTTL is how long an instance without a heartbeat counts as alive [30s],
	// as the instances' lifecycle.Registry is configured.
	RegistryTTL time.Duration
	// PollInterval is how often waits look again [500ms].
	PollInterval time.Duration
	// OnEvent is called with each event of the timeline as it is recorded.
	OnEvent func(Event)
	// OnProgress is called with transient progress lines (backfill, roll).
	OnProgress func(step, line string)
	// BeforeStep, when set, is called before each step runs; an error stops the
	// upgrade there, as a crash would (for tests).
	BeforeStep func(step string) error
	// BeforeHop, when set, is called before each hop of a path begins (0 first); an
	// error stops the path there, as a crash would (for tests).
	BeforeHop func(hop int) error
	// Logger receives a line per step [discard].
	Logger *slog.Logger
}

// Upgrader performs upgrades over one database. Open one per command.
type Upgrader struct {
	opts Options
	pool *pgxpool.Pool
	st   store
	log  *slog.Logger
}

// ErrBusy is wrapped by the error returned when another upgrade of the app is running.
var ErrBusy = errors.New("another upgrade of this app is running")

// ErrLockLost is the cause of the cancellation of an upgrade whose lock's connection
// failed while it ran; errors.Is(context.Cause(ctx), ErrLockLost) tells it.
var ErrLockLost = errors.New("lost the upgrade lock")

// ErrContractBegun is wrapped by Abort's error once contract has begun.
var ErrContractBegun = errors.New("contract has begun")

// PlanError is returned by Apply when the plan says the upgrade cannot be done without
// downtime, and by ApplyPath (with the path's plan) when the path cannot be.
type PlanError struct {
	Plan *Plan
	Path *PathPlan
}

func (e *PlanError) Error() string {
	return fmt.Sprintf("upgrade of %s to %s is not possible without downtime: %s", e.Plan.App, e.Plan.To, strings.Join(e.Plan.Problems, "; "))
}

// Open connects to the database.
func Open(ctx context.Context, opts Options) (*Upgrader, error) {
	if opts.StateSchema == "" {
		opts.StateSchema = "tandem"
	}
	if opts.RegistryTTL <= 0 {
		opts.RegistryTTL = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(opts.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "tandem upgrade"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return &Upgrader{opts: opts, pool: pool, st: store{state: opts.StateSchema}, log: opts.Logger}, nil
}

// Backend returns the backend the Upgrader drives, or nil.
func (u *Upgrader) Backend() Backend { return u.opts.Backend }

// Close closes the Upgrader's connections.
func (u *Upgrader) Close() { u.pool.Close() }

func (u *Upgrader) migrator(ctx context.Context, rel *Release) (*migrate.Migrator, error) {
	o := u.opts.Migrate
	o.Schema, o.StateSchema = rel.Schema, u.opts.StateSchema
	if rel.Backfill.Workers > 0 {
		o.BackfillWorkers = rel.Backfill.Workers
	}
	if rel.Backfill.Impact != migrate.ImpactNormal {
		o.BackfillImpact = rel.Backfill.Impact
	}
	if rel.Backfill.Rate > 0 {
		o.BackfillRate = rel.Backfill.Rate
	}
	if o.Progress == nil && u.opts.OnProgress != nil {
		o.Progress = func(p migrate.BackfillProgress) {
			line := fmt.Sprintf("backfill %s.%s: %d of ~%d rows", p.Table, p.Column, p.RowsDone, p.RowsTotal)
			if p.Rate > 0 {
				line += fmt.Sprintf(", %.0f rows/s", p.Rate)
			}
			if p.ETA > 0 {
				line += fmt.Sprintf(", ETA %s", p.ETA.Round(time.Second))
			}
			u.opts.OnProgress(StepExpand, line)
		}
	}
	return migrate.Open(ctx, u.opts.PostgresURL, o)
}

// registry is the instance registry as rel's instances use it: its TTL is the
// release's registry-ttl, else Options.RegistryTTL.
func (u *Upgrader) registry(rel *Release) *lifecycle.Registry {
	ttl := u.opts.RegistryTTL
	if rel.RegistryTTL.Duration > 0 {
		ttl = rel.RegistryTTL.Duration
	}
	return &lifecycle.Registry{DB: u.pool, Schema: u.opts.StateSchema, TTL: ttl}
}

// lockCheckInterval is how often a held upgrade lock's connection is checked.
const lockCheckInterval = time.Second

// lock takes the app's upgrade lock on a connection of its own, held until release.
// The lock lives as long as that connection: if the connection is lost (the server
// restarted, or the session was terminated), another tandem could take the lock and run
// beside this one. So the connection is checked every second, and held, a context derived
// from ctx, is cancelled with ErrLockLost as its cause when it fails. The caller runs its
// work under held; the step it was in stays recorded, for `tandem upgrade resume`.
func (u *Upgrader) lock(ctx context.Context, app string) (held context.Context, release func(), err error) {
	conn, err := u.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("take the upgrade lock: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", "tandem.upgrade:"+app).Scan(&got); err != nil {
		conn.Release()
		return nil, nil, fmt.Errorf("take the upgrade lock: %w", err)
	}
	if !got {
		conn.Release()
		who := "another tandem process"
		if act, err := u.st.active(ctx, u.pool, app); err == nil && act != nil {
			who = fmt.Sprintf("upgrade %d to %s, run by %s (at step %s, last recorded %s ago)",
				act.ID, act.To, act.Holder, act.Step, time.Since(act.UpdatedAt).Round(time.Second))
		}
		return nil, nil, fmt.Errorf("%w: %s; wait for it, or stop it and run `tandem upgrade resume`", ErrBusy, who)
	}
	held, cancel := context.WithCancelCause(ctx)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(lockCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-held.Done():
				return
			case <-t.C:
			}
			pctx, done := context.WithTimeout(held, 5*time.Second)
			err := conn.Ping(pctx)
			done()
			if err != nil && held.Err() == nil {
				u.log.Error("upgrade lock lost", "app", app, "err", err)
				cancel(fmt.Errorf("%w: the connection that held it failed (%v); the upgrade stopped where it was, "+
					"run `tandem upgrade resume` once the database is reachable", ErrLockLost, err))
				return
			}
		}
	}()
	return held, func() {
		close(stop)
		<-stopped
		lost := errors.Is(context.Cause(held), ErrLockLost)
		cancel(nil)
		if lost {
			conn.Conn().Close(context.Background())
			conn.Release()
			return
		}
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtextextended($1, 0))", "tandem.upgrade:"+app)
		conn.Release()
	}, nil
}

func holder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// takeActive takes the app's upgrade lock and reads its upgrade in progress, for verb;
// there must be one. The work under the lock runs under held (see lock).
func (u *Upgrader) takeActive(ctx context.Context, app, verb string) (held context.Context, unlock func(), rec *Record, err error) {
	if err := u.st.init(ctx, u.pool); err != nil {
		return nil, nil, nil, err
	}
	held, unlock, err = u.lock(ctx, app)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err = u.st.active(held, u.pool, app)
	if err == nil && rec == nil {
		err = fmt.Errorf("no upgrade of %s is in progress: nothing to %s", app, verb)
	}
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return held, unlock, rec, nil
}

// Apply performs an upgrade to rel from its first step. It refuses, with a *PlanError,
// when the plan says the upgrade cannot be done without downtime, and with ErrBusy
// when another upgrade of the app runs. It returns the upgrade's record, also when a
// step failed (the record then says where; Resume continues from there).
func (u *Upgrader) Apply(ctx context.Context, rel *Release) (*Record, error) {
	if u.opts.Backend == nil {
		return nil, errors.New("no backend to run the release's instances")
	}
	if err := u.st.init(ctx, u.pool); err != nil {
		return nil, err
	}
	ctx, unlock, err := u.lock(ctx, rel.App)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return u.applyLocked(ctx, rel, nil, false, 0)
}

// applyLocked is Apply under the app's upgrade lock, as a hop of path pathID (0: none),
// with plan, made under the same lock, or a new one (nil); allowDowntime lets the plan
// choose a maintenance-window upgrade.
func (u *Upgrader) applyLocked(ctx context.Context, rel *Release, plan *Plan, allowDowntime bool, pathID int64) (*Record, error) {
	if plan == nil {
		var err error
		if plan, err = u.plan(ctx, rel, allowDowntime); err != nil {
			return nil, err
		}
	}
	if !plan.Possible {
		return nil, &PlanError{Plan: plan}
	}
	rec := &Record{App: rel.App, Schema: rel.Schema, From: plan.From, To: rel.Version, Release: rel,
		OldVersionSchema: plan.CurrentVersionSchema, NewVersionSchema: plan.TargetVersionSchema,
		Step: StepPreflight, Status: StatusRunning, Holder: holder(),
		Mode: plan.Mode, PathID: pathID}
	if slices.Contains(plan.Steps, StepCompleteDeferred) {
		rec.PendingContract = plan.PendingContract
	}
	if plan.migration != nil {
		rec.Migration = plan.migration.Name
	}
	if err := u.st.insert(ctx, u.pool, rec); err != nil {
		return nil, err
	}
	u.event(ctx, rec, StepPreflight, fmt.Sprintf("upgrade %d of %s (%s): %s -> %s; pending migrations %v; schema %s -> %s",
		rec.ID, rec.App, plan.Mode, orNone(rec.From), rec.To, plan.Pending, rec.OldVersionSchema, rec.NewVersionSchema), 0)
	return u.run(ctx, rec)
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

// Resume continues the app's upgrade in progress from its recorded step (or its
// abort, if an abort was under way).
func (u *Upgrader) Resume(ctx context.Context, app string) (*Record, error) {
	if path, err := u.activePath(ctx, app); err != nil {
		return nil, err
	} else if path != nil {
		path, err := u.resumePath(ctx, path)
		return path.last(), err
	}
	ctx, unlock, rec, err := u.takeActive(ctx, app, "resume")
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec.Holder = holder()
	u.event(ctx, rec, rec.Step, fmt.Sprintf("resumed at step %s by %s", rec.Step, rec.Holder), 0)
	if rec.Status == StatusAborting {
		return u.abort(ctx, rec)
	}
	return u.run(ctx, rec)
}

// run runs rec's steps from rec.Step to the end.
func (u *Upgrader) run(ctx context.Context, rec *Record) (*Record, error) {
	if u.opts.Backend == nil {
		return rec, errors.New("no backend to run the release's instances")
	}
	steps := rec.Steps()
	i := slices.Index(steps, rec.Step)
	if i < 0 {
		return rec, fmt.Errorf("upgrade %d is at step %q, which release %s does not have", rec.ID, rec.Step, rec.To)
	}
	for ; steps[i] != StepDone; i++ {
		step := steps[i]
		rec.Step = step
		if err := u.st.save(ctx, u.pool, rec); err != nil {
			return rec, err
		}
		began := time.Now()
		u.log.Info("step", "upgrade", rec.ID, "step", step)
		u.event(ctx, rec, step, "begins", 0)
		err := u.guard(step, func() error {
			if u.opts.BeforeStep != nil {
				if err := u.opts.BeforeStep(step); err != nil {
					return err
				}
			}
			return u.runStep(ctx, rec, step)
		})
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, ErrLockLost) {
				err = cause
			}
			rec.Error = fmt.Sprintf("step %s: %v", step, err)
			_ = u.st.save(context.WithoutCancel(ctx), u.pool, rec)
			u.event(context.WithoutCancel(ctx), rec, step, "stopped: "+err.Error()+"; run `tandem upgrade resume` to retry, or `tandem upgrade abort`", time.Since(began))
			return rec, fmt.Errorf("upgrade %d of %s to %s stopped at step %s: %w", rec.ID, rec.App, rec.To, step, err)
		}
		rec.Error = ""
		rec.Step = steps[i+1]
		if err := u.st.save(ctx, u.pool, rec); err != nil {
			return rec, err
		}
		u.event(ctx, rec, step, "done", time.Since(began))
	}
	rec.Status = StatusDone
	if err := u.st.save(ctx, u.pool, rec); err != nil {
		return rec, err
	}
	u.event(ctx, rec, StepDone, fmt.Sprintf("%s runs %s on schema version %s", rec.App, rec.To, rec.NewVersionSchema), 0)
	u.reportDowntime(ctx, rec)
	return rec, nil
}

// guard runs fn, turning a panic into an error that names the step.
func (u *Upgrader) guard(step string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			u.log.Error("step panicked", "step", step, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("step %s panicked: %v (this is a bug in tandem; the state is recorded and the step can be resumed)", step, r)
		}
	}()
	return fn()
}

func (u *Upgrader) runStep(ctx context.Context, rec *Record, step string) error {
	switch {
	case step == StepPreflight:
		return u.stepPreflight(ctx, rec)
	case step == StepMaintenanceOn:
		return u.stepMaintenance(ctx, rec, true)
	case step == StepMaintenanceOff:
		return u.stepMaintenance(ctx, rec, false)
	case step == StepExpand:
		return u.stepExpand(ctx, rec)
	case strings.HasPrefix(step, StepRollPrefix):
		return u.stepRoll(ctx, rec, strings.TrimPrefix(step, StepRollPrefix))
	case step == StepWaitOldGone:
		return u.stepWaitOldGone(ctx, rec)
	case step == StepContract:
		return u.stepContract(ctx, rec)
	}
	return u.runModeStep(ctx, rec, step)
}

// event records and reports one event of rec's timeline.
func (u *Upgrader) event(ctx context.Context, rec *Record, step, what string, d time.Duration) {
	// The wall clock alone (Round(0) drops the monotonic reading): a timeline read back
	// from the state schema has only that, and the spans between events must come out
	// the same from memory and from the table.
	e := Event{At: time.Now().Round(0), Step: step, What: what, Duration: d}
	if err := u.st.event(ctx, u.pool, rec.ID, e); err != nil {
		u.log.Warn("record event", "err", err)
	}
	rec.Events = append(rec.Events, e)
	if u.opts.OnEvent != nil {
		u.opts.OnEvent(e)
	}
}

func (u *Upgrader) progress(step, line string) {
	if u.opts.OnProgress != nil {
		u.opts.OnProgress(step, line)
	}
}

// Status returns the app's newest upgrade with its timeline, and what the backend
// shows of each workload when a backend is set; nil when the app was never upgraded.
func (u *Upgrader) Status(ctx context.Context, app string) (*StatusReport, error) {
	rec, err := u.st.last(ctx, u.pool, app)
	if err != nil || rec == nil {
		return nil, err
	}
	if rec.Events, err = u.st.events(ctx, u.pool, rec.ID); err != nil {
		return nil, err
	}
	rep := &StatusReport{Upgrade: rec, Steps: rec.Steps()}
	if err := u.statusPathAndContract(ctx, rep); err != nil {
		return nil, err
	}
	if rec.Active() && rec.Migration != "" {
		// The engine's view: the migration in progress and its backfills' progress.
		err := u.withEngine(ctx, rec.Release, func(_ *migrate.Migrator, st *migrate.Status) error {
			rep.Migration = st
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if u.opts.Backend != nil {
		for _, w := range rec.Release.RollOrder() {
			ins, err := u.opts.Backend.Instances(ctx, u.target(rec, w))
			if err != nil {
				return nil, err
			}
			rep.Workloads = append(rep.Workloads, WorkloadStatus{Name: w.Name, Role: w.Role, Instances: ins})
		}
	}
	return rep, nil
}

// StatusReport is what `tandem upgrade status` shows.
type StatusReport struct {
	Upgrade   *Record          `json:"upgrade"`
	Steps     []string         `json:"steps"`
	Workloads []WorkloadStatus `json:"workloads,omitempty"`
	// Migration is the engine's status while the upgrade is in progress, with the
	// backfills' rows, rate and ETA.
	Migration *migrate.Status `json:"migration,omitempty"`
	// Path is the path the upgrade is a hop of, with its hops.
	Path *PathRecord `json:"path,omitempty"`
	// PendingContract is a release's deferred contract, still to be done.
	PendingContract *PendingContract `json:"pending_contract,omitempty"`
}

// WorkloadStatus is one workload's instances as the backend sees them.
type WorkloadStatus struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Instances []Instance `json:"instances"`
}

// target is what workload w of rec's release rolls to.
func (u *Upgrader) target(rec *Record, w Workload) Target {
	return Target{App: rec.App, Release: rec.To, Revision: Revision(rec.To, rec.NewVersionSchema),
		VersionSchema: rec.NewVersionSchema, PostgresURL: u.opts.PostgresURL, Dir: rec.Release.Dir, Workload: w}
}

// Revision is the revision of a release's instances on a schema version.
func Revision(release, versionSchema string) string { return release + "@" + versionSchema }
