package migrate

import (
	"context"
	"encoding/json"
)

// Pending returns the migrations of migs, in order, that this schema has not applied: not
// completed, not in progress. The orchestrator (package upgrade) plans with it.
func (m *Migrator) Pending(ctx context.Context, migs []*Migration) ([]*Migration, error) {
	ok, err := m.st.initialized(ctx, m.conn)
	if err != nil {
		return nil, err
	}
	if !ok {
		return migs, nil
	}
	var pending []*Migration
	for _, mig := range migs {
		done, err := m.st.applied(ctx, m.conn, mig.Name)
		if err != nil {
			return nil, err
		}
		if !done {
			pending = append(pending, mig)
		}
	}
	return pending, nil
}

// VersionSchemaFor names the version schema that mig (a migration or a Combine of
// several) exposes once started.
func (m *Migrator) VersionSchemaFor(mig *Migration) string {
	return m.versionSchemaOfMigration(mig)
}

// BackfillEstimate is a table a migration fills, with the rows the catalog expects it
// to hold.
type BackfillEstimate struct {
	Operation string `json:"operation"`
	Table     string `json:"table"`
	// Rows is pg_class.reltuples: the planner's estimate, not a count; -1 when the
	// table was never analyzed.
	Rows int64 `json:"rows_estimate"`
}

// EstimateBackfills lists the operations of mig that fill existing rows (a column with
// an up expression on a table that exists now), with the catalog's row estimates.
func (m *Migrator) EstimateBackfills(ctx context.Context, mig *Migration) ([]BackfillEstimate, error) {
	var doc struct {
		Operations []map[string]struct {
			Table  string          `json:"table"`
			Up     json.RawMessage `json:"up"`
			Column json.RawMessage `json:"column"` // an object (add_column) or a name (alter_column)
		} `json:"operations"`
	}
	if err := json.Unmarshal(mig.Raw, &doc); err != nil {
		return nil, nil // not ours to judge here: Validate reports malformed files
	}
	var out []BackfillEstimate
	for _, op := range doc.Operations {
		for kind, body := range op {
			up := body.Up
			var col struct {
				Up json.RawMessage `json:"up"`
			}
			if json.Unmarshal(body.Column, &col) == nil && len(col.Up) > 0 {
				up = col.Up
			}
			if body.Table == "" || len(up) == 0 || string(up) == "null" {
				continue
			}
			var exists bool
			var rows float64
			err := m.conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(max(c.reltuples), -1)::float8 FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
				m.opts.Schema, body.Table).Scan(&exists, &rows)
			if err != nil {
				return nil, err
			}
			if !exists {
				continue // made by this migration, or renamed by it: nothing to fill yet
			}
			out = append(out, BackfillEstimate{Operation: kind, Table: body.Table, Rows: int64(rows)})
		}
	}
	return out, nil
}
