package migrate

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestMigrateSeveralPending: three pending migrations are applied as one step. The
// running version (the base schema here) keeps working until complete; the new version
// sees the result of the last one; each migration's up uses the names its predecessor
// left; no intermediate version schema is exposed.
func TestMigrateSeveralPending(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	var migs []*Migration
	for _, doc := range []string{
		`{"name": "02_memo", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`,
		`{"name": "03_label", "operations": [{"add_column": {"table": "items", "up": "upper(memo)", "column": {"name": "label", "type": "text", "nullable": true}}}]}`,
		`{"name": "04_big", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}}]}`,
	} {
		migs = append(migs, e.parse(doc))
	}
	applied, err := e.m.Migrate(ctx, migs, false)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if len(applied) != 3 {
		t.Fatalf("applied %v", applied)
	}
	old, v4 := e.version(""), e.version("04_big")
	expectCols(t, e, "public_04_big", "items", "id bigint, name text, qty bigint, memo text, label text")
	expectString(t, e.db, "SELECT count(*)::text FROM pg_namespace WHERE nspname IN ('public_02_memo', 'public_03_label')", "0")
	mustExec(t, old, "INSERT INTO items (name, qty, note) VALUES ('old', 5, 'from old')")
	expectString(t, v4, "SELECT label || '/' || qty FROM items WHERE name = 'old'", "FROM OLD/5")
	expectString(t, v4, "SELECT label FROM items WHERE id = 1", "NOTE 1")
	mustExec(t, v4, "INSERT INTO items (name, qty, memo) VALUES ('new', 6, 'm')")
	expectString(t, old, "SELECT note || '/' || qty FROM items WHERE name = 'new'", "m/6")

	st, err := e.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active == nil || st.Active.Name != "04_big" || len(st.Active.Includes) != 3 {
		t.Fatalf("status: %+v", st.Active)
	}
	// Running migrate again is a no-op start; --complete contracts.
	old.Close()
	if _, err := e.m.Migrate(ctx, migs, true); err != nil {
		t.Fatalf("migrate --complete: %v", err)
	}
	expectCols(t, e, "public", "items", "id bigint not null, name text not null, memo text, label text, qty bigint not null")
	e.assertNoLeftovers("public_04_big")
	if applied, err := e.m.Migrate(ctx, migs, false); err != nil || len(applied) != 0 {
		t.Fatalf("migrate after complete: applied %v, err %v", applied, err)
	}
	if err := e.m.Start(ctx, migs[1]); err == nil {
		t.Fatal("starting a migration that was applied as part of a combined one succeeded")
	}
	// One pending file is reported as applied too.
	migs = append(migs, e.parse(`{"name": "05_one", "operations": [{"sql": {"up": "CREATE TABLE notes (id int)", "down": "DROP TABLE notes"}}]}`))
	if applied, err := e.m.Migrate(ctx, migs, true); err != nil || !slices.Equal(applied, []string{"05_one"}) {
		t.Fatalf("migrate one pending file: applied %v, err %v", applied, err)
	}
}

// TestMigrateCompleteSplitsAtStartSQL applies, with complete, a directory whose pending
// files include sql operations that run at start: each of those is a step of its own.
// Without complete it is refused, naming the file.
func TestMigrateCompleteSplitsAtStartSQL(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var migs []*Migration
	for _, doc := range []string{
		`{"name": "01_a", "operations": [{"create_table": {"name": "a", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}`,
		`{"name": "02_sql", "operations": [{"sql": {"up": "CREATE TABLE b (id int PRIMARY KEY)", "down": "DROP TABLE b"}}]}`,
		`{"name": "03_col", "operations": [{"add_column": {"table": "b", "column": {"name": "note", "type": "text", "nullable": true}}}]}`,
		`{"name": "04_col", "operations": [{"add_column": {"table": "a", "column": {"name": "note", "type": "text", "nullable": true}}}]}`,
		`{"name": "05_sql", "operations": [{"sql": {"up": "CREATE TABLE c (id int)", "down": "DROP TABLE c"}}]}`,
	} {
		migs = append(migs, e.parse(doc))
	}
	if _, err := e.m.Migrate(ctx, migs, false); err == nil || !strings.Contains(err.Error(), "--complete") {
		t.Fatalf("migrate without complete: %v, want a refusal that suggests --complete", err)
	}
	applied, err := e.m.Migrate(ctx, migs, true)
	if err != nil {
		t.Fatalf("migrate --complete: %v", err)
	}
	if want := []string{"01_a", "02_sql", "03_col", "04_col", "05_sql"}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	expectCols(t, e, "public", "b", "id integer not null, note text")
	expectCols(t, e, "public", "a", "id integer not null, note text")
	st, err := e.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.History {
		names = append(names, h.Name+":"+h.Status)
	}
	if want := []string{"01_a:completed", "02_sql:completed", "04_col:completed", "05_sql:completed"}; !slices.Equal(names, want) {
		t.Errorf("history %v, want %v", names, want)
	}
}
