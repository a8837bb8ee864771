package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/buildinfo"
)

// addedStateColumns adds the columns later versions of Tandem keep in the state schema to
// tables an earlier version created. Every statement is idempotent.
func addedStateColumns(state string) []string {
	return []string{
		// The throttle's state (a BackfillThrottle, as JSON) when the batch was saved.
		"ALTER TABLE " + qi(state, "backfill_chunks") + " ADD COLUMN IF NOT EXISTS throttle jsonb",
		// The Tandem version that ran each step of the migration: {"start": "v1.2.0
		// (commit abc1234)", "complete": ...}.
		"ALTER TABLE " + qi(state, "migrations") + " ADD COLUMN IF NOT EXISTS tandem_versions jsonb NOT NULL DEFAULT '{}'",
	}
}

// recordTandemVersion records that this build of Tandem ran step ("start", "complete" or
// "rollback") of migration name, on the migration's newest attempt.
func (s store) recordTandemVersion(ctx context.Context, q querier, name, step string) error {
	_, err := q.Exec(ctx, "UPDATE "+qi(s.state, "migrations")+
		" SET tandem_versions = tandem_versions || jsonb_build_object($3::text, $4::text)"+
		" WHERE id = (SELECT max(id) FROM "+qi(s.state, "migrations")+" WHERE schema = $1 AND name = $2)",
		s.schema, name, step, buildinfo.Read().String())
	if err != nil {
		return fmt.Errorf("record the Tandem version of step %s of migration %s: %w", step, name, err)
	}
	return nil
}

// addTandemVersions fills in the Tandem version of each step of the history st.History,
// which lists the schema's migrations in the order they were recorded.
func (m *Migrator) addTandemVersions(ctx context.Context, st *Status) error {
	// Through to_jsonb: a state schema an older Tandem made has no such column.
	rows, err := m.conn.Query(ctx, "SELECT name, coalesce(to_jsonb(m) -> 'tandem_versions', '{}') FROM "+qi(m.opts.StateSchema, "migrations")+
		" AS m WHERE schema = $1 ORDER BY id", m.opts.Schema)
	if err != nil {
		return fmt.Errorf("read the Tandem versions of the history: %w", err)
	}
	type entry struct {
		name     string
		versions map[string]string
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (entry, error) {
		var e entry
		err := row.Scan(&e.name, &e.versions)
		return e, err
	})
	if err != nil {
		return fmt.Errorf("read the Tandem versions of the history: %w", err)
	}
	for i := range st.History {
		if i < len(entries) && entries[i].name == st.History[i].Name && len(entries[i].versions) > 0 {
			st.History[i].TandemVersions = entries[i].versions
		}
	}
	return nil
}
