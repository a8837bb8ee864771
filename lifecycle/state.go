package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultStateSchema is the schema Tandem keeps its state in unless told otherwise.
const DefaultStateSchema = "tandem"

// DB is what this package needs from a database handle. *pgxpool.Pool, *pgx.Conn and
// pgx.Tx all satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

func stateSchema(schema string) string {
	if schema == "" {
		return DefaultStateSchema
	}
	return schema
}

// table returns the quoted, schema-qualified name of a state table.
func table(schema, name string) string {
	return pgx.Identifier{stateSchema(schema), name}.Sanitize()
}

// EnsureStateSchema creates the state schema and the lifecycle tables ("instances" and
// "maintenance") if they do not exist. It is idempotent and safe to call from many
// instances at once.
func EnsureStateSchema(ctx context.Context, db DB, schema string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// Two sessions creating the same object can collide on the catalogs even with
		// IF NOT EXISTS; the next attempt sees what the other one committed.
		if err = ensureStateSchema(ctx, db, schema); err == nil || !isDuplicate(err) {
			return err
		}
	}
	return err
}

func ensureStateSchema(ctx context.Context, db DB, schema string) error {
	schema = stateSchema(schema)
	// Most calls find everything in place: skip the DDL (and the privileges it needs).
	var present bool
	if err := db.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
		table(schema, "instances"), table(schema, "maintenance")).Scan(&present); err == nil && present {
		return nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ensure state schema %q: %w", schema, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// Concurrent CREATE ... IF NOT EXISTS can still collide on the catalogs; serialize.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
		"tandem.lifecycle:"+schema); err != nil {
		return fmt.Errorf("ensure state schema %q: lock: %w", schema, err)
	}
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE IF NOT EXISTS ` + table(schema, "instances") + ` (
			id             text PRIMARY KEY,
			app            text NOT NULL,
			role           text NOT NULL,
			app_version    text NOT NULL,
			schema_version text NOT NULL,
			host           text NOT NULL,
			pid            integer NOT NULL,
			state          text NOT NULL CHECK (state IN ('starting', 'ready', 'draining')),
			started_at     timestamptz NOT NULL DEFAULT now(),
			heartbeat_at   timestamptz NOT NULL DEFAULT now()
		)`,
		`CREATE TABLE IF NOT EXISTS ` + table(schema, "maintenance") + ` (
			id         boolean PRIMARY KEY DEFAULT true CHECK (id),
			enabled    boolean NOT NULL DEFAULT false,
			reason     text NOT NULL DEFAULT '',
			changed_by text NOT NULL DEFAULT '',
			changed_at timestamptz NOT NULL DEFAULT now()
		)`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("ensure state schema %q: %w", schema, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ensure state schema %q: %w", schema, err)
	}
	return nil
}

// isUndefinedTable reports whether err is PostgreSQL's undefined_table (or
// invalid_schema_name): the state was never created.
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

// isDuplicate reports whether err says an object being created already exists.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "42P06", "42P07", "42710": // unique_violation, duplicate_schema/table/object
		return true
	}
	return false
}
