package upgrade

import (
	"context"
	"fmt"

	"github.com/tandem-pg/tandem/migrate"
)

// stepContract completes the expand step's migration: the old version's schema and the
// columns only it used go. It runs only after stepWaitOldGone.
func (u *Upgrader) stepContract(ctx context.Context, rec *Record) error {
	if rec.Migration == "" {
		return nil
	}
	return u.withEngine(ctx, rec.Release, func(m *migrate.Migrator, st *migrate.Status) error {
		if st.Active == nil || st.Active.Name != rec.Migration {
			for _, h := range st.History {
				if h.Name == rec.Migration && h.Status == migrate.StatusCompleted {
					return nil // completed before a crash
				}
			}
			return fmt.Errorf("migration %s is not in progress; `tandem status` shows what happened to it", rec.Migration)
		}
		if err := m.Complete(ctx); err != nil {
			return err
		}
		u.event(ctx, rec, StepContract, fmt.Sprintf("completed %s: version schema %s is gone", rec.Migration, rec.OldVersionSchema), 0)
		return nil
	})
}

// withEngine opens the engine on rel's schema and runs fn with it and its status.
func (u *Upgrader) withEngine(ctx context.Context, rel *Release, fn func(*migrate.Migrator, *migrate.Status) error) error {
	m, err := u.migrator(ctx, rel)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	return fn(m, st)
}
