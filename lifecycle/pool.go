package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// WarmPool opens every connection pool may hold (its MaxConns), one at a time and gap
// apart, runs warm on each (nil: none), and returns them to the pool idle. Call it before
// the instance reports ready: a router takes a new instance in at once, with a whole
// share of the traffic, and its first requests then neither wait for new database
// sessions nor for a first parse and plan. warm runs the instance's hot queries once (a
// read by primary key, say): pgx's statement cache keeps them prepared on that
// connection, and the session's catalog caches are filled. (Statements are not prepared
// by name here: a statement prepared by name that a schema change breaks keeps failing,
// while pgx's cache drops it at its first error.)
//
// Every new session is a server process that starts and fills its caches, some
// milliseconds of a CPU each: a pool's worth at once is a burst the server's other
// sessions wait behind on a small machine, at every step of a rolling update. The gap
// spreads them (see ClosePool for the same at the end); 0 opens them back to back. (A
// pool with MinConns opens that many sessions itself, at once, when it is made: leave it
// at 0 to have them all spaced.)
func WarmPool(ctx context.Context, pool *pgxpool.Pool, gap time.Duration, warm func(context.Context, *pgx.Conn) error) error {
	n := int(pool.Config().MaxConns)
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for i := range n {
		if i > 0 {
			if err := pause(ctx, gap); err != nil {
				return fmt.Errorf("warm up the pool: %w", err)
			}
		}
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("warm up the pool: %w", err)
		}
		conns = append(conns, c)
		if warm != nil {
			if err := warm(ctx, c.Conn()); err != nil {
				return fmt.Errorf("warm up the pool: %w", err)
			}
		}
	}
	return nil
}

// ClosePool closes pool's idle connections one at a time, gap apart, and then the pool.
// An instance that stops should end its database sessions this way rather than all at
// once: every ended session is a server process that exits, and a burst of them (a
// pool's worth, for each instance a rolling update stops) stalls the server's other
// sessions for tens of milliseconds on a small machine. Connections still in use when
// it runs are closed by pool.Close as they are released. ctx bounds the spacing only:
// when it ends, the rest is closed at once.
func ClosePool(ctx context.Context, pool *pgxpool.Pool, gap time.Duration) {
	defer pool.Close()
	for _, c := range pool.AcquireAllIdle(ctx) {
		conn := c.Hijack()
		// Terminate politely; the error only says the session was already gone.
		_ = conn.Close(context.WithoutCancel(ctx))
		_ = pause(ctx, gap) // once ctx ends, the rest close at once
	}
}

// pause waits for d (nothing for d <= 0), or until ctx is done, whose cause it returns.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
