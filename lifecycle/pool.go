package lifecycle

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/migrate"
)

// PinPoolConfig makes every connection of a pool built from cfg speak the schema version
// versionSchema (a name as returned by migrate.VersionSchema): search_path is set to it,
// and so is the setting Tandem's dual-write triggers read (migrate.VersionSetting). An
// empty versionSchema leaves cfg alone.
func PinPoolConfig(cfg *pgxpool.Config, versionSchema string) {
	if versionSchema == "" {
		return
	}
	migrate.PinConnConfig(cfg.ConnConfig, versionSchema)
}

// NewPool opens a pgx pool on connString pinned to versionSchema (see PinPoolConfig).
// An empty versionSchema opens a pool that is not pinned.
func NewPool(ctx context.Context, connString, versionSchema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	PinPoolConfig(cfg, versionSchema)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool pinned to %q: %w", versionSchema, err)
	}
	return pool, nil
}
