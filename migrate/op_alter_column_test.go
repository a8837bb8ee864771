package migrate

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// shadowColumns lists Tandem's shadow columns of items, to tell a copy from an in-place change.
func shadowColumns(t *testing.T, e *testEnv) string {
	t.Helper()
	return queryString(t, e.db, `SELECT coalesce(string_agg(attname, ','), '') FROM pg_attribute
		WHERE attrelid = 'items'::regclass AND attname LIKE '\_tandem%' AND NOT attisdropped`)
}

func TestAlterColumnLifecycles(t *testing.T) {
	const table = `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 1 CONSTRAINT qty_positive CHECK (qty > 0), note text, cat int)`
	setup := []string{
		`CREATE TABLE cats (id int PRIMARY KEY)`, `INSERT INTO cats VALUES (1), (2)`,
		table,
		`ALTER TABLE items ADD CONSTRAINT items_cat_fk FOREIGN KEY (cat) REFERENCES cats (id)`,
		`CREATE UNIQUE INDEX items_qty_note ON items (note)`,
		`CREATE INDEX items_qty_idx ON items (qty) WITH (fillfactor = 70)`,
		`COMMENT ON COLUMN items.qty IS 'how many'`,
		`INSERT INTO items (name, qty, note, cat) SELECT 'n' || i, i, CASE WHEN i % 2 = 0 THEN 'note ' || i END, 1 FROM generate_series(1, 300) i`,
	}
	cases := []opCase{
		{
			name: "type change keeps constraints, indexes, default and comment",
			doc:  `{"operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "least(qty, 2147483647)::int"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				expectCols(t, e, "public_02", "items", "id bigint, name text, qty bigint, note text, cat integer")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('big', 5000000000)")
				expectString(t, old, "SELECT qty::text FROM items WHERE name = 'big'", "2147483647")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 7)")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old'", "7")
				mustExec(t, old, "INSERT INTO items (name) VALUES ('old default')")
				expectString(t, new, "SELECT qty::text FROM items WHERE name = 'old default'", "1")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('neg', -5)", "23514")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE qty IS NULL", "0")
				// An UPDATE that sets only the changed column, from either side, reaches the other.
				mustExec(t, new, "UPDATE items SET qty = 6000000000 WHERE id = 1")
				expectString(t, old, "SELECT qty::text FROM items WHERE id = 1", "2147483647")
				mustExec(t, old, "UPDATE items SET qty = 8 WHERE id = 2")
				expectString(t, new, "SELECT qty::text FROM items WHERE id = 2", "8")
				mustExec(t, old, "UPDATE items SET note = 'old note' WHERE id = 1")
				expectString(t, new, "SELECT qty::text || note FROM items WHERE id = 1", "2147483647old note")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text, cat integer")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, note text, cat integer, qty bigint not null")
				expectString(t, e.db, "SELECT col_description('items'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'qty'))", "how many")
				expectString(t, e.db, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'items'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'qty')", "1")
				expectString(t, e.db, "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'items'::regclass", "items_cat_fk:true,items_pkey:true,qty_positive:true")
				expectString(t, e.db, "SELECT pg_get_indexdef('items_qty_idx'::regclass)", "CREATE INDEX items_qty_idx ON public.items USING btree (qty) WITH (fillfactor='70')")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('neg', -5)", "23514")
			},
		},
		{
			name: "NOT NULL with up over rows holding NULLs copies the column",
			doc:  `{"operations": [{"alter_column": {"table": "items", "column": "note", "nullable": false, "up": "coalesce(note, 'none ' || id)", "down": "note"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); s != "_tandem_new_note" {
					t.Fatalf("shadow columns: %q", s)
				}
				expectString(t, new, "SELECT count(*)::text FROM items WHERE note LIKE 'none %'", "150")
				expectString(t, old, "SELECT count(*)::text FROM items WHERE note IS NULL", "150")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE name = 'old' AND note LIKE 'none %'", "1")
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('new', 1, NULL)", "23514")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectString(t, e.db, "SELECT count(*)::text FROM items WHERE note IS NULL", "151")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, cat integer, note text not null")
				expectString(t, e.db, "SELECT to_regclass('items_qty_note')::text", "items_qty_note")
			},
		},
		{
			name: "NOT NULL on rows that satisfy it changes the column in place",
			doc:  `{"operations": [{"alter_column": {"table": "items", "column": "cat", "nullable": false, "up": "coalesce(cat, 1)", "down": "cat"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); s != "" {
					t.Fatalf("in-place change made shadow columns: %q", s)
				}
				mustExec(t, old, "INSERT INTO items (name, qty, cat) VALUES ('old', 1, NULL)")
				expectString(t, new, "SELECT cat::text FROM items WHERE name = 'old'", "1")
				expectSQLState(t, new, "INSERT INTO items (name, qty, cat) VALUES ('new', 1, NULL)", "23514")
			},
			rolledBack: func(t *testing.T, e *testEnv) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text, cat integer")
			},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, note text, cat integer not null")
			},
		},
		{
			name: "drop NOT NULL with down",
			doc:  `{"operations": [{"alter_column": {"table": "items", "column": "name", "nullable": true, "up": "name", "down": "coalesce(name, 'unnamed')"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES (NULL, 4242)")
				expectString(t, new, "SELECT coalesce(name, '<null>') FROM items WHERE qty = 4242", "<null>")
				expectString(t, old, "SELECT name FROM items WHERE qty = 4242", "unnamed")
			},
			rolledBack: func(t *testing.T, e *testEnv) {},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, qty integer not null, note text, cat integer, name text")
			},
		},
		{
			name: "comment, default and rename touch no row",
			doc:  `{"operations": [{"alter_column": {"table": "items", "column": "note", "name": "remark", "default": "'-'", "comment": "free text"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				if s := shadowColumns(t, e); s != "" {
					t.Fatalf("metadata change made shadow columns: %q", s)
				}
				expectString(t, e.db, "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal", "0")
				mustExec(t, new, "INSERT INTO items (name, qty) VALUES ('new', 1)")
				expectString(t, new, "SELECT remark FROM items WHERE name = 'new'", "-")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 1)")
				expectString(t, new, "SELECT coalesce(remark, '<null>') FROM items WHERE name = 'old'", "<null>")
			},
			rolledBack: func(t *testing.T, e *testEnv) {},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty integer not null, remark text, cat integer")
				expectString(t, e.db, "SELECT col_description('items'::regclass, 4)", "free text")
			},
		},
		{
			name: "check, unique and references in place",
			doc: `{"operations": [
				{"alter_column": {"table": "items", "column": "name", "check": {"name": "name_short", "constraint": "length(name) < 10"}, "up": "substr(name, 1, 9)", "down": "name"}},
				{"alter_column": {"table": "items", "column": "note", "unique": {"name": "note_unique"}, "up": "note", "down": "note"}}]}`,
			during: func(t *testing.T, e *testEnv, old, new *pgxpool.Pool) {
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('a very long name', 1)")
				expectString(t, new, "SELECT count(*)::text FROM items WHERE name = 'a very lo'", "1")
				expectSQLState(t, new, "INSERT INTO items (name, qty) VALUES ('another long name', 1)", "23514")
				expectSQLState(t, new, "INSERT INTO items (name, qty, note) VALUES ('x', 1, 'note 2')", "23505")
			},
			rolledBack: func(t *testing.T, e *testEnv) {},
			completed: func(t *testing.T, e *testEnv, new *pgxpool.Pool) {
				expectString(t, e.db, "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'items'::regclass AND conname IN ('name_short', 'note_unique')", "name_short:true,note_unique:true")
			},
		},
	}
	runOpCases(t, setup, cases)
}

// TestBackfillStopsAtABadRow: a row up cannot convert stops the backfill with that row's
// key; fixing the data, or the expression, and starting again resumes.
func TestBackfillStopsAtABadRow(t *testing.T) {
	for _, fix := range []string{"data", "expression"} {
		t.Run("fix the "+fix, func(t *testing.T) {
			e := newEnv(t)
			e.exec(`CREATE TABLE items (a int, b text, code text, PRIMARY KEY (a, b))`)
			e.exec(`INSERT INTO items SELECT i % 5, 'k' || i, i::text FROM generate_series(1, 3000) i`)
			e.exec(`UPDATE items SET code = 'x17' WHERE b = 'k1700'`)
			doc := `{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "code", "type": "int",
				"up": "code::int", "down": "code::text"}}]}`
			err := e.m.Start(context.Background(), e.parse(doc))
			var be *BackfillError
			if !errors.As(err, &be) || be.Row != "(0, k1700)" {
				t.Fatalf("start: %v, want a BackfillError at row (0, k1700)", err)
			}
			switch fix {
			case "data":
				e.exec(`UPDATE items SET code = '17' WHERE b = 'k1700'`)
			case "expression":
				doc = strings.Replace(doc, `"code::int"`, `"nullif(regexp_replace(code, '[^0-9]', '', 'g'), '')::int"`, 1)
			}
			e.start(doc)
			expectString(t, e.version("02"), "SELECT sum(code)::text FROM items", "4499817") // 1+…+3000, with 1700 read as 17
			e.complete()
			e.assertNoLeftovers("public_02")
		})
	}
}

// TestConcurrentLoadDuringTypeAndNotNullChange: a type change and a NOT NULL change run
// start and complete while both versions write and read; not one statement may fail.
func TestConcurrentLoadDuringTypeAndNotNullChange(t *testing.T) {
	const rows = 20000
	e := newEnv(t, func(o *Options) { o.BackfillBatchTime = 20 * time.Millisecond })
	e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)`)
	e.exec(`INSERT INTO items (name, qty, note) SELECT 'n' || i, i % 1000, CASE WHEN i % 3 = 0 THEN 'x' END FROM generate_series(1, $1::int) i`, rows)
	old := loadPool(t, e, "", 6)
	var oldStats, newStats loadStats
	oldLoad := runLoad(old, 4, "old", &oldStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		var sql string
		var err error
		switch rng.IntN(3) {
		case 0:
			sql = `INSERT INTO items (name, qty, note) VALUES ('o', $1, NULL)`
			_, err = p.Exec(ctx, sql, rng.IntN(1000))
		case 1:
			sql = `UPDATE items SET qty = qty + 1, note = NULL WHERE id = $1`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows))
		default:
			sql = `SELECT sum(qty) FROM items WHERE id BETWEEN $1 AND $1 + 50`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows))
		}
		return sql, err
	})
	defer oldLoad.stop()
	waitForStatements(t, &oldStats, 200)
	e.start(`{"name": "02", "operations": [
		{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "least(qty, 2147483647)::int"}},
		{"alter_column": {"table": "items", "column": "note", "nullable": false, "up": "coalesce(note, '-')", "down": "note"}}]}`)
	v2 := loadPool(t, e, "02", 6)
	newLoad := runLoad(v2, 3, "new", &newStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		var sql string
		var err error
		switch rng.IntN(3) {
		case 0:
			sql = `INSERT INTO items (name, qty, note) VALUES ('n', 3000000000, 'new')`
			_, err = p.Exec(ctx, sql)
		case 1:
			sql = `UPDATE items SET qty = qty + 1 WHERE id = $1`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows))
		default:
			sql = `SELECT sum(qty) FROM items WHERE id BETWEEN $1 AND $1 + 50 AND note IS NOT NULL`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows))
		}
		return sql, err
	})
	defer newLoad.stop()
	waitForStatements(t, &newStats, 200)
	waitForStatements(t, &oldStats, 200)
	oldLoad.stop()
	e.complete()
	waitForStatements(t, &newStats, 200)
	newLoad.stop()
	for _, s := range []*loadStats{&oldStats, &newStats} {
		if n := s.failed.Load(); n > 0 {
			t.Errorf("%d of %d statements failed; first failures:\n%s", n, n+s.ok.Load(), strings.Join(s.errs, "\n"))
		}
	}
	expectCols(t, e, "public", "items", "id bigint not null, name text not null, qty bigint not null, note text not null")
	expectString(t, e.db, "SELECT count(*)::text FROM items WHERE name = 'n' AND qty < 3000000000", "0")
	e.assertNoLeftovers("public_02")
}
