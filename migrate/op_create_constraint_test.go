package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// runConstraintCases runs the lifecycle of each case over items (itemsTable, itemsRows)
// plus the case's setup (see runOpCases).
func runConstraintCases(t *testing.T, cases []opCase) {
	t.Helper()
	runOpCases(t, []string{itemsTable, itemsRows}, cases)
}

// expectNoCopy fails if items got Tandem shadow columns: the constraint operations change
// the table in place.
func expectNoCopy(t *testing.T, e *testEnv) {
	t.Helper()
	if s := shadowColumns(t, e); s != "" {
		t.Fatalf("shadow columns: %q", s)
	}
}

func TestCreateConstraintLifecycles(t *testing.T) {
	cases := []opCase{
		{
			name: "check with up",
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "qty_positive", "type": "check",
				"check": "qty > 0", "columns": ["qty"], "up": {"qty": "greatest(qty, 1)"}, "down": {"qty": "qty"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				expectString(t, e.db, "SELECT convalidated::text FROM pg_constraint WHERE conname = 'qty_positive'", "false")
				// The old version's violating writes are mapped through up.
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', -5)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old'", "1")
				mustExec(t, old, "UPDATE items SET qty = -7 WHERE id = 1")
				expectString(t, new, "SELECT qty::text FROM items WHERE id = 1", "1")
				// The new version is held to the rule.
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('new', -5)", "23514")
				expectSQLState(t, new, "UPDATE items SET qty = 0 WHERE id = 2", "23514")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('new', 5)")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM pg_constraint WHERE conname = 'qty_positive'", "0")
				mustExec(t, e.db, "INSERT INTO items (name, qty) VALUES ('after rollback', -1)")
				mustExec(t, e.db, "DELETE FROM items WHERE name = 'after rollback'")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'qty_positive'", "CHECK ((qty > 0))")
				expectString(t, e.db, "SELECT convalidated::text FROM pg_constraint WHERE conname = 'qty_positive'", "true")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('new', -5)", "23514")
				expectString(t, e.db, "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal", "0")
			},
		},
		{
			name: "check over several columns, on a column renamed in the same migration",
			doc: `{"operations": [
				{"rename_column": {"table": "items", "from": "note", "to": "memo"}},
				{"create_constraint": {"table": "items", "name": "memo_or_qty", "type": "check", "check": "memo IS NOT NULL OR qty < 1000",
					"columns": ["memo", "qty"], "up": {"memo": "coalesce(memo, 'none')", "qty": "qty"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				mustExec(t, old, "INSERT INTO items (name, qty, note) VALUES ('old', 5000, NULL)")
				expectString(t, new, "SELECT memo FROM items WHERE name = 'old'", "none")
				expectSQLState(t, new, "INSERT INTO items (name, qty, memo) VALUES ('new', 5000, NULL)", "23514")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, memo text")
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) || ':' || convalidated FROM pg_constraint WHERE conname = 'memo_or_qty'",
					"CHECK (((memo IS NOT NULL) OR (qty < 1000))):true")
			},
		},
		{
			name: "check on one column that existing rows break copies the column",
			setup: []string{
				`CREATE INDEX items_qty_idx ON items (qty)`,
				`ALTER TABLE items ALTER COLUMN qty SET DEFAULT 20`,
			},
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "qty_above_10", "type": "check",
				"check": "qty > 10", "columns": ["qty"], "up": {"qty": "greatest(qty, 11)"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); s != "_tandem_new_qty" {
					t.Fatalf("shadow columns: %q", s)
				}
				expectString(t, new, "SELECT string_agg(qty::text, ',' ORDER BY id) FROM items WHERE id IN (1, 10, 11, 12)", "11,11,11,12")
				expectString(t, old, "SELECT string_agg(qty::text, ',' ORDER BY id) FROM items WHERE id IN (1, 10, 11, 12)", "1,10,11,12")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 5)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old'", "11")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'old'", "5")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('new', 3)", "23514")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('new', 50)")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'new'", "50")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
				expectString(t, e.db, "SELECT qty::text FROM items WHERE id = 1", "1")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, note text, qty integer not null")
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) || ':' || convalidated FROM pg_constraint WHERE conname = 'qty_above_10'", "CHECK ((qty > 10)):true")
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE qty <= 10", "0")
				expectString(t, e.db, "SELECT pg_get_indexdef('items_qty_idx'::regclass)", "CREATE INDEX items_qty_idx ON public.items USING btree (qty)")
				mustExec(t, new, "INSERT INTO items (name) VALUES ('default')")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'default'", "20")
			},
		},
		{
			name:  "unique on one column that existing rows break copies the column",
			setup: []string{`UPDATE items SET note = 'dup' WHERE id <= 3`},
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_note_key", "type": "unique",
				"columns": ["note"], "up": {"note": "CASE WHEN note = 'dup' THEN note || id ELSE note END"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); s != "_tandem_new_note" {
					t.Fatalf("shadow columns: %q", s)
				}
				expectString(t, new, "SELECT string_agg(note, ',' ORDER BY id) FROM items WHERE id <= 4", "dup1,dup2,dup3,note 4")
				expectString(t, old, "SELECT string_agg(note, ',' ORDER BY id) FROM items WHERE id <= 4", "dup,dup,dup,note 4")
				mustExec(t, old, "INSERT INTO items (name, qty, note) VALUES ('old', 1, 'dup')")
				expectString(t, new, "SELECT note FROM items WHERE name = 'old'", "dup"+queryString(t, new, "SELECT id::text FROM items WHERE name = 'old'"))
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('new', 1, 'note 5')", "23505")
				mustExec(t, new, "INSERT INTO items (name, qty, note) VALUES ('new', 1, 'fresh')")
				expectString(t, old, "SELECT note FROM items WHERE name = 'new'", "fresh")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE note = 'dup'", "4")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
				expectString(t, e.db, constraintsQuery("items"), "items_note_key:u:true,items_pkey:p:true")
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE note = 'dup'", "0")
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('x', 1, 'note 5')", "23505")
			},
		},
		{
			name: "foreign key on one column that existing rows break copies the column",
			setup: []string{
				`CREATE TABLE cats (id int PRIMARY KEY)`, `INSERT INTO cats VALUES (1), (2)`,
				`ALTER TABLE items ADD COLUMN cat int`, `UPDATE items SET cat = 1 + id % 3`,
			},
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_cat_fk", "type": "foreign_key", "columns": ["cat"],
				"references": {"table": "cats", "columns": ["id"], "on_delete": "SET NULL"}, "up": {"cat": "CASE WHEN cat IN (1, 2) THEN cat END"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, new, "SELECT count(*)::text FROM items WHERE cat IS NULL", "100")
				expectString(t, old, "SELECT count(*)::text FROM items WHERE cat = 3", "100")
				mustExec(t, old, "INSERT INTO items (name, qty, cat) VALUES ('old', 1, 9)")
				expectString(t, new, "SELECT coalesce(cat::text, '<null>') FROM items WHERE name = 'old'", "<null>")
				expectSQLState(t, new, "INSERT INTO items (name, qty, cat) VALUES ('new', 1, 5)", "23503")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE cat = 3", "100")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text, cat integer")
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) || ':' || convalidated FROM pg_constraint WHERE conname = 'items_cat_fk'",
					"FOREIGN KEY (cat) REFERENCES cats(id) ON DELETE SET NULL:true")
				mustExec(t, e.db, "DELETE FROM cats WHERE id = 2")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE cat = 2", "0")
			},
		},
		{
			name:  "unique over two columns that existing rows break copies both",
			setup: []string{`UPDATE items SET name = 'same', qty = 1 WHERE id <= 3`},
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_name_qty_key", "type": "unique",
				"columns": ["name", "qty"], "up": {"qty": "CASE WHEN name = 'same' THEN id::int ELSE qty END"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); !strings.Contains(s, "_tandem_new_name") || !strings.Contains(s, "_tandem_new_qty") {
					t.Fatalf("shadow columns: %q", s)
				}
				expectString(t, new, "SELECT string_agg(name || qty, ',' ORDER BY id) FROM items WHERE id <= 4", "same1,same2,same3,n44")
				expectString(t, old, "SELECT string_agg(name || qty, ',' ORDER BY id) FROM items WHERE id <= 4", "same1,same1,same1,n44")
				mustExec(t, old, "INSERT INTO items (id, name, qty) VALUES (1000, 'same', 1)")
				expectString(t, new, "SELECT qty::text FROM items WHERE id = 1000", "1000")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('same', 2)", "23505")
				mustExec(t, new, "INSERT INTO items (id, name, qty) VALUES (1001, 'new', 7)")
				expectString(t, old, "SELECT name || qty FROM items WHERE id = 1001", "new7")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE name = 'same' AND qty = 1", "4")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, note text, name text not null, qty integer not null")
				expectString(t, e.db, constraintsQuery("items"), "items_name_qty_key:u:true,items_pkey:p:true")
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_name_qty_key'", "UNIQUE (name, qty)")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('same', 2)", "23505")
			},
		},
		{
			name: "primary key that existing rows break copies the column",
			setup: []string{
				`CREATE TABLE tags (code text, label text)`,
				`INSERT INTO tags SELECT CASE WHEN i % 10 = 0 THEN NULL ELSE 't' || i END, 'label' || i FROM generate_series(1, 200) i`,
			},
			doc: `{"operations": [{"create_constraint": {"table": "tags", "name": "tags_pkey", "type": "primary_key",
				"columns": ["code"], "up": {"code": "coalesce(code, 'x' || label)"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectString(t, new, "SELECT code FROM tags WHERE label = 'label10'", "xlabel10")
				expectString(t, old, "SELECT coalesce(code, '<null>') FROM tags WHERE label = 'label10'", "<null>")
				mustExec(t, old, "INSERT INTO tags (code, label) VALUES (NULL, 'q')")
				expectString(t, new, "SELECT code FROM tags WHERE label = 'q'", "xq")
				expectSQLState(t, new, "INSERT INTO tags (code, label) VALUES (NULL, 'n')", "23514")
				expectSQLState(t, new, "INSERT INTO tags (code, label) VALUES ('t1', 'dup')", "23505")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "tags", "code text, label text")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "tags", "label text, code text not null")
				expectString(t, e.db, constraintsQuery("tags"), "tags_pkey:p:true")
				expectString(t, e.db, "SELECT count(*)::text FROM tags WHERE code LIKE 'x%'", "21")
			},
		},
		{
			name: "unique over two columns",
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_name_qty_key", "type": "unique",
				"columns": ["name", "qty"], "up": {"name": "btrim(name)"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('n1', 1)", "23505")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('n1', 2)")
				// The old version's writes are mapped by up, then held to the index.
				expectSQLState(t, old, "INSERT INTO items (name, qty) VALUES ('  n3 ', 3)", "23505")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('  old ', 3)")
				expectString(t, new, "SELECT name FROM items WHERE name LIKE '%old%'", "old")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM pg_index WHERE indrelid = 'items'::regclass", "1")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_name_qty_key'", "UNIQUE (name, qty)")
				expectString(t, e.db, "SELECT to_regclass('items_name_qty_key')::text", "items_name_qty_key")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('n1', 1)", "23505")
				expectString(t, e.db, constraintsQuery("items"), "items_name_qty_key:u:true,items_pkey:p:true")
			},
		},
		{
			name: "unique nulls not distinct, deferrable, with index parameters",
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_note_key", "type": "unique", "columns": ["note"],
				"nulls_not_distinct": true, "deferrable": true, "initially_deferred": true,
				"index_parameters": {"include_columns": ["qty"], "storage_parameters": "fillfactor = 70"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO items (name, qty, note) VALUES ('a', 1, NULL)")
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('b', 1, NULL)", "23505")
			},
			rolledBack: func(t *testing.T, e *testEnv) {},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_note_key'",
					"UNIQUE NULLS NOT DISTINCT (note) INCLUDE (qty) DEFERRABLE INITIALLY DEFERRED")
				expectString(t, e.db, "SELECT reloptions::text FROM pg_class WHERE oid = 'items_note_key'::regclass", "{fillfactor=70}")
				// Deferred: the duplicate fails at commit.
				ctx := context.Background()
				tx, err := new.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, tx, "INSERT INTO items (name, qty, note) VALUES ('x', 1, 'note 1')")
				if err := tx.Commit(ctx); sqlState(err) != "23505" {
					t.Fatalf("commit of a deferred duplicate: err = %v, want 23505", err)
				}
			},
		},
		{
			name: "foreign key over two columns",
			setup: []string{
				`CREATE TABLE cats (a int, b int, PRIMARY KEY (a, b))`,
				`INSERT INTO cats VALUES (1, 1), (1, 2)`,
				`ALTER TABLE items ADD COLUMN ca int, ADD COLUMN cb int`,
				`UPDATE items SET ca = 1, cb = 1 + id % 2`,
			},
			doc: `{"operations": [{"create_constraint": {"table": "items", "name": "items_cat_fk", "type": "foreign_key",
				"columns": ["ca", "cb"], "references": {"table": "cats", "columns": ["a", "b"], "on_delete": "cascade"},
				"up": {"ca": "CASE WHEN ca = 99 THEN NULL ELSE ca END"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectNoCopy(t, e)
				mustExec(t, old, "INSERT INTO items (name, qty, ca, cb) VALUES ('old', 1, 99, 1)")
				expectString(t, new, "SELECT coalesce(ca::text, '<null>') FROM items WHERE name = 'old'", "<null>")
				expectSQLState(t, new, "INSERT INTO items (name, qty, ca, cb) VALUES ('new', 1, 2, 2)", "23503")
				mustExec(t, new, "INSERT INTO items (name, qty, ca, cb) VALUES ('new', 1, 1, 2)")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM pg_constraint WHERE contype = 'f'", "0")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT pg_get_constraintdef(oid) || ':' || convalidated FROM pg_constraint WHERE conname = 'items_cat_fk'",
					"FOREIGN KEY (ca, cb) REFERENCES cats(a, b) ON DELETE CASCADE:true")
				mustExec(t, e.db, "DELETE FROM cats WHERE b = 2")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE cb = 2", "0")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE cb = 1", "151")
			},
		},
		{
			name: "primary key on a table without one",
			setup: []string{
				`CREATE TABLE tags (code text, label text)`,
				`INSERT INTO tags SELECT 't' || i, 'label ' || i FROM generate_series(1, 200) i`,
			},
			doc: `{"operations": [{"create_constraint": {"table": "tags", "name": "tags_pkey", "type": "primary_key",
				"columns": ["code"], "up": {"code": "coalesce(code, 'x' || label)"}}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO tags (code, label) VALUES (NULL, 'q')")
				expectString(t, new, "SELECT code FROM tags WHERE label = 'q'", "xq")
				expectSQLState(t, new, "INSERT INTO tags (code, label) VALUES (NULL, 'n')", "23514")
				expectSQLState(t, new, "INSERT INTO tags (code, label) VALUES ('t1', 'dup')", "23505")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "tags", "code text, label text")
				expectString(t, e.db, constraintsQuery("tags"), "")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "tags", "code text not null, label text")
				expectString(t, e.db, constraintsQuery("tags"), "tags_pkey:p:true")
				expectSQLState(t, new, "INSERT INTO tags (code, label) VALUES ('t1', 'dup')", "23505")
			},
		},
	}
	runConstraintCases(t, cases)
}

