package migrate

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestDropConstraintLifecycles(t *testing.T) {
	cases := []opCase{
		{
			name:  "check on one column, column found from the constraint",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)`},
			doc:   `{"operations": [{"drop_constraint": {"table": "items", "name": "qty_small", "up": "qty", "down": "least(qty, 999)"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('new', 5000)")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'new'", "999")
				expectSQLState(t, old, "INSERT INTO items (name, qty) VALUES ('old', 5000)", "23514")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_small:c:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('after', 5000)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'after'", "5000")
			},
		},
		{
			name:  "on a column renamed in the same migration, with the column named",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT note_short CHECK (length(note) < 20)`},
			doc: `{"operations": [
				{"rename_column": {"table": "items", "from": "note", "to": "memo"}},
				{"drop_constraint": {"table": "items", "name": "note_short", "column": "memo", "down": "substr(memo, 1, 19)"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO items (name, qty, memo) VALUES ('new', 1, repeat('x', 30))")
				expectString(t, old, "SELECT length(note)::text FROM items WHERE name = 'new'", "19")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,note_short:c:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, memo text")
			},
		},
	}
	runConstraintCases(t, cases)
}
