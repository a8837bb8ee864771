package migrate

import (
	"context"
	"testing"
)

func TestAddColumnNotNullWithUp(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL)`)
	e.exec(`INSERT INTO items (name, qty) SELECT 'n' || i, i FROM generate_series(1, 2500) i`)
	doc := `{"name": "02_price", "operations": [{"add_column": {"table": "items", "up": "qty * 1.25",
		"column": {"name": "price", "type": "numeric"}}}]}`

	e.start(doc)
	old, v2 := e.version(""), e.version("02_price")
	// Every existing row was backfilled.
	if n := queryString(t, v2, "SELECT count(*)::text FROM items WHERE price IS DISTINCT FROM qty * 1.25"); n != "0" {
		t.Fatalf("%s rows not backfilled", n)
	}
	// The old version does not see the column, and its writes get price from up.
	if cols := e.columns("public_02_price", "items"); cols != "id bigint, name text, qty integer, price numeric" {
		t.Fatalf("new version columns: %s", cols)
	}
	mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('old', 8)")
	mustExec(t, old, "UPDATE items SET qty = 4 WHERE id = 1")
	if p := queryString(t, v2, "SELECT price::text FROM items WHERE name = 'old'"); p != "10.00" {
		t.Fatalf("price of a row inserted by the old version = %s, want 10.00", p)
	}
	if p := queryString(t, v2, "SELECT price::text FROM items WHERE id = 1"); p != "5.00" {
		t.Fatalf("price of a row updated by the old version = %s, want 5.00", p)
	}
	// The new version writes its own price, and is held to NOT NULL.
	mustExec(t, v2, "INSERT INTO items (name, qty, price) VALUES ('new', 1, 99)")
	if p := queryString(t, v2, "SELECT price::text FROM items WHERE name = 'new'"); p != "99" {
		t.Fatalf("new version's own price = %s, want 99", p)
	}
	if _, err := v2.Exec(ctx, "INSERT INTO items (name, qty, price) VALUES ('null', 1, NULL)"); sqlState(err) != "23514" {
		t.Fatalf("new version inserting NULL price: err = %v, want check violation 23514", err)
	}

	e.rollback()
	if cols := e.columns("public", "items"); cols != "id bigint not null, name text not null, qty integer not null" {
		t.Fatalf("after rollback: %s", cols)
	}
	e.assertNoLeftovers()

	e.start(doc)
	e.complete()
	if cols := e.columns("public", "items"); cols != "id bigint not null, name text not null, qty integer not null, price numeric not null" {
		t.Fatalf("after complete: %s", cols)
	}
	e.assertNoLeftovers("public_02_price")
	// The new version keeps working after complete.
	mustExec(t, e.version("02_price"), "INSERT INTO items (name, qty, price) VALUES ('after', 1, 2)")
}

// TestBackfillKeys: the backfill walks a composite primary key, or pages by ctid when the
// table has none, and fills every row in several batches.
func TestBackfillKeys(t *testing.T) {
	for _, tc := range []struct{ name, table string }{
		{"composite primary key", `CREATE TABLE items (a int, b text, qty int NOT NULL, PRIMARY KEY (a, b))`},
		{"no primary key", `CREATE TABLE items (a int, b text, qty int NOT NULL)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var batches int
			e := newEnv(t, func(o *Options) {
				o.Progress = func(BackfillProgress) { batches++ }
			})
			e.exec(tc.table)
			e.exec(`INSERT INTO items SELECT i % 7, 'k' || i, i FROM generate_series(1, 20000) i`)
			e.start(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty + 1",
				"column": {"name": "next", "type": "int"}}}]}`)
			if batches < 3 {
				t.Fatalf("backfill ran %d batches, want several", batches)
			}
			expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE next IS DISTINCT FROM qty + 1", "0")
			e.complete()
			e.assertNoLeftovers("public_02")
		})
	}
}
