package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status values of a migration in the state schema.
const (
	StatusStarting   = "starting"    // start is under way (or was interrupted)
	StatusStarted    = "started"     // expanded: both versions work
	StatusCompleting = "completing"  // complete is under way (or was interrupted)
	StatusCompleted  = "completed"   // contracted
	StatusRolledBack = "rolled_back" // undone
)

// record is one migration's row in the state schema.
type record struct {
	Name       string
	Parent     string // the migration that was current when this one started; "" for none
	Status     string
	File       string
	Definition json.RawMessage
	Before     *Schema // the old version's shape, read when start began
	After      *Schema // the new version's shape
	// Shapes[i] is the shape operation i sees: the shape before it, after the operations
	// before it. Expressions of operation i are written in its names.
	Shapes []*Schema
	// Includes names the migrations this one combines (see Combine).
	Includes []string
	// VersionSchema is the version schema the migration named (version_schema), or "" for
	// the default name (see VersionSchema).
	VersionSchema string
	ID            int64 // the attempt's id: a name rolled back and started again has several
	StartedAt     time.Time
	CompletedAt   *time.Time
}

func (r *record) active() bool {
	return r.Status == StatusStarting || r.Status == StatusStarted || r.Status == StatusCompleting
}

// stateDDL creates the state schema. Every statement is idempotent; no superuser rights
// are needed, only CREATE on the database (or an existing state schema one owns).
func stateDDL(state string) []string {
	return []string{
		"CREATE SCHEMA IF NOT EXISTS " + qi(state),
		`CREATE TABLE IF NOT EXISTS ` + qi(state, "migrations") + ` (
			id           bigserial NOT NULL UNIQUE,
			schema       text NOT NULL,
			name         text NOT NULL,
			parent       text,
			status       text NOT NULL,
			file         text,
			definition   jsonb NOT NULL,
			before       jsonb NOT NULL,
			after        jsonb NOT NULL,
			shapes       jsonb NOT NULL DEFAULT '[]',
			includes     text[] NOT NULL DEFAULT '{}',
			started_at   timestamptz NOT NULL DEFAULT now(),
			completed_at timestamptz)`,
		// Every attempt is kept (the audit trail): a name is unique among the attempts
		// that are not rolled back. A state schema made before had (schema, name) as key.
		`ALTER TABLE ` + qi(state, "migrations") + ` DROP CONSTRAINT IF EXISTS migrations_pkey`,
		`CREATE UNIQUE INDEX IF NOT EXISTS migrations_name ON ` + qi(state, "migrations") +
			` (schema, name) WHERE status <> 'rolled_back'`,
		`ALTER TABLE ` + qi(state, "migrations") + ` ADD COLUMN IF NOT EXISTS version_schema text`,
		`CREATE UNIQUE INDEX IF NOT EXISTS migrations_one_active ON ` + qi(state, "migrations") +
			` (schema) WHERE status IN ('starting', 'started', 'completing')`,
		// A backfill's chunks: the pages first_page..last_page of the table, filled up to
		// next_page (exclusive) by the transactions xids; caught_up once the catch-up
		// after the fill is done.
		`CREATE TABLE IF NOT EXISTS ` + qi(state, "backfill_chunks") + ` (
			schema      text NOT NULL,
			migration   text NOT NULL,
			op          int NOT NULL,
			chunk       int NOT NULL,
			table_name  text NOT NULL,
			column_name text NOT NULL,
			relation    text NOT NULL, -- the table or a descendant, quoted
			first_page  bigint NOT NULL,
			last_page   bigint NOT NULL,
			next_page   bigint NOT NULL,
			rows_done   bigint NOT NULL DEFAULT 0,
			rows_total  bigint NOT NULL DEFAULT 0,
			xids        xid[] NOT NULL DEFAULT '{}',
			caught_up   boolean NOT NULL DEFAULT false,
			started_at  timestamptz NOT NULL DEFAULT now(),
			updated_at  timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (schema, migration, op, chunk))`,
		// rules_first: the chunks were made with the trigger and the checks in place (an
		// impact that yields to the application, see backfill): the catch-up then redoes
		// only the rows the fill skipped.
		`ALTER TABLE ` + qi(state, "backfill_chunks") + ` ADD COLUMN IF NOT EXISTS rules_first boolean NOT NULL DEFAULT false`,
		`CREATE TABLE IF NOT EXISTS ` + qi(state, "steps") + ` (
			schema    text NOT NULL,
			migration text NOT NULL,
			step      text NOT NULL,
			done_at   timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (schema, migration, step))`,
	}
}

type store struct {
	state  string // the state schema
	schema string // the logical schema migrated
}

func (s store) init(ctx context.Context, q querier) error {
	for _, stmt := range append(stateDDL(s.state), addedStateColumns(s.state)...) {
		if _, err := q.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create state schema %q: %w", s.state, err)
		}
	}
	return nil
}

// initialized reports whether the state schema exists.
func (s store) initialized(ctx context.Context, q querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qi(s.state, "migrations")).Scan(&ok)
	return ok, err
}

const recordColumns = `name, coalesce(parent, ''), status, coalesce(file, ''), definition, before, after, shapes, includes, started_at, completed_at, coalesce(version_schema, ''), id`

