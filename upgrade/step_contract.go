package upgrade

import (
	"context"

	"github.com/tandem-pg/tandem/migrate"
)

// stepContract completes the expand step's migration: the old version's schema and the
// columns only it used go; then the streams' post-deploy SQL files run. It runs only
// after stepWaitOldGone. A contract interrupted by a crash is resumed.
func (u *Upgrader) stepContract(ctx context.Context, rec *Record) error {
	return u.contractStreams(ctx, rec)
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
