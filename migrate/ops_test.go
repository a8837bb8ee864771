package migrate

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// opCase is one operation's lifecycle: start → both versions → rollback → nothing left →
// start again → complete → final shape and data.
type opCase struct {
	name  string
	setup []string
	doc   string // migration "02" (name is set by the test)
	// during checks both versions while the migration is in progress.
	during func(t *testing.T, e *testEnv, old, new *pgxpool.Pool)
	// rolledBack checks the base schema after rollback (besides no leftovers).
	rolledBack func(t *testing.T, e *testEnv)
	// completed checks the base schema and the new version after complete.
	completed func(t *testing.T, e *testEnv, new *pgxpool.Pool)
}

const itemsTable = `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)`
const itemsRows = `INSERT INTO items (name, qty, note) SELECT 'n' || i, i, 'note ' || i FROM generate_series(1, 300) i`

func expectCols(t *testing.T, e *testEnv, schema, table, want string) {
	t.Helper()
	if got := e.columns(schema, table); got != want {
		t.Fatalf("columns of %s.%s:\n got %s\nwant %s", schema, table, got, want)
	}
}

func expectString(t *testing.T, q *pgxpool.Pool, sql, want string) {
	t.Helper()
	if got := queryString(t, q, sql); got != want {
		t.Fatalf("%s = %s, want %s", sql, got, want)
	}
}

func expectSQLState(t *testing.T, q *pgxpool.Pool, sql, state string) {
	t.Helper()
	_, err := q.Exec(context.Background(), sql)
	if sqlState(err) != state {
		t.Fatalf("%s: err = %v, want SQLSTATE %s", sql, err, state)
	}
}

// runOpCases runs the lifecycle of each case on a fresh database prepared with setup and
// the case's own setup: start → both versions → rollback → nothing left → start →
// complete → nothing left but the version schema → final checks.
func runOpCases(t *testing.T, setup []string, cases []opCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for _, s := range append(append([]string{}, setup...), tc.setup...) {
				e.exec(s)
			}
			doc := `{"name": "02", ` + tc.doc[1:]

			e.start(doc)
			old, new := e.version(""), e.version("02")
			tc.during(t, e, old, new)
			old.Close()
			new.Close()

			e.rollback()
			e.assertNoLeftovers()
			tc.rolledBack(t, e)

			e.start(doc)
			e.complete()
			e.assertNoLeftovers("public_02")
			tc.completed(t, e, e.version("02"))
		})
	}
}

