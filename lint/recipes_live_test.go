package lint

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestRecipesRunOnServer lints a migration against a real database, runs the finding's
// recipe there statement by statement (each batch UPDATE until it changes no row), and
// checks that the result is what the migration meant: declared types, NOT NULL, values.
func TestRecipesRunOnServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	tests := []struct {
		name  string
		setup string
		sql   string // the migration that the rule reports
		rule  string
		check []string // queries that must return true afterwards
	}{
		{
			name:  "serial column keeps integer and NOT NULL",
			setup: "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 25) g;",
			sql:   "ALTER TABLE t ADD COLUMN n serial;",
			rule:  "add-column-generated",
			check: []string{
				"SELECT format_type(atttypid, atttypmod) = 'integer' AND attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'n'",
				"SELECT count(DISTINCT n) = 25 AND count(*) FILTER (WHERE n IS NULL) = 0 FROM t",
				"SELECT pg_get_expr(adbin, adrelid) LIKE 'nextval(%' FROM pg_attrdef WHERE adrelid = 't'::regclass",
			},
		},
		{
			name:  "bigserial on a table without a primary key",
			setup: "CREATE TABLE t (v text); INSERT INTO t SELECT 'v' || g FROM generate_series(1, 25) g;",
			sql:   "ALTER TABLE t ADD COLUMN n bigserial;",
			rule:  "add-column-generated",
			check: []string{
				"SELECT format_type(atttypid, atttypmod) = 'bigint' AND attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'n'",
				"SELECT count(DISTINCT n) = 25 FROM t",
			},
		},
		{
			name:  "type change with a composite key",
			setup: "CREATE TABLE t (a int, b int, amount int NOT NULL, PRIMARY KEY (a, b)); INSERT INTO t SELECT g, g % 3, g * 7 FROM generate_series(1, 30) g;",
			sql:   "ALTER TABLE t ALTER COLUMN amount TYPE bigint;",
			rule:  "alter-column-type-rewrite",
			check: []string{
				"SELECT format_type(atttypid, atttypmod) = 'bigint' AND attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'amount'",
				"SELECT bool_and(amount = a * 7) FROM t",
			},
		},
		{
			name:  "type change with USING, no key, NULLs",
			setup: "CREATE TABLE t (code text, qty varchar(10)); INSERT INTO t SELECT 'c' || g, CASE WHEN g % 4 = 0 THEN NULL ELSE g::text END FROM generate_series(1, 30) g;",
			sql:   "ALTER TABLE t ALTER COLUMN qty TYPE integer USING qty::integer;",
			rule:  "alter-column-type-rewrite",
			check: []string{
				"SELECT format_type(atttypid, atttypmod) = 'integer' AND NOT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'qty'",
				"SELECT count(*) FILTER (WHERE qty IS NULL) = 7 AND sum(qty) = 353 FROM t",
			},
		},
		{
			name:  "volatile default",
			setup: "CREATE TABLE t (uid int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 25);",
			sql:   "ALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();",
			rule:  "add-column-volatile-default",
			check: []string{
				"SELECT count(DISTINCT token) = 25 FROM t",
				"SELECT pg_get_expr(adbin, adrelid) = 'gen_random_uuid()' FROM pg_attrdef WHERE adrelid = 't'::regclass",
			},
		},
		{
			name:  "stored generated column",
			setup: "CREATE TABLE t (k text PRIMARY KEY, a int, b int); INSERT INTO t SELECT 'k' || g, g, 2 * g FROM generate_series(1, 25) g;",
			sql:   "ALTER TABLE t ADD COLUMN total int GENERATED ALWAYS AS (a + b) STORED;",
			rule:  "add-column-generated",
			check: []string{"SELECT bool_and(total = 3 * a) FROM t"},
		},
		{
			name:  "rename column",
			setup: "CREATE TABLE t (id int PRIMARY KEY, name varchar(40)); INSERT INTO t SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 25) g;",
			sql:   "ALTER TABLE t RENAME COLUMN name TO full_name;",
			rule:  "rename-column",
			check: []string{
				"SELECT format_type(atttypid, atttypmod) = 'character varying(40)' FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'full_name'",
				"SELECT count(full_name) = 20 FROM t",
			},
		},
		{
			name:  "set not null",
			setup: "CREATE TABLE t (id int PRIMARY KEY, email text); INSERT INTO t SELECT g, 'e' FROM generate_series(1, 25) g;",
			sql:   "ALTER TABLE t ALTER COLUMN email SET NOT NULL;",
			rule:  "set-not-null-scan",
			check: []string{"SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'email'"},
		},
		{
			name:  "statement with an inline comment",
			setup: "CREATE TABLE t (id int PRIMARY KEY, ts timestamp); INSERT INTO t SELECT g, now() FROM generate_series(1, 5) g;",
			sql:   "ALTER TABLE t -- keep the name\n  ALTER COLUMN ts TYPE timestamptz;",
			rule:  "alter-column-type-rewrite",
			check: []string{"SELECT format_type(atttypid, atttypmod) = 'timestamp with time zone' FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'ts'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS t CASCADE;"+tt.setup); err != nil {
				t.Fatalf("setup: %v", err)
			}
			cat, err := LoadCatalog(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			cat.timeZone = tzUnknown // as without --database-url: the recipe sets the TimeZone
			res, err := LintString("m.sql", tt.sql, Options{Catalog: cat})
			if err != nil {
				t.Fatal(err)
			}
			var f *Finding
			for i := range res.Findings {
				if res.Findings[i].Rule == tt.rule {
					f = &res.Findings[i]
				}
			}
			if f == nil {
				t.Fatalf("%s did not fire: %v", tt.rule, ruleIDs(res.Findings))
			}
			if strings.Contains(f.Statement, "--") || strings.Contains(f.Fix, "-- keep the name") {
				t.Errorf("an inline comment leaked into the excerpt or the recipe:\n%s\n%s", f.Statement, f.Fix)
			}
			run, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer run.Close(ctx)
			for _, st := range parseAll(t, f.Fix) {
				for i := 0; ; i++ {
					tag, err := run.Exec(ctx, st.text)
					if err != nil {
						t.Fatalf("recipe statement %q: %v\nrecipe:\n%s", st.text, err, f.Fix)
					}
					if st.node.GetUpdateStmt() == nil || tag.RowsAffected() == 0 {
						break
					}
					if i > 100 {
						t.Fatalf("the batch %q never finishes", st.text)
					}
				}
			}
			for _, q := range tt.check {
				var ok bool
				if err := run.QueryRow(ctx, q).Scan(&ok); err != nil || !ok {
					t.Errorf("after the recipe, %s: %v, %v\nrecipe:\n%s", q, ok, err, f.Fix)
				}
			}
		})
	}
}
