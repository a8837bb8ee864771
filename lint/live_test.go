package lint

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// liveDB skips t in -short runs; otherwise it returns a fresh database on the test
// binary's PostgreSQL and a connection to it, closed when t ends.
func liveDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return url, conn
}

// TestLoadCatalog reads the catalog of a real database and lints against it.
func TestLoadCatalog(t *testing.T) {
	ctx := context.Background()
	url, conn := liveDB(t)
	setup := []string{
		`CREATE TABLE users (id bigint PRIMARY KEY, name varchar(50), email text, n integer)`,
		`INSERT INTO users SELECT g, 'n' || g, 'e' || g, g FROM generate_series(1, 2000) g`,
		`ANALYZE users`,
		`ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID`,
		`ALTER TABLE users VALIDATE CONSTRAINT users_email_nn`,
		`ALTER TABLE users ADD CONSTRAINT users_name_nn CHECK (name IS NOT NULL) NOT VALID`,
		`CREATE INDEX users_name ON users (name)`,
		`CREATE FUNCTION stable_fn() RETURNS int STABLE LANGUAGE sql AS 'SELECT 1'`,
		`CREATE FUNCTION vol_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE TYPE mood AS ENUM ('ok', 'sad')`,
	}
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	cat, err := LoadCatalog(ctx, url)
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	if cat.Tables() != 1 {
		t.Errorf("tables = %d, want 1", cat.Tables())
	}
	tests := []struct {
		name string
		sql  string
		rule string
		want bool
	}{
		{"varchar widening is known to be safe", `ALTER TABLE users ALTER COLUMN name TYPE varchar(100);`, "alter-column-type-rewrite", false},
		{"int to bigint rewrites", `ALTER TABLE users ALTER COLUMN n TYPE bigint;`, "alter-column-type-rewrite", true},
		{"varchar to int is a semantic change", `ALTER TABLE users ALTER COLUMN name TYPE int USING name::int;`, "column-type-semantic-change", true},
		{"validated check makes SET NOT NULL cheap", `ALTER TABLE users ALTER COLUMN email SET NOT NULL;`, "set-not-null-scan", false},
		{"unvalidated check does not", `ALTER TABLE users ALTER COLUMN name SET NOT NULL;`, "set-not-null-scan", true},
		{"stable function default", `ALTER TABLE users ADD COLUMN x int DEFAULT stable_fn();`, "add-column-volatile-default", false},
		{"volatile function default", `ALTER TABLE users ADD COLUMN x int DEFAULT vol_fn();`, "add-column-volatile-default", true},
		{"dropping an index locks its table", `DROP INDEX users_name;`, "index-not-concurrent", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("live.sql", tt.sql, Options{Catalog: cat})
			if err != nil {
				t.Fatal(err)
			}
			var got *Finding
			for i, f := range res.Findings {
				if f.Rule == tt.rule {
					got = &res.Findings[i]
				}
			}
			if (got != nil) != tt.want {
				t.Fatalf("%s fired = %v, want %v (%v)", tt.rule, got != nil, tt.want, ruleIDs(res.Findings))
			}
			if got != nil && got.Severity != SeverityError {
				t.Errorf("severity = %s, want error: %s", got.Severity, got.Message)
			}
			if got != nil && got.Rewrite && !strings.Contains(got.Message, "2.0k rows") {
				t.Errorf("message lacks the table size: %s", got.Message)
			}
		})
	}
	// The loaded catalog is not changed by a run.
	if _, err := LintString("a.sql", "DROP TABLE users;", Options{Catalog: cat}); err != nil {
		t.Fatal(err)
	}
	if cat.Tables() != 1 {
		t.Error("Lint modified the loaded catalog")
	}
	if _, err := LoadCatalog(ctx, "postgres://127.0.0.1:1/none?connect_timeout=1"); err == nil {
		t.Error("LoadCatalog of an unreachable server succeeded")
	}
}

// TestDropColumnDropsItsKey replaces a table's primary key as lemmy's history does (DROP
// COLUMN id, ADD PRIMARY KEY on another column) on the real server and in the linter's
// catalog: both must know only the new key, and a recipe batches by it every time (the
// old key, left behind, was picked at random from the constraints).
func TestDropColumnDropsItsKey(t *testing.T) {
	ctx := context.Background()
	_, conn := liveDB(t)
	sql := `CREATE TABLE ban (id serial CONSTRAINT ban_old_pkey PRIMARY KEY, person_id int NOT NULL, published timestamptz);
ALTER TABLE ban DROP COLUMN id, ADD PRIMARY KEY (person_id);`
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	var server []string
	if err := conn.QueryRow(ctx, `SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
		WHERE c.conrelid = 'ban'::regclass AND c.contype = 'p'`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	if strings.Join(server, ",") != "person_id" {
		t.Fatalf("the server's primary key is %v", server)
	}
	src := []Source{{Name: "1.sql", SQL: sql}, {Name: "2.sql", SQL: "ALTER TABLE ban RENAME COLUMN published TO published_at;"}}
	for range 20 {
		res, err := Lint(src, Options{})
		if err != nil {
			t.Fatal(err)
		}
		fix := ""
		for _, f := range res.Findings {
			if f.Rule == "rename-column" {
				fix = f.Fix
			}
		}
		if !strings.Contains(fix, "WHERE person_id IN (SELECT person_id FROM ban") {
			t.Fatalf("the recipe does not batch by the server's key %v:\n%s", server, fix)
		}
	}
}