func TestOperationLifecycles(t *testing.T) {
	origItems := "id bigint not null, name text not null, qty integer not null, note text"
	cases := []opCase{
		{
			name: "create_table",
			doc: `{"operations": [{"create_table": {"name": "orders", "comment": "orders", "columns": [
				{"name": "id", "type": "bigserial", "pk": true},
				{"name": "item_id", "type": "bigint", "references": {"name": "orders_item_fk", "table": "items", "column": "id", "on_delete": "CASCADE"}},
				{"name": "code", "type": "text", "unique": true},
				{"name": "amount", "type": "int", "default": "1", "check": {"name": "amount_positive", "constraint": "amount > 0"}},
				{"name": "memo", "type": "text", "nullable": true}],
				"constraints": [{"name": "orders_code_memo", "type": "unique", "columns": ["code", "memo"]}]}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO orders (item_id, code) VALUES (1, 'a')")
				expectString(t, new, "SELECT id::text || '/' || amount FROM orders", "1/1")
				expectSQLState(t, new, "INSERT INTO orders (item_id, code, amount) VALUES (1, 'b', 0)", "23514")
				expectSQLState(t, new, "INSERT INTO orders (item_id, code) VALUES (1, 'a')", "23505")
				expectSQLState(t, new, "INSERT INTO orders (item_id, code) VALUES (99999, 'c')", "23503")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT to_regclass('public.orders')::text", "<null>")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "orders", "id bigint not null, item_id bigint not null, code text not null, amount integer not null, memo text")
				mustExec(t, new, "INSERT INTO orders (item_id, code) VALUES (1, 'z')")
			},
		},
		{
			name: "drop_table",
			doc:  `{"operations": [{"drop_table": {"name": "items"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				expectSQLState(t, new, "SELECT 1 FROM items", "42P01")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT to_regclass('public.items')::text", "<null>")
			},
		},
		{
			name: "rename_table",
			doc:  `{"operations": [{"rename_table": {"from": "items", "to": "products"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				mustExec(t, new, "INSERT INTO products (name, qty) VALUES ('new', 2)")
				expectString(t, new, "SELECT count(*)::text FROM products WHERE name IN ('old', 'new')", "2")
				expectString(t, old, "SELECT count(*)::text FROM items WHERE name IN ('old', 'new')", "2")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "products", origItems)
				mustExec(t, new, "INSERT INTO products (name, qty) VALUES ('after', 3)")
			},
		},
		{
			name:  "add_column nullable with default, unique, check and references",
			setup: []string{`CREATE TABLE categories (id int PRIMARY KEY)`, `INSERT INTO categories VALUES (1), (2)`},
			doc: `{"operations": [
				{"add_column": {"table": "items", "column": {"name": "sku", "type": "text", "nullable": true, "unique": true}}},
				{"add_column": {"table": "items", "column": {"name": "weight", "type": "int", "nullable": true, "default": "10",
					"check": {"name": "weight_positive", "constraint": "weight > 0"}}}},
				{"add_column": {"table": "items", "column": {"name": "category_id", "type": "int", "nullable": true,
					"references": {"name": "items_category_fk", "table": "categories", "column": "id"}}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				expectString(t, new, "SELECT weight::text || coalesce(sku, '-') FROM items WHERE name = 'old'", "10-")
				mustExec(t, new, "INSERT INTO items (name, qty, sku, category_id) VALUES ('new', 1, 'S1', 2)")
				expectSQLState(t, new, "INSERT INTO items (name, qty, sku) VALUES ('dup', 1, 'S1')", "23505")
				expectSQLState(t, new, "INSERT INTO items (name, qty, weight) VALUES ('neg', 1, -1)", "23514")
				expectSQLState(t, new, "INSERT INTO items (name, qty, category_id) VALUES ('fk', 1, 42)", "23503")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", origItems+", sku text, weight integer, category_id integer")
				expectString(t, e.db, `SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint
					WHERE conrelid = 'items'::regclass AND contype <> 'p'`, "items_category_fk:true,items_sku_key:true,weight_positive:true")
			},
		},
		{
			name: "add_column NOT NULL with a default",
			doc:  `{"operations": [{"add_column": {"table": "items", "column": {"name": "active", "type": "boolean", "default": "true"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE active", "301")
				expectSQLState(t, new, "INSERT INTO items (name, qty, active) VALUES ('x', 1, NULL)", "23502")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", origItems+", active boolean not null")
			},
		},
		{
			name: "drop_column with down",
			doc:  `{"operations": [{"drop_column": {"table": "items", "column": "qty", "down": "length(name)"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectCols(t, e, "public_02", "items", "id bigint, name text, note text")
				mustExec(t, new, "INSERT INTO items (name) VALUES ('abcd')")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'abcd'", "4")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 7)")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'old'", "7")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, note text")
				mustExec(t, new, "INSERT INTO items (name) VALUES ('after')")
			},
		},
		{
			name: "rename_column",
			doc:  `{"operations": [{"rename_column": {"table": "items", "from": "note", "to": "description"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty, note) VALUES ('old', 1, 'from old')")
				mustExec(t, new, "INSERT INTO items (name, qty, description) VALUES ('new', 1, 'from new')")
				expectString(t, new, "SELECT description FROM items WHERE name = 'old'", "from old")
				expectString(t, old, "SELECT note FROM items WHERE name = 'new'", "from new")
			},
			rolledBack: func(t *testing.T, e *testEnv) { expectCols(t, e, "public", "items", origItems) },
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, description text")
				expectString(t, new, "SELECT description FROM items WHERE id = 1", "note 1")
			},
		},
		{
			name: "create_index",
			doc: `{"operations": [
				{"create_index": {"name": "items_name_idx", "table": "items", "columns": ["name"], "unique": true}},
				{"create_index": {"name": "items_qty_partial", "table": "items", "columns": {"qty": {"sort": "DESC"}}, "predicate": "qty > 100", "method": "btree"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectSQLState(t, old, "INSERT INTO items (name, qty) VALUES ('n1', 1)", "23505")
				expectString(t, e.db, "SELECT pg_get_indexdef('items_qty_partial'::regclass)",
					"CREATE INDEX items_qty_partial ON public.items USING btree (qty DESC) WHERE (qty > 100)")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM pg_class WHERE relname IN ('items_name_idx', 'items_qty_partial')", "0")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT count(*)::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname IN ('items_name_idx', 'items_qty_partial') AND x.indisvalid", "2")
			},
		},
		{
			name:  "drop_index",
			setup: []string{`CREATE INDEX items_qty_idx ON items (qty)`},
			doc:   `{"operations": [{"drop_index": {"name": "items_qty_idx"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT to_regclass('items_qty_idx')::text", "items_qty_idx")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT to_regclass('items_qty_idx')::text", "items_qty_idx")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT to_regclass('items_qty_idx')::text", "<null>")
			},
		},
		{
			name: "sql with down",
			doc:  `{"operations": [{"sql": {"up": "CREATE TABLE audit (id int); INSERT INTO audit VALUES (1)", "down": "DROP TABLE audit"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, new, "SELECT count(*)::text FROM audit", "1")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('new', 1)")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT to_regclass('public.audit')::text", "<null>")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, new, "SELECT count(*)::text FROM audit", "1")
			},
		},
		{
			name: "sql onComplete",
			doc:  `{"operations": [{"sql": {"up": "UPDATE items SET note = 'done'", "onComplete": true}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, new, "SELECT count(*)::text FROM items WHERE note = 'done'", "0")
			},
			rolledBack: func(t *testing.T, e *testEnv) {},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, new, "SELECT count(*)::text FROM items WHERE note = 'done'", "300")
			},
		},
	}
	runOpCases(t, []string{itemsTable, itemsRows}, cases)
}

// TestSecondMigrationDropsTheFirstVersionSchema: the version schema of the previous
// migration lives until the next migration completes; the old version works meanwhile.
func TestSecondMigrationDropsTheFirstVersionSchema(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`)
	e.complete()
	e.start(`{"name": "03", "operations": [{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "double", "type": "int"}}}]}`)
	v2, v3 := e.version("02"), e.version("03")
	mustExec(t, v2, "INSERT INTO items (name, qty, memo) VALUES ('v2', 21, 'm')")
	expectString(t, v3, "SELECT double::text || memo FROM items WHERE name = 'v2'", "42m")
	v2.Close()
	e.complete()
	e.assertNoLeftovers("public_03")
	expectCols(t, e, "public_03", "items", "id bigint, name text, qty integer, memo text, double integer")
}

// TestCreateIndexAfterARenameInTheSameMigration: the predicate and the key use the names
// as the operation sees them.
func TestCreateIndexAfterARenameInTheSameMigration(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [
		{"rename_column": {"table": "items", "from": "note", "to": "memo"}},
		{"create_index": {"name": "items_memo_idx", "table": "items", "columns": ["memo"], "predicate": "memo <> ''"}}]}`)
	expectString(t, e.db, "SELECT pg_get_indexdef('items_memo_idx'::regclass)", "CREATE INDEX items_memo_idx ON public.items USING btree (note) WHERE (note <> ''::text)")
	e.complete()
	expectString(t, e.db, "SELECT pg_get_indexdef('items_memo_idx'::regclass)", "CREATE INDEX items_memo_idx ON public.items USING btree (memo) WHERE (memo <> ''::text)")
}

// TestUpIsCastLikeValidationCasts: an up whose type only converts by an explicit cast
// passes validation and fills the column the same way.
func TestUpIsCastLikeValidationCasts(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "'1' || qty", "column": {"name": "code", "type": "int"}}}]}`)
	expectString(t, e.version("02"), "SELECT code::text FROM items WHERE id = 7", "17")
	mustExec(t, e.version(""), "INSERT INTO items (name, qty) VALUES ('x', 5)")
	expectString(t, e.version("02"), "SELECT code::text FROM items WHERE name = 'x'", "15")
}

// TestCreateDropCreateIndexInOneMigration: an index made and dropped in the same
// migration is dropped at start, so a later index of the same name is built and kept
// (pgroll's examples 10, 11 and 38 applied as one step).
func TestCreateDropCreateIndexInOneMigration(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [
		{"create_index": {"name": "items_name_idx", "table": "items", "columns": ["name"]}},
		{"drop_index": {"name": "items_name_idx"}},
		{"create_index": {"name": "items_name_idx", "table": "items", "columns": [{"column": "name"}], "method": "hash", "storage_parameters": "fillfactor = 70"}}]}`)
	want := "CREATE INDEX items_name_idx ON public.items USING hash (name) WITH (fillfactor='70')"
	expectString(t, e.db, "SELECT pg_get_indexdef('items_name_idx'::regclass)", want)
	e.complete()
	expectString(t, e.db, "SELECT pg_get_indexdef('items_name_idx'::regclass)", want)

	// An index that existed before the migration is still dropped at complete only.
	e.start(`{"name": "03", "operations": [{"drop_index": {"name": "items_name_idx"}}]}`)
	expectString(t, e.db, "SELECT count(*)::text FROM pg_class WHERE relname = 'items_name_idx'", "1")
	e.complete()
	expectString(t, e.db, "SELECT count(*)::text FROM pg_class WHERE relname = 'items_name_idx'", "0")
}