func scanRecord(row pgx.Row) (*record, error) {
	var r record
	var before, after, shapes []byte
	if err := row.Scan(&r.Name, &r.Parent, &r.Status, &r.File, &r.Definition, &before, &after, &shapes, &r.Includes, &r.StartedAt, &r.CompletedAt, &r.VersionSchema, &r.ID); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(shapes, &r.Shapes); err != nil {
		return nil, fmt.Errorf("decode stored shapes of %s: %w", r.Name, err)
	}
	r.Before, r.After = &Schema{}, &Schema{}
	if err := json.Unmarshal(before, r.Before); err != nil {
		return nil, fmt.Errorf("decode stored schema of %s: %w", r.Name, err)
	}
	if err := json.Unmarshal(after, r.After); err != nil {
		return nil, fmt.Errorf("decode stored schema of %s: %w", r.Name, err)
	}
	return &r, nil
}

// active returns the migration in progress, or nil.
func (s store) active(ctx context.Context, q querier) (*record, error) {
	r, err := scanRecord(q.QueryRow(ctx, `SELECT `+recordColumns+` FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 AND status IN ('starting', 'started', 'completing')`, s.schema))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

// latest returns the newest migration that is not rolled back (active or completed), or nil.
func (s store) latest(ctx context.Context, q querier) (*record, error) {
	r, err := scanRecord(q.QueryRow(ctx, `SELECT `+recordColumns+` FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 AND status <> 'rolled_back' ORDER BY id DESC LIMIT 1`, s.schema))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

// latestCompleted returns the newest completed migration, or nil.
func (s store) latestCompleted(ctx context.Context, q querier) (*record, error) {
	r, err := scanRecord(q.QueryRow(ctx, `SELECT `+recordColumns+` FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 AND status = 'completed' ORDER BY id DESC LIMIT 1`, s.schema))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

// get returns the newest attempt of migration name, or nil.
func (s store) get(ctx context.Context, q querier, name string) (*record, error) {
	r, err := scanRecord(q.QueryRow(ctx, `SELECT `+recordColumns+` FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 AND name = $2 ORDER BY id DESC LIMIT 1`, s.schema, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

func (s store) history(ctx context.Context, q querier) ([]*record, error) {
	rows, err := q.Query(ctx, `SELECT `+recordColumns+` FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 ORDER BY id`, s.schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// insert records a new migration as starting. Rolled-back attempts of the same name stay
// in the history.
func (s store) insert(ctx context.Context, q querier, r *record) error {
	before, err := json.Marshal(r.Before)
	if err != nil {
		return err
	}
	after, err := json.Marshal(r.After)
	if err != nil {
		return err
	}
	shapes, err := json.Marshal(r.Shapes)
	if err != nil {
		return err
	}
	if err := s.forget(ctx, q, r.Name); err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO `+qi(s.state, "migrations")+
		` (schema, name, parent, status, file, definition, before, after, shapes, includes, version_schema)
		  VALUES ($1, $2, nullif($3, ''), $4, nullif($5, ''), $6, $7, $8, $9, $10, nullif($11, ''))`,
		s.schema, r.Name, r.Parent, StatusStarting, r.File, r.Definition, before, after, shapes, r.Includes, r.VersionSchema)
	if err != nil {
		return fmt.Errorf("record migration %s: %w", r.Name, err)
	}
	return nil
}

// applied reports whether migration name was completed, on its own or as part of a
// combined migration.
func (s store) applied(ctx context.Context, q querier, name string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+qi(s.state, "migrations")+
		` WHERE schema = $1 AND status = 'completed' AND (name = $2 OR $2 = ANY (includes)))`, s.schema, name).Scan(&ok)
	return ok, err
}

func (s store) setStatus(ctx context.Context, q querier, name, status string) error {
	_, err := q.Exec(ctx, `UPDATE `+qi(s.state, "migrations")+
		` SET status = $3, completed_at = CASE WHEN $3 = 'completed' THEN now() END WHERE schema = $1 AND name = $2 AND status <> 'rolled_back'`,
		s.schema, name, status)
	if err != nil {
		return fmt.Errorf("record status %s of migration %s: %w", status, name, err)
	}
	return nil
}

// setDefinition replaces the recorded definition (corrected expressions).
func (s store) setDefinition(ctx context.Context, q querier, name string, def []byte) error {
	_, err := q.Exec(ctx, `UPDATE `+qi(s.state, "migrations")+` SET definition = $3 WHERE schema = $1 AND name = $2 AND status <> 'rolled_back'`, s.schema, name, def)
	return err
}

// setAfter replaces the recorded shape of the new version (after raw SQL changed it).
func (s store) setAfter(ctx context.Context, q querier, name string, after *Schema) error {
	data, err := json.Marshal(after)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `UPDATE `+qi(s.state, "migrations")+` SET after = $3 WHERE schema = $1 AND name = $2 AND status <> 'rolled_back'`, s.schema, name, data)
	return err
}

// markStep records that step of migration name is done.
func (s store) markStep(ctx context.Context, q querier, name, step string) error {
	_, err := q.Exec(ctx, "INSERT INTO "+qi(s.state, "steps")+" (schema, migration, step) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		s.schema, name, step)
	if err != nil {
		return fmt.Errorf("record step %s of migration %s: %w", step, name, err)
	}
	return nil
}

// stepDone reports whether step of migration name is recorded as done.
func (s store) stepDone(ctx context.Context, q querier, name, step string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+qi(s.state, "steps")+" WHERE schema = $1 AND migration = $2 AND step = $3)",
		s.schema, name, step).Scan(&ok)
	return ok, err
}

// forget deletes the migration's backfill chunks and step markers.
func (s store) forget(ctx context.Context, q querier, name string) error {
	for _, t := range []string{"backfill_chunks", "steps"} {
		if _, err := q.Exec(ctx, "DELETE FROM "+qi(s.state, t)+" WHERE schema = $1 AND migration = $2", s.schema, name); err != nil {
			return fmt.Errorf("clear %s of migration %s: %w", t, name, err)
		}
	}
	return nil
}
