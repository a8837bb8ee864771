package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DowntimeEstimate is what a plan expects a maintenance-window upgrade to take, from the
// moment the first old instance is told to stop to the moment every new instance is
// ready.
type DowntimeEstimate struct {
	// Total is the sum of the parts.
	Total Duration `json:"total"`
	// Stop is how long the old instances take to drain and exit: the last upgrade's
	// wait-old-gone step, else DefaultDrain.
	Stop Duration `json:"stop"`
	// Migrate is the expand and contract: the backfills' rows at DowntimeBackfillRate,
	// plus a second per step.
	Migrate Duration `json:"migrate"`
	// Start is the new instances becoming ready one after another: the last upgrade's
	// roll steps per instance, else DefaultStart per instance.
	Start Duration `json:"start"`
	// Basis says where each part comes from.
	Basis string `json:"basis"`
}

// The downtime estimate's assumptions when the app's history has nothing better.
const (
	// DowntimeBackfillRate is the rows per second a backfill is assumed to fill with
	// nothing else running (PostgreSQL 15 on a small machine fills about that many).
	DowntimeBackfillRate = 100_000
	// DefaultDrain is the assumed drain of the old instances.
	DefaultDrain = 10 * time.Second
	// DefaultStart is the assumed start of one instance, to ready.
	DefaultStart = 2 * time.Second
)

// finishPlan decides the plan's mode, steps and verdict. With allowDowntime, an upgrade
// that only the window prevents becomes a maintenance-window upgrade.
func (u *Upgrader) finishPlan(ctx context.Context, p *Plan, rel *Release, allowDowntime bool) (*Plan, error) {
	if allowDowntime && p.Mode == ModeRolling && len(p.window) > 0 {
		// The window's problems are why the upgrade needs one; any other still stops it.
		p.Mode = ModeDowntime
		p.DowntimeReasons = p.window
		p.Problems = slices.DeleteFunc(p.Problems, func(pr string) bool { return slices.Contains(p.window, pr) })
		est, err := u.estimateDowntime(ctx, rel, p)
		if err != nil {
			return nil, err
		}
		p.ExpectedDowntime = est
	}
	// A pending contract is completed first, unless the upgrade goes to that release
	// (a roll forward after an app rollback) or back from it.
	pc := p.PendingContract
	p.Steps = stepsFor(rel, p.Mode, pc != nil && p.Mode != ModeRollback && pc.Release != rel.Version)
	p.Possible = len(p.Problems) == 0
	return p, nil
}

// estimateDowntime estimates a maintenance-window upgrade to rel from the app's last
// finished rolling upgrade, where there is one, and the plan's backfills.
func (u *Upgrader) estimateDowntime(ctx context.Context, rel *Release, p *Plan) (*DowntimeEstimate, error) {
	e := &DowntimeEstimate{Stop: Duration{DefaultDrain}}
	instances := 0
	for _, w := range rel.Workloads {
		n := 1
		if w.Local != nil {
			n = max(w.Local.Instances, 1)
		}
		instances += n
	}
	e.Start = Duration{time.Duration(instances) * DefaultStart}
	basis := []string{"drain: assumed " + DefaultDrain.String(), fmt.Sprintf("start: assumed %s per instance", DefaultStart)}
	last, err := u.st.one(ctx, u.pool, `WHERE app = $1 AND status = 'done' AND mode IN ('', 'rolling') AND from_version <> ''`, rel.App)
	if err != nil {
		return nil, err
	}
	if last != nil {
		evs, err := u.st.events(ctx, u.pool, last.ID)
		if err != nil {
			return nil, err
		}
		var roll time.Duration
		var rolled, drained bool
		for _, ev := range evs {
			switch {
			case ev.What != "done":
			case ev.Step == StepWaitOldGone:
				e.Stop.Duration, drained = ev.Duration, true
			case strings.HasPrefix(ev.Step, StepRollPrefix):
				roll += ev.Duration
				rolled = true
			}
		}
		if drained {
			basis[0] = fmt.Sprintf("drain: upgrade %d's wait-old-gone", last.ID)
		}
		if rolled {
			// A roll starts each new instance and stops an old one meanwhile: its time
			// is the instances' start, one after another.
			e.Start.Duration = roll
			basis[1] = fmt.Sprintf("start: upgrade %d's roll steps", last.ID)
		}
	}
	var rows int64
	for _, b := range p.Backfills {
		rows += max(b.Rows, 0)
	}
	e.Migrate = Duration{2*time.Second + time.Duration(float64(rows)/DowntimeBackfillRate*float64(time.Second))}
	basis = append(basis, fmt.Sprintf("migrate: ~%d rows to backfill at an assumed %d rows/s, plus 1s per step", rows, DowntimeBackfillRate))
	e.Total = Duration{e.Stop.Duration + e.Migrate.Duration + e.Start.Duration}
	e.Basis = strings.Join(basis, "; ")
	return e, nil
}

// stepStop stops every instance of one workload, in a maintenance window: the old
// version cannot run beside the new schema. What ran is recorded first, for abort.
func (u *Upgrader) stepStop(ctx context.Context, rec *Record, name string) error {
	w, ok := rec.Release.workload(name)
	if !ok {
		return fmt.Errorf("release %s has no workload %q", rec.To, name)
	}
	t := u.target(rec, w)
	if err := u.snapshotOnce(ctx, rec, t); err != nil {
		return err
	}
	// The snapshot of a workload without instances: restoring it stops them all.
	none := json.RawMessage("null")
	if err := u.opts.Backend.Restore(ctx, t, none, u.registeredGate(rec.Release, rec.To, rec.NewVersionSchema), func(line string) {
		u.progress(rec.Step, line)
	}); err != nil {
		return fmt.Errorf("stop workload %s: %w", name, err)
	}
	u.event(ctx, rec, rec.Step, fmt.Sprintf("workload %s: every instance told to stop", name), 0)
	return nil
}

// Downtime is how long the maintenance window of a downtime upgrade lasted, from the
// moment its first stop step began to the end of its last start step (every new
// instance ready); 0 for the other modes, or before the window closed.
func (r *Record) Downtime() time.Duration {
	var began, ended time.Time
	for _, e := range r.Events {
		switch {
		case e.What == "begins" && strings.HasPrefix(e.Step, StepStopPrefix) && began.IsZero():
			began = e.At
		case e.What == "done" && strings.HasPrefix(e.Step, StepStartPrefix):
			ended = e.At
		}
	}
	if began.IsZero() || ended.Before(began) {
		return 0
	}
	return ended.Sub(began)
}

// reportDowntime records, at the end of a downtime upgrade, the window it measured.
func (u *Upgrader) reportDowntime(ctx context.Context, rec *Record) {
	if rec.Mode != ModeDowntime {
		return
	}
	// The whole timeline, from before any crash and resume.
	evs, err := u.st.events(ctx, u.pool, rec.ID)
	if err != nil {
		u.log.Warn("read the timeline", "err", err)
		return
	}
	all := Record{Events: evs}
	d := all.Downtime()
	u.event(ctx, rec, StepDone, fmt.Sprintf("downtime: %s, from stopping the old instances to every new one ready", d.Round(time.Millisecond)), d)
}
