package upgrade

import (
	"context"
	"fmt"

	"github.com/tandem-pg/tandem/migrate"
)

// stepExpand applies the release's pending migrations as one expand step, as `tandem
// migrate DIR` does: the running version keeps working, and the new version's schema
// appears. A start interrupted by a crash is resumed by the engine.
func (u *Upgrader) stepExpand(ctx context.Context, rec *Record) error {
	if rec.Migration == "" {
		u.event(ctx, rec, StepExpand, "no pending migrations: the schema stays as it is", 0)
		return nil
	}
	migs, err := migrate.ReadDir(rec.Release.MigrationsDir())
	if err != nil {
		return err
	}
	m, err := u.migrator(ctx, rec.Release)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	applied, err := m.Migrate(ctx, migs, false)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		u.event(ctx, rec, StepExpand, fmt.Sprintf("started %v: version schema %s", applied, rec.NewVersionSchema), 0)
	}
	return nil
}
