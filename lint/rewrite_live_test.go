package lint

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestTypeChangeRewriteMatchesServer runs type changes on a real PostgreSQL and compares
// whether the table's relfilenode changed (a rewrite) with the linter's verdict, given the
// database's catalog and its TimeZone, and the SET timezone in the file.
func TestTypeChangeRewriteMatchesServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	tests := []struct {
		name   string
		dbTZ   string // the TimeZone sessions start with
		sql    string // the migration: run on the server and linted
		reason string
	}{
		{"timestamptz in UTC session", "UTC", "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"timestamptz with USING the column", "UTC", "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz USING ts;", ""},
		{"timestamptz in a Berlin database", "Europe/Berlin", "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"file sets UTC in a Berlin database", "Europe/Berlin", "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"file sets TIME ZONE to Etc/UTC", "Europe/Berlin", "SET TIME ZONE 'Etc/UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"file sets a non-UTC zone", "UTC", "SET timezone = 'America/New_York';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"SET LOCAL UTC", "Europe/Berlin", "SET LOCAL timezone = 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", ""},
		{"back to timestamp in UTC", "UTC", "ALTER TABLE t ALTER COLUMN tz TYPE timestamp;", ""},
		{"precision shrinks", "UTC", "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz(3);", ""},
		{"int to bigint", "UTC", "ALTER TABLE t ALTER COLUMN n TYPE bigint;", ""},
		{"varchar widening", "UTC", "ALTER TABLE t ALTER COLUMN v TYPE varchar(20);", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every session of this URL starts with the TimeZone the case gives the database.
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("timezone", tt.dbTZ)
			u.RawQuery = q.Encode()
			tzURL := u.String()
			conn, err := pgx.Connect(ctx, tzURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, s := range []string{
				"DROP TABLE IF EXISTS t",
				"CREATE TABLE t (id int PRIMARY KEY, ts timestamp, tz timestamptz, n int, v varchar(10))",
				"INSERT INTO t SELECT g, now(), now(), g, 'x' FROM generate_series(1, 100) g",
			} {
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			cat, err := LoadCatalog(ctx, tzURL) // a new session: it sees the TimeZone
			if err != nil {
				t.Fatal(err)
			}
			run, err := pgx.Connect(ctx, tzURL)
			if err != nil {
				t.Fatal(err)
			}
			defer run.Close(ctx)
			var tz string
			if err := run.QueryRow(ctx, "SHOW TimeZone").Scan(&tz); err != nil || tz != tt.dbTZ {
				t.Fatalf("session TimeZone = %q (%v), want %q", tz, err, tt.dbTZ)
			}
			var before, after uint32
			if err := run.QueryRow(ctx, "SELECT relfilenode FROM pg_class WHERE relname = 't'").Scan(&before); err != nil {
				t.Fatal(err)
			}
			if _, err := run.Exec(ctx, "BEGIN;\n"+tt.sql+"\nCOMMIT;"); err != nil {
				t.Fatalf("run migration: %v", err)
			}
			if err := run.QueryRow(ctx, "SELECT relfilenode FROM pg_class WHERE relname = 't'").Scan(&after); err != nil {
				t.Fatal(err)
			}
			rewritten := before != after

			res, err := LintString("m.sql", tt.sql, Options{Catalog: cat})
			if err != nil {
				t.Fatal(err)
			}
			var flagged bool
			for _, f := range res.Findings {
				if f.Rule == "alter-column-type-rewrite" {
					flagged = true
					if !f.Rewrite {
						t.Errorf("alter-column-type-rewrite without rewrites: yes: %s", f.Message)
					}
				}
				if f.Rule == "column-type-semantic-change" && f.Rewrite != rewritten {
					t.Errorf("column-type-semantic-change says rewrite = %v, the server %v", f.Rewrite, rewritten)
				}
			}
			if flagged != rewritten {
				t.Errorf("server rewrote the table: %v; linter reports a rewrite: %v (%v)", rewritten, flagged, ruleIDs(res.Findings))
			}
		})
	}
}

// TestTimeZoneUnknown: without a live catalog or a SET, the linter does not know the
// TimeZone. It says the rewrite depends on it, and the fix sets it.
func TestTimeZoneUnknown(t *testing.T) {
	res, err := Lint([]Source{
		{Name: "1.sql", SQL: "CREATE TABLE t (ts timestamp);"},
		{Name: "2.sql", SQL: "SET lock_timeout = '1s';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;"},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var f *Finding
	for i := range res.Findings {
		if res.Findings[i].Rule == "alter-column-type-rewrite" {
			f = &res.Findings[i]
		}
	}
	if f == nil {
		t.Fatalf("no alter-column-type-rewrite finding: %v", ruleIDs(res.Findings))
	}
	if !strings.Contains(f.Message, "unless the session's TimeZone is UTC") || !strings.Contains(f.Fix, "SET LOCAL timezone = 'UTC';") {
		t.Errorf("finding does not explain the TimeZone: %s\n%s", f.Message, f.Fix)
	}
}