// constraintsQuery lists the constraints of a table as "name:type:validated".
func constraintsQuery(table string) string {
	return `SELECT coalesce(string_agg(conname || ':' || contype::text || ':' || convalidated, ',' ORDER BY conname), '')
		FROM pg_constraint WHERE conrelid = '` + table + `'::regclass AND contype <> 'n'`
}

// expectInputError validates doc against the database and expects an *InputError naming
// field, whose message contains want.
func expectInputError(t *testing.T, e *testEnv, doc, field, want string) {
	t.Helper()
	err := e.m.Validate(context.Background(), e.parse(doc))
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("validate %s: err = %v, want an InputError on field %q", doc, err, field)
	}
	if ie.Field != field || !strings.Contains(ie.Error(), want) {
		t.Fatalf("validate %s:\n got field %q: %v\nwant field %q, message containing %q", doc, ie.Field, err, field, want)
	}
}

func TestCreateConstraintValidation(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.exec(`CREATE TABLE cats (id int PRIMARY KEY, name text)`)
	e.exec(`ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 100000)`)
	op := func(body string) string { return `{"name": "02", "operations": [{"create_constraint": ` + body + `}]}` }
	cases := []struct{ body, field, want string }{
		{`{"table": "itemz", "name": "c", "type": "check", "check": "qty > 0"}`, "table", `did you mean "items"`},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["nmae"]}`, "columns", `column "nmae" does not exist`},
		{`{"table": "items", "name": "qty_small", "type": "check", "check": "qty > 0"}`, "name", "already exists"},
		{`{"table": "items", "name": "items_pkey2", "type": "primary_key", "columns": ["name"]}`, "type", "has a primary key already"},
		{`{"table": "items", "name": "items_pkey", "type": "unique", "columns": ["name"]}`, "name", "already exists"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 10 OR name = ''", "columns": ["qty", "name"]}`, "up", "existing rows"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 10 OR name = ''", "columns": ["qty", "name"], "up": {"qty": "greatest(qty, 5)"}}`, "up", "still break constraint"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 10 OR name = ''", "columns": ["qty", "name"], "up": {"qty": "greatest(qty, 11)"}}`, "", ""},
		{`{"table": "items", "name": "c", "type": "check", "check": "id > 10", "columns": ["id"], "up": {"id": "id + 10"}}`, "columns", "part of the primary key"},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"qty": "qty"}}`, "", ""},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 10", "columns": ["qty"], "up": {"qty": "greatest(qty, 5)"}}`, "up", "still break constraint"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 10"}`, "up", "some rows fail the check"},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"name": "name"}}`, "up", "not one of the constraint's columns"},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"qty": "qty + nosuch"}}`, "up.qty", "not valid"},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "down": {"qty": "'x'::point"}}`, "down.qty", "not valid"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["qty"], "references": {"table": "catz", "columns": ["id"]}}`, "references.table", "does not exist"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["qty"], "references": {"table": "cats", "columns": ["idd"]}}`, "references.columns", "does not exist"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["name"], "references": {"table": "cats", "columns": ["name"]}}`, "references.columns", "no unique or primary key"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["qty"], "references": {"table": "cats", "columns": ["id"]}}`, "up", "reference no row"},
	}
	// An expression that does not parse is refused with the file, before the database.
	var ie *InputError
	if _, err := Parse("x.json", "x", []byte(op(`{"table": "items", "name": "c", "type": "check", "check": "qty >"}`))); !errors.As(err, &ie) || ie.Field != "check" || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("a check that does not parse: err = %v", err)
	}
	for _, c := range cases {
		if c.field == "" {
			if err := e.m.Validate(context.Background(), e.parse(op(c.body))); err != nil {
				t.Fatalf("validate %s: %v", c.body, err)
			}
			continue
		}
		expectInputError(t, e, op(c.body), c.field, c.want)
	}
	e.exec(`INSERT INTO items (name, qty) VALUES ('n1', 1)`)
	expectInputError(t, e, op(`{"table": "items", "name": "c", "type": "unique", "columns": ["name", "qty"]}`), "up", "share the same values")
	expectInputError(t, e, op(`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"qty": "qty"}}`), "up", "still break constraint")
	expectInputError(t, e, op(`{"table": "items", "name": "c", "type": "unique", "columns": ["name", "qty"], "up": {"qty": "least(qty, 1)"}}`), "up", "still break constraint")
	expectInputError(t, e, op(`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"qty": "least(qty, 1)"}, "deferrable": true}`), "up", "still break constraint")
	for _, body := range []string{
		`{"table": "items", "name": "c", "type": "unique", "columns": ["name", "qty"], "up": {"qty": "id::int"}}`,
		`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "up": {"qty": "id::int"}, "deferrable": true}`,
	} {
		if err := e.m.Validate(context.Background(), e.parse(op(body))); err != nil {
			t.Fatalf("validate %s: %v", body, err)
		}
	}
	e.exec(`ALTER TABLE items ADD COLUMN cat int`)
	e.exec(`UPDATE items SET cat = id % 3`)
	e.exec(`INSERT INTO cats VALUES (1, 'one'), (2, 'two')`)
	expectInputError(t, e, op(`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["cat"], "references": {"table": "cats", "columns": ["id"]}, "up": {"cat": "cat + 1"}}`), "up", "still break constraint")
	if err := e.m.Validate(context.Background(), e.parse(op(`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["cat"], "references": {"table": "cats", "columns": ["id"]}, "up": {"cat": "nullif(cat, 0)"}}`))); err != nil {
		t.Fatalf("a foreign key whose up maps every existing row: %v", err)
	}

	// Rejected without a database.
	for _, c := range []struct{ body, field string }{
		{`{"table": "items", "name": "c", "type": "exclude", "columns": ["qty"]}`, "type"},
		{`{"table": "items", "name": "c", "type": "unique"}`, "columns"},
		{`{"table": "items", "name": "c", "type": "check"}`, "check"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 0; DROP TABLE items"}`, "check"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 0", "up": {"qty": "1) OR (true"}}`, "up.qty"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["qty"]}`, "references"},
		{`{"table": "items", "name": "c", "type": "foreign_key", "columns": ["qty"], "references": {"table": "cats", "columns": ["id", "name"]}}`, "references.columns"},
		{`{"table": "items", "name": "c", "type": "check", "check": "qty > 0", "deferrable": true}`, "deferrable"},
		{`{"table": "items", "name": "c", "type": "unique", "columns": ["qty"], "initially_deferred": true}`, "initially_deferred"},
	} {
		_, err := Parse("bad.json", "bad", []byte(op(c.body)))
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Fatalf("parse %s: err = %v, want an InputError on field %q", c.body, err, c.field)
		}
	}
	e.assertNoLeftovers()
}

