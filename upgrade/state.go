package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Upgrade statuses.
const (
	StatusRunning  = "running"  // under way, or stopped by a crash or an error: resume it
	StatusAborting = "aborting" // abort under way, or interrupted: abort again
	StatusDone     = "done"
	StatusAborted  = "aborted"
)

// Record is one upgrade as the state schema holds it.
type Record struct {
	ID               int64     `json:"id"`
	App              string    `json:"app"`
	Schema           string    `json:"schema"`
	From             string    `json:"from"` // the release that ran before; "" for a first install
	To               string    `json:"to"`
	Release          *Release  `json:"release"`
	OldVersionSchema string    `json:"old_version_schema"`
	NewVersionSchema string    `json:"new_version_schema"`
	Migration        string    `json:"migration,omitempty"` // the expand step's migration; "" when none was pending
	Step             string    `json:"step"`                // the next step to run
	Status           string    `json:"status"`
	Error            string    `json:"error,omitempty"`
	Holder           string    `json:"holder,omitempty"`
	StartedAt        time.Time `json:"started_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	// Snapshots holds, per workload, what it ran before it rolled (see Backend.Snapshot).
	Snapshots map[string]json.RawMessage `json:"snapshots,omitempty"`
	// Events is the upgrade's timeline, oldest first.
	Events []Event `json:"events,omitempty"`
	// Mode is how the upgrade runs: rolling (""), downtime or rollback (see Mode*).
	Mode string `json:"mode,omitempty"`
	// PathID is the path (see ApplyPath) this upgrade is a hop of; 0 for none.
	PathID int64 `json:"path_id,omitempty"`
	// PendingContract is the deferred contract of an earlier release that this upgrade
	// completes first, if any.
	PendingContract *PendingContract `json:"pending_contract,omitempty"`
}

// Active reports whether the upgrade is still to be resumed or aborted.
func (r *Record) Active() bool { return r.Status == StatusRunning || r.Status == StatusAborting }

// Event is one line of an upgrade's timeline.
type Event struct {
	At       time.Time     `json:"at"`
	Step     string        `json:"step"`
	What     string        `json:"what"`
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// store reads and writes the upgrades tables in the state schema.
type store struct{ state string }

func (s store) table(name string) string { return pgx.Identifier{s.state, name}.Sanitize() }

func (s store) init(ctx context.Context, db querier) error {
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{s.state}.Sanitize(),
		`CREATE TABLE IF NOT EXISTS ` + s.table("upgrades") + ` (
			id                 bigserial PRIMARY KEY,
			app                text NOT NULL,
			schema             text NOT NULL,
			from_version       text NOT NULL DEFAULT '',
			to_version         text NOT NULL,
			release            jsonb NOT NULL,
			old_version_schema text NOT NULL DEFAULT '',
			new_version_schema text NOT NULL DEFAULT '',
			migration          text NOT NULL DEFAULT '',
			step               text NOT NULL,
			status             text NOT NULL,
			error              text NOT NULL DEFAULT '',
			holder             text NOT NULL DEFAULT '',
			snapshots          jsonb NOT NULL DEFAULT '{}',
			started_at         timestamptz NOT NULL DEFAULT now(),
			updated_at         timestamptz NOT NULL DEFAULT now())`,
		`CREATE UNIQUE INDEX IF NOT EXISTS upgrades_one_active ON ` + s.table("upgrades") +
			` (app) WHERE status IN ('running', 'aborting')`,
		`CREATE TABLE IF NOT EXISTS ` + s.table("upgrade_events") + ` (
			upgrade_id  bigint NOT NULL,
			seq         bigserial,
			at          timestamptz NOT NULL DEFAULT now(),
			step        text NOT NULL,
			what        text NOT NULL,
			duration_ms bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (upgrade_id, seq))`,
		`ALTER TABLE ` + s.table("upgrades") + ` ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT ''`,
		`ALTER TABLE ` + s.table("upgrades") + ` ADD COLUMN IF NOT EXISTS path_id bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE ` + s.table("upgrades") + ` ADD COLUMN IF NOT EXISTS pending_contract jsonb`,
	}
	stmts = append(stmts, s.pathTables()...)
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create the upgrade state in schema %q: %w", s.state, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "tandem.upgrade.state:"+s.state); err != nil {
		return fmt.Errorf("create the upgrade state in schema %q: %w", s.state, err)
	}
	for _, st := range stmts {
		if _, err := tx.Exec(ctx, st); err != nil {
			return fmt.Errorf("create the upgrade state in schema %q: %w", s.state, explainPermission(err, s.state))
		}
	}
	return tx.Commit(ctx)
}

// explainPermission adds the fix to a permission error.
func explainPermission(err error, state string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%w: tandem needs to own the state schema %q (or have CREATE on the database to make it): "+
			"GRANT CREATE ON DATABASE <db> TO <role>, or ALTER SCHEMA %s OWNER TO <role>", err, state, pgx.Identifier{state}.Sanitize())
	}
	return err
}

// querier is what the store needs of a connection.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

const recordColumns = `id, app, schema, from_version, to_version, release, old_version_schema, new_version_schema,
	migration, step, status, error, holder, snapshots, started_at, updated_at, mode, path_id, pending_contract`

func scanRecord(row pgx.Row) (*Record, error) {
	var r Record
	var rel, snaps []byte
	if err := row.Scan(&r.ID, &r.App, &r.Schema, &r.From, &r.To, &rel, &r.OldVersionSchema, &r.NewVersionSchema,
		&r.Migration, &r.Step, &r.Status, &r.Error, &r.Holder, &snaps, &r.StartedAt, &r.UpdatedAt,
		&r.Mode, &r.PathID, &r.PendingContract); err != nil {
		return nil, err
	}
	r.Release = &Release{}
	if err := json.Unmarshal(rel, r.Release); err != nil {
		return nil, fmt.Errorf("decode the stored release of upgrade %d: %w", r.ID, err)
	}
	if err := json.Unmarshal(snaps, &r.Snapshots); err != nil {
		return nil, fmt.Errorf("decode the stored snapshots of upgrade %d: %w", r.ID, err)
	}
	return &r, nil
}

// active returns the app's upgrade in progress, or nil.
func (s store) active(ctx context.Context, db querier, app string) (*Record, error) {
	return s.one(ctx, db, `WHERE app = $1 AND status IN ('running', 'aborting')`, app)
}

// last returns the app's newest upgrade, or nil.
func (s store) last(ctx context.Context, db querier, app string) (*Record, error) {
	return s.one(ctx, db, `WHERE app = $1`, app)
}

// lastDone returns the app's newest finished upgrade, or nil.
func (s store) lastDone(ctx context.Context, db querier, app string) (*Record, error) {
	return s.one(ctx, db, `WHERE app = $1 AND status = 'done'`, app)
}

func (s store) one(ctx context.Context, db querier, where string, args ...any) (*Record, error) {
	r, err := scanRecord(db.QueryRow(ctx, `SELECT `+recordColumns+` FROM `+s.table("upgrades")+` `+where+` ORDER BY id DESC LIMIT 1`, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
		return nil, nil // no upgrade state yet
	}
	return r, err
}

func (s store) insert(ctx context.Context, db querier, r *Record) error {
	rel, err := json.Marshal(r.Release)
	if err != nil {
		return err
	}
	err = db.QueryRow(ctx, `INSERT INTO `+s.table("upgrades")+` (app, schema, from_version, to_version, release,
			old_version_schema, new_version_schema, migration, step, status, holder, mode, path_id, pending_contract)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id, started_at, updated_at`,
		r.App, r.Schema, r.From, r.To, rel, r.OldVersionSchema, r.NewVersionSchema, r.Migration, r.Step, r.Status, r.Holder,
		r.Mode, r.PathID, r.PendingContract).
		Scan(&r.ID, &r.StartedAt, &r.UpdatedAt)
	if err != nil {
		return fmt.Errorf("record the upgrade: %w", err)
	}
	return nil
}

// save writes the record's step, status, error, holder and snapshots.
func (s store) save(ctx context.Context, db querier, r *Record) error {
	snaps, err := json.Marshal(r.Snapshots)
	if err != nil {
		return err
	}
	if r.Snapshots == nil {
		snaps = []byte("{}")
	}
	err = db.QueryRow(ctx, `UPDATE `+s.table("upgrades")+` SET step = $2, status = $3, error = $4, holder = $5,
			snapshots = $6, updated_at = now() WHERE id = $1 RETURNING updated_at`,
		r.ID, r.Step, r.Status, r.Error, r.Holder, snaps).Scan(&r.UpdatedAt)
	if err != nil {
		return fmt.Errorf("record upgrade %d at step %s: %w", r.ID, r.Step, err)
	}
	return nil
}

func (s store) event(ctx context.Context, db querier, id int64, e Event) error {
	_, err := db.Exec(ctx, `INSERT INTO `+s.table("upgrade_events")+` (upgrade_id, at, step, what, duration_ms)
		VALUES ($1, $2, $3, $4, $5)`, id, e.At, e.Step, e.What, e.Duration.Milliseconds())
	if err != nil {
		return fmt.Errorf("record an event of upgrade %d: %w", id, err)
	}
	return nil
}

func (s store) events(ctx context.Context, db querier, id int64) ([]Event, error) {
	rows, err := db.Query(ctx, `SELECT at, step, what, duration_ms FROM `+s.table("upgrade_events")+
		` WHERE upgrade_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		var ms int64
		err := row.Scan(&e.At, &e.Step, &e.What, &ms)
		e.Duration = time.Duration(ms) * time.Millisecond
		return e, err
	})
}

// InProgress returns the upgrade in progress (running or aborting) over the logical
// schema, or nil. `tandem complete` and `tandem rollback` refuse to end its migration.
func InProgress(ctx context.Context, db querier, stateSchema, schema string) (*Record, error) {
	if stateSchema == "" {
		stateSchema = "tandem"
	}
	return store{state: stateSchema}.one(ctx, db, `WHERE schema = $1 AND status IN ('running', 'aborting')`, schema)
}
