package migrate

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// createVersionSchema (re)creates the new version's schema: one view per table, exposing
// the columns under the names the new version uses, with the column defaults carried over
// so that inserts through a view behave like inserts into the table. It runs in one
// transaction, so a version schema is either complete or absent.
func (m *Migrator) createVersionSchema(ctx context.Context, rec *record) error {
	vs := m.versionSchemaOf(rec)
	stmts := []string{
		"DROP SCHEMA IF EXISTS " + qi(vs) + " CASCADE",
		"CREATE SCHEMA " + qi(vs),
		"COMMENT ON SCHEMA " + qi(vs) + " IS " + ql("Tandem version schema of migration "+rec.Name+" on schema "+m.opts.Schema),
	}
	var tables []string
	for _, t := range rec.After.sortedTables() {
		stmts = append(stmts, viewDDL(m.opts.Schema, vs, t, m.serverVersion >= 150000)...)
		tables = append(tables, qi(m.opts.Schema, t.Physical))
	}
	if m.serverVersion >= 150000 {
		// security_invoker views check the caller's rights on the tables, so granting the
		// views to everyone grants nothing the caller could not already do.
		stmts = append(stmts,
			"GRANT USAGE ON SCHEMA "+qi(vs)+" TO PUBLIC",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+qi(vs)+" TO PUBLIC")
	}
	// Views need ACCESS SHARE locks on the tables: only an ACCESS EXCLUSIVE lock held by
	// another session is in the way, not a long reader.
	return m.execLockedConflicting(ctx, tables, sharedOnly, stmts...)
}

// viewDDL returns the statements that create the view of t in version schema vs.
func viewDDL(base, vs string, t *Table, securityInvoker bool) []string {
	cols := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		cols = append(cols, qi(c.Physical)+" AS "+qi(c.Name))
	}
	with := ""
	if securityInvoker {
		with = " WITH (security_invoker = true)"
	}
	view := qi(vs, t.Name)
	stmts := []string{"CREATE VIEW " + view + with + " AS SELECT " + strings.Join(cols, ", ") + " FROM " + qi(base, t.Physical)}
	for _, c := range t.Columns {
		if c.ViewDefault != nil {
			stmts = append(stmts, "ALTER VIEW "+view+" ALTER COLUMN "+qi(c.Name)+" SET DEFAULT "+*c.ViewDefault)
		}
	}
	return stmts
}

// dropVersionSchema drops a version schema and its views under the lock policy. Dropping
// a view needs an ACCESS EXCLUSIVE lock on it, so a session of that version in a long
// transaction is waited for (not queued behind) and named if it does not finish.
func (m *Migrator) dropVersionSchema(ctx context.Context, vs string) error {
	rows, err := m.conn.Query(ctx, "SELECT format('%I.%I', schemaname, viewname) FROM pg_views WHERE schemaname = $1 ORDER BY 1", vs)
	if err != nil {
		return err
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	return m.execLocked(ctx, views, "DROP SCHEMA IF EXISTS "+qi(vs)+" CASCADE")
}
