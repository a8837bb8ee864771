package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestConnectErrorRootCause: a failed connection says what to fix on its first line,
// not the refused TLS attempt that came before it.
func TestConnectErrorRootCause(t *testing.T) {
	u := pgtest.WithDatabase(t, pgtest.AdminURL(t), "no_such_database")
	if strings.Contains(u, "?") {
		u += "&sslmode=prefer"
	} else {
		u += "?sslmode=prefer"
	}
	_, err := Open(context.Background(), u, Options{})
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("open: err = %v, want a *ConnectError", err)
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.Contains(first, `database "no_such_database" does not exist`) {
		t.Fatalf("first line = %q, want the root cause", first)
	}
}

// TestPermissionErrorSaysWhatToGrant: a role that owns neither the schema nor the
// database is told which rights Tandem needs and how to grant them.
func TestPermissionErrorSaysWhatToGrant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	var db string
	if err := e.db.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	admin := pgtest.WithDatabase(t, pgtest.AdminURL(t), db)
	su, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	role := db + "_nobody"
	for _, s := range []string{"CREATE ROLE " + qi(role) + " LOGIN", "GRANT USAGE ON SCHEMA public TO " + qi(role)} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP OWNED BY "+qi(role)+"; DROP ROLE "+qi(role))
			c.Close(context.Background())
		}
	})
	m, err := Open(ctx, pgtest.WithUser(t, admin, role, ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	err = m.Init(ctx)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "GRANT CREATE ON DATABASE") {
		t.Fatalf("init without rights: err = %v, want the rights needed and how to grant them", err)
	}
}

// TestHistoryKeepsEveryAttempt: a migration rolled back and started again keeps both
// attempts in the history.
func TestHistoryKeepsEveryAttempt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	doc := `{"name": "02", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`
	e.start(doc)
	e.rollback()
	e.start(doc)
	e.complete()
	st, err := e.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range st.History {
		got = append(got, h.Name+":"+h.Status)
	}
	if strings.Join(got, " ") != "02:rolled_back 02:completed" {
		t.Fatalf("history = %v", got)
	}
}

// TestLongNamesAndVersionSchema: a migration name as long as PostgreSQL allows for
// <schema>_<name> works; a longer one is refused with the way out (version_schema); an
// identifier over 63 bytes is refused at validation instead of cut by the server.
func TestLongNamesAndVersionSchema(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(itemsTable)
	long := strings.Repeat("n", 63-len("public_"))
	mig := e.parse(`{"name": "` + long + `", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`)
	if err := e.m.Start(ctx, mig); err != nil {
		t.Fatalf("start %d-byte name: %v", len(long), err)
	}
	if _, vs, _ := e.m.LatestVersion(ctx); vs != "public_"+long {
		t.Fatalf("version schema %q", vs)
	}
	e.rollback()

	tooLong := e.parse(`{"name": "` + long + `x", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`)
	var ie *InputError
	if err := e.m.Start(ctx, tooLong); !errors.As(err, &ie) || !strings.Contains(err.Error(), "version_schema") {
		t.Fatalf("start with a too long version schema: err = %v", err)
	}
	named := e.parse(`{"name": "` + long + `x", "version_schema": "app_v2", "operations": [{"rename_column": {"table": "items", "from": "note", "to": "memo"}}]}`)
	if err := e.m.Start(ctx, named); err != nil {
		t.Fatalf("start with version_schema: %v", err)
	}
	expectString(t, e.versionSchema("app_v2"), "SELECT count(memo)::text FROM items", "0")
	e.complete()

	_, err := Parse("x.json", "x", []byte(`{"operations": [{"rename_column": {"table": "items", "from": "memo", "to": "`+strings.Repeat("c", 64)+`"}}]}`))
	if !errors.As(err, &ie) || ie.Field != "to" || !strings.Contains(err.Error(), "63 bytes") {
		t.Fatalf("a 64-byte column name: err = %v", err)
	}
	if _, err := Parse("x.json", "x", []byte(`{"version_schema": "public", "operations": []}`)); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := e.m.Start(ctx, e.parse(`{"name": "03", "version_schema": "public", "operations": [{"rename_column": {"table": "items", "from": "memo", "to": "m"}}]}`)); !errors.As(err, &ie) {
		t.Fatalf("version_schema naming the migrated schema: err = %v", err)
	}
}

// TestRenameTableThenUseNewName: operations after a rename_table use the new name, and a
// constraint goes on a table created earlier in the same migration.
func TestRenameTableThenUseNewName(t *testing.T) {
	e := newEnv(t)
	e.exec(itemsTable)
	e.exec(itemsRows)
	doc := `{"name": "02", "operations": [
		{"rename_table": {"from": "items", "to": "goods"}},
		{"add_column": {"table": "goods", "up": "qty * 2", "column": {"name": "double", "type": "int", "nullable": true}}},
		{"create_index": {"table": "goods", "name": "goods_double_idx", "columns": ["double"]}},
		{"create_table": {"name": "tags", "columns": [{"name": "id", "type": "bigint"}, {"name": "label", "type": "text"}]}},
		{"create_constraint": {"table": "tags", "name": "tags_pkey", "type": "primary_key", "columns": ["id"], "up": {}, "down": {}}},
		{"create_constraint": {"table": "tags", "name": "tags_label_key", "type": "unique", "columns": ["label"], "up": {}, "down": {}}}]}`
	e.start(doc)
	v := e.version("02")
	expectString(t, v, "SELECT double::text FROM goods WHERE id = 2", "4")
	mustExec(t, v, "INSERT INTO tags VALUES (1, 'a')")
	expectSQLState(t, v, "INSERT INTO tags VALUES (1, 'b')", "23505")
	expectSQLState(t, v, "INSERT INTO tags VALUES (2, 'a')", "23505")
	e.rollback()
	e.assertNoLeftovers()
	e.start(doc)
	e.complete()
	expectCols(t, e, "public", "goods", "id bigint not null, name text not null, qty integer not null, note text, double integer")
	expectCols(t, e, "public", "tags", "id bigint not null, label text not null")
	e.assertNoLeftovers("public_02")
}
