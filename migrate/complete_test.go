package migrate

import (
	"context"
	"errors"
	"testing"
)

// TestCompleteTypeChangeThenRenames: a type change, then a rename of the column, then a
// rename of the table, in that order, complete (this order once panicked in complete and
// wedged the migration). Two renames of one column end at the last name.
func TestCompleteTypeChangeThenRenames(t *testing.T) {
	cases := []struct {
		name, doc, table, want string
	}{
		{"type, column, table", `{"operations": [
			{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty::bigint", "down": "qty::int"}},
			{"rename_column": {"table": "items", "from": "qty", "to": "amount"}},
			{"rename_table": {"from": "items", "to": "goods"}}]}`,
			"goods", "id bigint not null, name text not null, note text, amount bigint not null"},
		{"table, column, type", `{"operations": [
			{"rename_table": {"from": "items", "to": "goods"}},
			{"rename_column": {"table": "goods", "from": "qty", "to": "amount"}},
			{"alter_column": {"table": "goods", "column": "amount", "type": "bigint", "up": "amount::bigint", "down": "amount::int"}}]}`,
			"goods", "id bigint not null, name text not null, note text, amount bigint not null"},
		{"two renames of a column and of the table", `{"operations": [
			{"rename_column": {"table": "items", "from": "qty", "to": "q1"}},
			{"rename_table": {"from": "items", "to": "t1"}},
			{"rename_column": {"table": "t1", "from": "q1", "to": "q2"}},
			{"rename_table": {"from": "t1", "to": "t2"}},
			{"drop_column": {"table": "t2", "column": "note"}}]}`,
			"t2", "id bigint not null, name text not null, q2 integer not null"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.exec(itemsTable)
			e.exec(itemsRows)
			mig := e.parse(`{"name": "02", ` + tc.doc[1:])
			if err := e.m.Start(ctx, mig); err != nil {
				t.Fatalf("start: %v", err)
			}
			e.rollback()
			e.assertNoLeftovers()
			if err := e.m.Start(ctx, mig); err != nil {
				t.Fatalf("start again: %v", err)
			}
			e.complete()
			expectCols(t, e, "public", tc.table, tc.want)
			expectString(t, e.db, "SELECT count(*)::text FROM "+tc.table, "300")
			e.assertNoLeftovers("public_02")
		})
	}
}

// TestCompleteRecoversFromPanic: an operation that panics in complete (here: over a
// recorded shape that lost its table) makes complete return a *PanicError naming the
// operation; the migration stays recorded as completing, and once the cause is gone
// complete finishes it.
func TestCompleteRecoversFromPanic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty::bigint", "down": "qty::int"}}]}`)
	restore := e.loseShapes()
	err := e.m.Complete(ctx)
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("complete: err = %v, want a *PanicError", err)
	}
	if pe.Op != 0 || pe.Kind != "alter_column" || pe.Step != "complete" || len(pe.Stack) == 0 {
		t.Fatalf("panic error: %+v", pe)
	}
	expectString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02'", StatusCompleting)
	if err := e.m.Rollback(ctx); err == nil {
		t.Fatal("rollback of a migration being completed succeeded")
	}
	restore()
	e.complete()
	expectCols(t, e, "public", "items", "id bigint not null, name text not null, note text, qty bigint not null")
	e.assertNoLeftovers("public_02")
}

// loseShapes empties the recorded shapes of migration 02, so that its operations find no
// table (and panic), and returns the function that puts them back.
func (e *testEnv) loseShapes() (restore func()) {
	e.exec(`CREATE TABLE saved AS SELECT after, shapes FROM tandem.migrations WHERE name = '02'`)
	e.exec(`UPDATE tandem.migrations SET after = '{"tables": {}}', shapes = '[]' WHERE name = '02'`)
	return func() {
		e.exec(`UPDATE tandem.migrations m SET after = s.after, shapes = s.shapes FROM saved s WHERE m.name = '02'`)
		e.exec(`DROP TABLE saved`)
	}
}

// TestRollbackRecoversFromPanic: the same for rollback; the migration stays recorded as
// started, and a rollback after the cause is gone finishes.
func TestRollbackRecoversFromPanic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	e.start(`{"name": "02", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}},
		{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty::bigint", "down": "qty::int"}}]}`)
	restore := e.loseShapes()
	err := e.m.Rollback(ctx)
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Op != 1 || pe.Kind != "alter_column" || pe.Step != "roll back" {
		t.Fatalf("rollback: err = %v, want a *PanicError of operation 1", err)
	}
	expectString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02'", StatusStarted)
	restore()
	e.rollback()
	e.assertNoLeftovers()
}

// TestTypeChangeDefault: a default that no longer fits the new type is cast when its
// value converts, and dropped (with a warning) when it does not; start never fails on it.
func TestTypeChangeDefault(t *testing.T) {
	for _, tc := range []struct{ name, def, want string }{
		{"converts", "'0'", "0"},
		{"does not convert", "'zero'", "<null>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.exec(`CREATE TABLE c (id serial PRIMARY KEY, n text DEFAULT ` + tc.def + `)`)
			e.exec(`INSERT INTO c (n) VALUES ('1'), ('2')`)
			e.start(`{"name": "02", "operations": [{"alter_column": {"table": "c", "column": "n", "type": "integer",
				"up": "CASE WHEN n ~ '^[0-9]+$' THEN n::integer END", "down": "n::text"}}]}`)
			v := e.version("02")
			mustExec(t, v, "INSERT INTO c (id) VALUES (10)")
			expectString(t, v, "SELECT n::text FROM c WHERE id = 10", tc.want)
			e.complete()
			mustExec(t, e.db, "INSERT INTO c (id) VALUES (11)")
			expectString(t, e.db, "SELECT n::text FROM c WHERE id = 11", tc.want)
		})
	}
}

// TestDropAndCreateTableOfOneName: a table dropped and created again under its name in one
// migration. The old version keeps the old table until complete; the new version has the
// new one; complete leaves the new one under the name, with its keys named after it.
func TestDropAndCreateTableOfOneName(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	doc := `{"name": "02", "operations": [
		{"drop_table": {"name": "items"}},
		{"create_table": {"name": "items", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "label", "type": "text", "unique": true}]}}]}`
	e.start(doc)
	old, v := e.version(""), e.version("02")
	expectString(t, old, "SELECT count(*)::text FROM items", "300")
	mustExec(t, v, "INSERT INTO items (label) VALUES ('new')")
	expectString(t, v, "SELECT id || label FROM items", "1new")
	old.Close()
	e.rollback()
	e.assertNoLeftovers()
	e.start(doc)
	e.complete()
	expectCols(t, e, "public", "items", "id integer not null, label text not null")
	expectString(t, e.db, "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'items'::regclass", "items_label_key,items_pkey")
	expectString(t, e.db, "SELECT pg_get_serial_sequence('items', 'id')", "public.items_id_seq")
	mustExec(t, v, "INSERT INTO items (label) VALUES ('after')")
	e.assertNoLeftovers("public_02")
}