// TestCreateConstraintKillAndResume kills a start that copies two columns in the middle
// of the first copy's backfill; start resumes it (or rollback undoes it).
func TestCreateConstraintKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kill tests")
	}
	ctx := context.Background()
	doc := `{"name": "02", "operations": [{"create_constraint": {"table": "items", "name": "items_name_qty_key", "type": "unique",
		"columns": ["name", "qty"], "up": {"qty": "CASE WHEN name = 'same' THEN id::int ELSE qty END"}}}]}`
	for _, then := range []string{"start", "rollback"} {
		t.Run(then, func(t *testing.T) {
			e := newEnv(t)
			e.exec(itemsTable)
			e.exec(itemsRows)
			e.exec(`UPDATE items SET name = 'same', qty = 1 WHERE id <= 3`)
			killAt(t, e.url, "start", doc, "start:backfill-batch")
			expectString(t, e.db, "SELECT string_agg(op::text || ':' || done, ',' ORDER BY op) FROM (SELECT op, bool_and(next_page > last_page) AS done FROM tandem.backfill_chunks GROUP BY op) AS b", "1000000:false")
			if then == "rollback" {
				retryBusy(t, "rollback", func() error { return e.m.Rollback(ctx) })
				e.assertNoLeftovers()
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text")
			}
			retryBusy(t, "start", func() error { return e.m.Start(ctx, e.parse(doc)) })
			expectString(t, e.db, "SELECT string_agg(op::text || ':' || done, ',' ORDER BY op) FROM (SELECT op, bool_and(next_page > last_page) AS done FROM tandem.backfill_chunks GROUP BY op) AS b", "1000000:true,1000001:true")
			new := e.version("02")
			expectString(t, new, "SELECT string_agg(name || qty, ',' ORDER BY id) FROM items WHERE id <= 4", "same1,same2,same3,n44")
			expectString(t, new, "SELECT count(*)::text FROM items WHERE name IS NULL OR qty IS NULL", "0")
			expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('same', 2)", "23505")
			new.Close()
			e.complete()
			e.assertNoLeftovers("public_02")
			expectString(t, e.db, constraintsQuery("items"), "items_name_qty_key:u:true,items_pkey:p:true")
			expectCols(t, e, "public", "items", "id bigint not null, note text, name text not null, qty integer not null")
		})
	}
}

