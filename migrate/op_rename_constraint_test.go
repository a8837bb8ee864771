package migrate

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestRenameConstraintLifecycles(t *testing.T) {
	cases := []opCase{
		{
			name:  "check",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)`},
			doc:   `{"operations": [{"rename_constraint": {"table": "items", "from": "qty_small", "to": "qty_below_1000"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				// The old version may rely on the name in its errors: it stays until complete.
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_small:c:true")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_small:c:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_below_1000:c:true")
			},
		},
		{
			name:  "unique renames its index",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name)`},
			doc:   `{"operations": [{"rename_constraint": {"table": "items", "from": "items_name_key", "to": "items_unique_name"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT to_regclass('items_name_key')::text", "items_name_key")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_name_key:u:true,items_pkey:p:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,items_unique_name:u:true")
				expectString(t, e.db, "SELECT to_regclass('items_unique_name')::text", "items_unique_name")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('n1', 1)", "23505")
			},
		},
		{
			name: "constraint created earlier in the same migration",
			doc: `{"operations": [
				{"create_constraint": {"table": "items", "name": "qty_positive", "type": "check", "check": "qty > 0"}},
				{"rename_constraint": {"table": "items", "from": "qty_positive", "to": "qty_above_zero"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('new', 0)", "23514")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_above_zero:c:true")
			},
		},
	}
	runConstraintCases(t, cases)
}

func TestRenameConstraintValidation(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)`)
	e.exec(`ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name)`)
	e.exec(`CREATE INDEX items_qty_idx ON items (qty)`)
	op := func(body string) string { return `{"name": "02", "operations": [{"rename_constraint": ` + body + `}]}` }
	cases := []struct{ body, field, want string }{
		{`{"table": "itemz", "from": "qty_small", "to": "x"}`, "table", "does not exist"},
		{`{"table": "items", "from": "qty_smal", "to": "x"}`, "from", `did you mean "qty_small"`},
		{`{"table": "items", "from": "qty_small", "to": "items_name_key"}`, "to", "already exists"},
		{`{"table": "items", "from": "items_name_key", "to": "items_qty_idx"}`, "to", "already exists"},
	}
	for _, c := range cases {
		expectInputError(t, e, op(c.body), c.field, c.want)
	}
	// A check constraint owns no index: its name may equal an index's.
	if err := e.m.Validate(t.Context(), e.parse(op(`{"table": "items", "from": "qty_small", "to": "items_qty_idx"}`))); err != nil {
		t.Fatalf("renaming a check to an index's name: %v", err)
	}
}

func TestConstraintOperationsTogether(t *testing.T) {
	cases := []opCase{
		{
			name: "drop, rename and create in one migration",
			setup: []string{
				`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)`,
				`ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name)`,
			},
			doc: `{"operations": [
				{"drop_multicolumn_constraint": {"table": "items", "name": "qty_small", "down": {"qty": "least(qty, 999)"}}},
				{"rename_constraint": {"table": "items", "from": "items_name_key", "to": "items_name_unique"}},
				{"create_constraint": {"table": "items", "name": "qty_positive", "type": "check", "check": "qty > 0", "columns": ["qty"], "up": {"qty": "greatest(qty, 1)"}}},
				{"create_constraint": {"table": "items", "name": "items_note_key", "type": "unique", "columns": ["note"]}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO items (name, qty, note) VALUES ('new', 5000, 'n')")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'new'", "999")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('neg', -1)", "23514")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', -1)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old'", "1")
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('dup', 1, 'note 1')", "23505")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_name_key:u:true,items_pkey:p:true,qty_small:c:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_name_unique:u:true,items_note_key:u:true,items_pkey:p:true,qty_positive:c:true")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('big', 5000)")
			},
		},
	}
	runConstraintCases(t, cases)
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)`)
	expectInputError(t, e, `{"name": "02", "operations": [
		{"drop_multicolumn_constraint": {"table": "items", "name": "qty_small"}},
		{"create_constraint": {"table": "items", "name": "qty_small", "type": "check", "check": "qty < 100"}}]}`, "name", "until this migration completes")
	expectInputError(t, e, `{"name": "02", "operations": [
		{"drop_multicolumn_constraint": {"table": "items", "name": "qty_small"}},
		{"rename_constraint": {"table": "items", "from": "items_pkey", "to": "qty_small"}}]}`, "to", "until this migration completes")
}
