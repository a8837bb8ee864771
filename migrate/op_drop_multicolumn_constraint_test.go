package migrate

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestDropMultiColumnConstraintLifecycles(t *testing.T) {
	cases := []opCase{
		{
			name:  "check over two columns with down",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT name_qty CHECK (length(name) < 10 AND qty < 1000)`},
			doc: `{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "name_qty",
				"up": {"name": "name", "qty": "qty"}, "down": {"name": "substr(name, 1, 9)", "qty": "least(qty, 999)"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				// The new version's writes are mapped so that the old rule still holds.
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('a very long name', 5000)")
				expectString(t, old, "SELECT name || '/' || qty FROM items WHERE name LIKE 'a very%'", "a very lo/999")
				// The old version is still held to it, and its writes are not mapped.
				expectSQLState(t, old, "INSERT INTO items (name, qty) VALUES ('old', 5000)", "23514")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 998)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old'", "998")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,name_qty:c:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('another long name', 5000)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'another long name'", "5000")
			},
		},
		{
			name:  "unique over two columns without down",
			setup: []string{`ALTER TABLE items ADD CONSTRAINT items_name_qty_key UNIQUE (name, qty)`},
			doc:   `{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_name_qty_key"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectSQLState(t, old, "INSERT INTO items (name, qty) VALUES ('n1', 1)", "23505")
				expectString(t, e.db, "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal", "0")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_name_qty_key:u:true,items_pkey:p:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
				expectString(t, e.db, "SELECT coalesce(to_regclass('items_name_qty_key')::text, '<gone>')", "<gone>")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('n1', 1)")
			},
		},
		{
			name: "foreign key over two columns",
			setup: []string{
				`CREATE TABLE cats (a int, b int, PRIMARY KEY (a, b))`,
				`INSERT INTO cats VALUES (1, 1)`,
				`ALTER TABLE items ADD COLUMN ca int, ADD COLUMN cb int`,
				`ALTER TABLE items ADD CONSTRAINT items_cat_fk FOREIGN KEY (ca, cb) REFERENCES cats (a, b)`,
			},
			doc: `{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_cat_fk",
				"down": {"ca": "CASE WHEN EXISTS (SELECT 1 FROM cats WHERE a = ca AND b = cb) THEN ca END"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO items (name, qty, ca, cb) VALUES ('new', 1, 7, 7)")
				expectString(t, old, "SELECT coalesce(ca::text, '<null>') FROM items WHERE name = 'new'", "<null>")
				expectSQLState(t, old, "INSERT INTO items (name, qty, ca, cb) VALUES ('old', 1, 7, 7)", "23503")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, constraintsQuery("items"), "items_cat_fk:f:true,items_pkey:p:true")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true")
				mustExec(t, new, "INSERT INTO items (name, qty, ca, cb) VALUES ('after', 1, 7, 7)")
			},
		},
	}
	runConstraintCases(t, cases)
}

func TestDropConstraintValidation(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.exec(`ALTER TABLE items ADD CONSTRAINT name_qty CHECK (length(name) < 10 AND qty < 1000)`)
	e.exec(`CREATE TABLE refs (item_id bigint REFERENCES items (id))`)
	multi := func(body string) string {
		return `{"name": "02", "operations": [{"drop_multicolumn_constraint": ` + body + `}]}`
	}
	single := func(body string) string {
		return `{"name": "02", "operations": [{"drop_constraint": ` + body + `}]}`
	}
	cases := []struct{ doc, field, want string }{
		{multi(`{"table": "itemz", "name": "name_qty"}`), "table", "does not exist"},
		{multi(`{"table": "items", "name": "name_qtx"}`), "name", `did you mean "name_qty"`},
		{multi(`{"table": "items", "name": "name_qty", "down": {"note": "note"}}`), "down", "not one of the constraint's columns"},
		{multi(`{"table": "items", "name": "name_qty", "down": {"nmae": "name"}}`), "down", `column "nmae" does not exist`},
		{multi(`{"table": "items", "name": "name_qty", "down": {"qty": "qty::point"}}`), "down.qty", "not valid"},
		{multi(`{"table": "items", "name": "items_pkey"}`), "name", "foreign keys reference"},
		{single(`{"table": "items", "name": "name_qty", "down": "least(qty, 999)"}`), "column", "exactly one column"},
		{single(`{"table": "items", "name": "name_qty", "column": "note", "down": "note"}`), "down", "not one of the constraint's columns"},
		{single(`{"table": "items", "name": "nope", "up": "qty", "down": "qty"}`), "name", "does not exist"},
		{`{"name": "02", "operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "name_qty"}},
			{"drop_multicolumn_constraint": {"table": "items", "name": "name_qty"}}]}`, "name", "does not exist"},
	}
	for _, c := range cases {
		expectInputError(t, e, c.doc, c.field, c.want)
	}
	e.assertNoLeftovers()
}
