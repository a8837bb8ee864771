package upgrade

import (
	"context"
	"fmt"

	"github.com/tandem-pg/tandem/migrate"
)

// PendingContract is a release's deferred contract (`contract: deferred`), still to be
// done: the release's migration is in progress, and the previous release's schema
// version is still there, so the app can roll back to that release without a database
// rollback. The next upgrade completes it first.
type PendingContract struct {
	// Upgrade is the upgrade that installed the release and deferred its contract.
	Upgrade int64 `json:"upgrade"`
	// Migration is the release's migration, in progress until the contract.
	Migration string `json:"migration"`
	// Release and NewVersionSchema are the release whose contract is deferred, and its
	// schema version.
	Release          string `json:"release"`
	NewVersionSchema string `json:"new_version_schema"`
	// OldRelease and OldVersionSchema are the release before it, which the app may roll
	// back to until the contract, and its schema version, which the contract drops.
	OldRelease       string `json:"old_release"`
	OldVersionSchema string `json:"old_version_schema"`
}

// pendingContract returns the app's deferred contract still to be done, or nil: the
// engine's migration in progress, when no upgrade is running it and the upgrade that
// started it deferred its contract.
func (u *Upgrader) pendingContract(ctx context.Context, rel *Release) (*PendingContract, error) {
	var active string
	err := u.withEngine(ctx, rel, func(_ *migrate.Migrator, st *migrate.Status) error {
		if st.Active != nil {
			active = st.Active.Name
		}
		return nil
	})
	if err != nil || active == "" {
		return nil, err
	}
	if act, err := u.st.active(ctx, u.pool, rel.App); err != nil {
		return nil, err
	} else if act != nil && act.Migration == active {
		return nil, nil // the upgrade in progress runs it
	}
	rec, err := u.st.one(ctx, u.pool, `WHERE app = $1 AND status = 'done' AND migration = $2`, rel.App, active)
	if err != nil || rec == nil || rec.Release.Contract != ContractDeferred {
		return nil, err
	}
	return &PendingContract{Upgrade: rec.ID, Migration: rec.Migration, Release: rec.To, NewVersionSchema: rec.NewVersionSchema,
		OldRelease: rec.From, OldVersionSchema: rec.OldVersionSchema}, nil
}

// planAppRollback plans the app's rollback to pc's old release: a roll to it, on its own
// schema version, which the deferred contract keeps. No migration runs.
func (u *Upgrader) planAppRollback(ctx context.Context, rel *Release, pc *PendingContract) (*Plan, error) {
	p := &Plan{App: rel.App, To: rel.Version, CompatibleFrom: rel.CompatibleFrom, Maintenance: rel.Maintenance,
		Problems: []string{}, Mode: ModeRollback, PendingContract: pc, Pending: []string{},
		CurrentMigration: pc.Migration, CurrentVersionSchema: pc.NewVersionSchema, TargetVersionSchema: pc.OldVersionSchema}
	problem := func(format string, args ...any) { p.Problems = append(p.Problems, fmt.Sprintf(format, args...)) }
	if last, err := u.st.lastDone(ctx, u.pool, rel.App); err != nil {
		return nil, err
	} else if last != nil {
		p.From = last.To
	}
	if act, err := u.st.active(ctx, u.pool, rel.App); err != nil {
		return nil, err
	} else if act != nil {
		p.InProgress = act
		problem("upgrade %d of %s to %s is %s (step %s); finish it with `tandem upgrade resume` or `tandem upgrade abort` first",
			act.ID, act.App, act.To, act.Status, act.Step)
	}
	versions, err := u.registry(rel).Versions(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.App != rel.App {
			continue
		}
		p.Running = append(p.Running, v)
		if v.AppVersion != pc.Release && v.AppVersion != pc.OldRelease {
			problem("%d instance(s) of %s %s are running: an app rollback goes from %s to %s only",
				v.Instances, v.App, v.AppVersion, pc.Release, pc.OldRelease)
		}
	}
	if rel.VersionSchema != "" && rel.VersionSchema != p.TargetVersionSchema {
		problem("tandem.yaml's version-schema is %s, but release %s ran on %s: correct version-schema, or leave it out",
			rel.VersionSchema, rel.Version, p.TargetVersionSchema)
	}
	return u.finishPlan(ctx, p, rel, false)
}

// stepCompleteDeferred completes an earlier release's deferred contract, once no
// instance of the release before it is alive (registry and backend, draining ones
// included): the contract drops that release's schema version.
func (u *Upgrader) stepCompleteDeferred(ctx context.Context, rec *Record) error {
	pc := rec.PendingContract
	if err := u.waitOnly(ctx, rec, pc.Release, pc.NewVersionSchema, rec.Release.Timeouts.OldGone.Duration); err != nil {
		return fmt.Errorf("the deferred contract of %s needs every instance on %s: %w", pc.Release, pc.NewVersionSchema, err)
	}
	// The deferred migration alone is completed. The post-deploy files of its release's
	// plain-SQL streams stay pending: this upgrade's contract runs them, later than
	// they could run but never earlier.
	return u.withEngine(ctx, rec.Release, func(m *migrate.Migrator, st *migrate.Status) error {
		if st.Active == nil || st.Active.Name != pc.Migration {
			for _, h := range st.History {
				if h.Name == pc.Migration && h.Status == migrate.StatusCompleted {
					return nil // completed before a crash
				}
			}
			return fmt.Errorf("the deferred migration %s is not in progress; `tandem status` shows what happened to it", pc.Migration)
		}
		if err := m.Complete(ctx); err != nil {
			return err
		}
		u.event(ctx, rec, StepCompleteDeferred, fmt.Sprintf("completed %s: version schema %s is gone", pc.Migration, pc.OldVersionSchema), 0)
		return nil
	})
}