// TestCreateConstraintMapsStragglers: a row the old version writes between validation and
// the trigger's installation breaks a constraint made in place; complete maps it through
// up instead of failing to validate. The test makes such a row by lifting the constraint
// and passing the trigger by (disabled) for one insert.
func TestCreateConstraintMapsStragglers(t *testing.T) {
	ctx := context.Background()
	straggle := func(t *testing.T, e *testEnv, table, constraint, insert string) {
		t.Helper()
		err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
			var def string
			if err := tx.QueryRow(ctx, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2",
				table, constraint).Scan(&def); err != nil {
				return err
			}
			for _, s := range []string{
				"ALTER TABLE " + table + " DROP CONSTRAINT " + qi(constraint),
				"ALTER TABLE " + table + " DISABLE TRIGGER USER",
				insert,
				"ALTER TABLE " + table + " ENABLE TRIGGER USER",
				"ALTER TABLE " + table + " ADD CONSTRAINT " + qi(constraint) + " " + def,
			} {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("check", func(t *testing.T) {
		e := newEnv(t)
		e.exec(itemsTable)
		e.exec(itemsRows)
		e.start(`{"name": "02", "operations": [{"create_constraint": {"table": "items", "name": "qty_positive", "type": "check",
			"check": "qty > 0", "columns": ["qty"], "up": {"qty": "greatest(qty, 1)"}}}]}`)
		straggle(t, e, "items", "qty_positive", "INSERT INTO items (name, qty) VALUES ('straggler', -3)")
		expectString(t, e.db, "SELECT qty::text FROM items WHERE name = 'straggler'", "-3")
		e.complete()
		expectString(t, e.db, "SELECT qty::text FROM items WHERE name = 'straggler'", "1")
		expectString(t, e.db, constraintsQuery("items"), "items_pkey:p:true,qty_positive:c:true")
		e.assertNoLeftovers("public_02")
	})
	t.Run("primary key", func(t *testing.T) {
		e := newEnv(t)
		e.exec(`CREATE TABLE tags (code text, label text)`)
		e.exec(`INSERT INTO tags SELECT 't' || i, 'label' || i FROM generate_series(1, 100) i`)
		e.start(`{"name": "02", "operations": [{"create_constraint": {"table": "tags", "name": "tags_pkey", "type": "primary_key",
			"columns": ["code"], "up": {"code": "coalesce(code, 'x' || label)"}}}]}`)
		nn := queryString(t, e.db, `SELECT conname FROM pg_constraint WHERE conrelid = 'tags'::regclass AND conname LIKE '\_tandem\_not\_null%'`)
		straggle(t, e, "tags", nn, "INSERT INTO tags (code, label) VALUES (NULL, 'late')")
		e.complete()
		expectString(t, e.db, "SELECT code FROM tags WHERE label = 'late'", "xlate")
		expectCols(t, e, "public", "tags", "code text not null, label text")
		expectString(t, e.db, constraintsQuery("tags"), "tags_pkey:p:true")
		e.assertNoLeftovers("public_02")
	})
}
