package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tandem-pg/tandem/migrate"
)

// Abort undoes the app's upgrade in progress, before its contract: the workloads roll
// back to what they ran (in reverse roll order), the new version's instances drain,
// the migration is rolled back, and maintenance mode goes off. Once contract has begun
// it refuses with ErrContractBegun: the old version's schema is gone, so the way out is
// forward (Resume). An abort interrupted by a crash is finished by Abort or Resume.
// Between two hops of a path, Abort ends the path there.
func (u *Upgrader) Abort(ctx context.Context, app string) (*Record, error) {
	if rec, stopped, err := u.stopPathBetweenHops(ctx, app); stopped || err != nil {
		return rec, err
	}
	ctx, unlock, rec, err := u.takeActive(ctx, app, "abort")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if rec.Status == StatusRunning {
		if rec.contractBegun() {
			return rec, fmt.Errorf("%w: upgrade %d of %s to %s is at step %s, and the old version's schema may be gone; "+
				"run `tandem upgrade resume` to finish it", ErrContractBegun, rec.ID, rec.App, rec.To, rec.Step)
		}
		rec.Status = StatusAborting
		rec.Holder = holder()
		if err := u.st.save(ctx, u.pool, rec); err != nil {
			return rec, err
		}
		u.event(ctx, rec, rec.Step, "abort requested at step "+rec.Step, 0)
	}
	return u.abort(ctx, rec)
}

func (u *Upgrader) abort(ctx context.Context, rec *Record) (*Record, error) {
	if u.opts.Backend == nil {
		return rec, fmt.Errorf("no backend to roll the workloads back")
	}
	err := u.guard("abort", func() error {
		// The workloads go back to what they ran, last rolled first.
		order := rec.Release.RollOrder()
		slices.Reverse(order)
		for _, w := range order {
			snap, ok := rec.Snapshots[w.Name]
			if !ok {
				continue // never rolled
			}
			var old struct {
				Release       string `json:"release"`
				VersionSchema string `json:"version_schema"`
			}
			_ = json.Unmarshal(snap, &old)
			t := u.target(rec, w)
			began := time.Now()
			if err := u.opts.Backend.Restore(ctx, t, snap, u.registeredGate(rec.Release, old.Release, old.VersionSchema), func(line string) {
				u.progress("abort", line)
			}); err != nil {
				return fmt.Errorf("roll workload %s back: %w", w.Name, err)
			}
			u.event(ctx, rec, "abort", fmt.Sprintf("workload %s rolled back (%s)", w.Name, time.Since(began).Round(time.Millisecond)), 0)
		}
		// The new version's instances must be gone before its schema is dropped.
		if len(rec.Snapshots) > 0 {
			if err := u.waitOnlyOld(ctx, rec); err != nil {
				return err
			}
		}
		if rec.Migration != "" {
			if err := u.rollbackOurs(ctx, rec); err != nil {
				return err
			}
		}
		if rec.Release.Maintenance != MaintenanceOff {
			return u.stepMaintenance(ctx, rec, false)
		}
		return nil
	})
	if err != nil {
		rec.Error = "abort: " + err.Error()
		_ = u.st.save(context.WithoutCancel(ctx), u.pool, rec)
		return rec, fmt.Errorf("abort of upgrade %d stopped: %w; run `tandem upgrade abort` again", rec.ID, err)
	}
	rec.Status, rec.Error = StatusAborted, ""
	if err := u.st.save(ctx, u.pool, rec); err != nil {
		return rec, err
	}
	u.event(ctx, rec, "abort", fmt.Sprintf("aborted: %s runs %s again", rec.App, orNone(rec.From)), 0)
	if err := u.endPath(ctx, rec.PathID, StatusAborted, fmt.Sprintf("upgrade %d to %s was aborted", rec.ID, rec.To)); err != nil {
		return rec, err
	}
	return rec, nil
}

// waitOnlyOld waits until no instance of the aborted release is left in the registry
// or on the backend.
func (u *Upgrader) waitOnlyOld(ctx context.Context, rec *Record) error {
	deadline := time.Now().Add(rec.Release.Timeouts.OldGone.Duration)
	for {
		left, err := u.newInstances(ctx, rec)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		u.progress("abort", fmt.Sprintf("waiting for %d instance(s) of %s to drain: %v", len(left), rec.To, left))
		if time.Now().After(deadline) {
			return fmt.Errorf("instances of %s are still there after %s: %v", rec.To, rec.Release.Timeouts.OldGone.Duration, left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(u.opts.PollInterval):
		}
	}
}

// newInstances lists the instances of rec's release still alive, in the registry or on
// the backend.
func (u *Upgrader) newInstances(ctx context.Context, rec *Record) ([]string, error) {
	var left []string
	reg := u.registry(rec.Release)
	all, err := reg.Instances(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range all {
		if in.App == rec.App && in.AppVersion == rec.To && in.SchemaVersion == rec.NewVersionSchema && rec.From != rec.To {
			left = append(left, fmt.Sprintf("registry: %s (%s)", in.ID, in.State))
		}
	}
	revision := Revision(rec.To, rec.NewVersionSchema)
	for _, w := range rec.Release.RollOrder() {
		ins, err := u.opts.Backend.Instances(ctx, u.target(rec, w))
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			if in.Revision == revision {
				left = append(left, fmt.Sprintf("%s: %s (%s)", u.opts.Backend.Name(), in.Name, in.State))
			}
		}
	}
	return left, nil
}

// rollbackOurs rolls back the upgrade's migration if it is the one in progress; one
// that another run started is not the upgrade's to undo.
func (u *Upgrader) rollbackOurs(ctx context.Context, rec *Record) error {
	return u.withEngine(ctx, rec.Release, func(m *migrate.Migrator, st *migrate.Status) error {
		switch {
		case st.Active == nil:
			return nil // never started, or rolled back before a crash
		case st.Active.Name != rec.Migration:
			u.event(ctx, rec, "abort", fmt.Sprintf("migration %s is in progress, not this upgrade's %s: left as it is", st.Active.Name, rec.Migration), 0)
			return nil
		}
		if err := m.Rollback(ctx); err != nil && !errors.Is(err, migrate.ErrNoActiveMigration) {
			return fmt.Errorf("roll back migration %s: %w", rec.Migration, err)
		}
		u.event(ctx, rec, "abort", "rolled back migration "+rec.Migration, 0)
		return nil
	})
}
