package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/migrate"
)

// tandem runs the CLI in-process and returns its exit code and output.
func tandem(t *testing.T, args ...string) (int, string) {
	t.Helper()
	global = globals{}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMigrationCommands(t *testing.T) {
	url := pgtest.NewOwnerDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := writeFile(t, dir, "02_price.yaml", `
operations:
  - add_column:
      table: items
      up: qty * 2
      column: {name: price, type: numeric}
`)
	bad := writeFile(t, dir, "bad.json", `{"operations": [{"add_column": {"table": "itemz", "column": {"name": "x", "type": "int", "nullable": true}}}]}`)
	db := "--postgres-url=" + url

	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"bogus"}, cli.ExitUsage, "unknown command"},
		{[]string{"start"}, cli.ExitUsage, "accepts 1 arg"},
		{[]string{"start", filepath.Join(dir, "missing.json"), db}, cli.ExitUsage, "no such file"},
		{[]string{"validate", bad, db}, cli.ExitUsage, `operation 0 (add_column), field "table": table "itemz" does not exist in schema "public"; did you mean "items"?`},
		{[]string{"start", bad, db}, cli.ExitUsage, "bad.json: operation 0"},
		{[]string{"start", good, db, "--backfill-workers=0"}, cli.ExitUsage, "--backfill-workers 0 is out of range: give 1 to 64"},
		{[]string{"start", good, db, "--backfill-workers=65"}, cli.ExitUsage, "give 1 to 64"},
		{[]string{"complete", db, "--lock-timeout=0s"}, cli.ExitUsage, "--lock-timeout 0s is out of range: give 1ms to 1h"},
		{[]string{"init", db, "--json"}, cli.ExitOK, `"state_schema": "tandem"`},
		{[]string{"start", good, db, "--dry-run"}, cli.ExitOK, "plan of the start of 02_price (nothing applied)"},
		{[]string{"start", good, db, "--dry-run"}, cli.ExitOK, `locks "public"."items" in ACCESS EXCLUSIVE mode`},
		{[]string{"start", good, db, "--dry-run", "--json"}, cli.ExitOK, `"action": "start"`},
		{[]string{"start", good, db, "--dry-run", "--complete"}, cli.ExitUsage, "--dry-run plans a start only"},
		{[]string{"complete", db, "--dry-run"}, cli.ExitFailure, "no migration is in progress"},
		{[]string{"status", db}, cli.ExitOK, "state:   no migrations"},
		{[]string{"validate", good, db}, cli.ExitOK, "valid (1 operations)"},
		{[]string{"start", good, db, "--backfill-workers=3"}, cli.ExitOK, "public_02_price"},
		{[]string{"complete", db, "--dry-run"}, cli.ExitOK, "plan of the complete of 02_price (nothing applied)"},
		{[]string{"complete", db, "--dry-run", "--json"}, cli.ExitOK, `"action": "complete"`},
		{[]string{"latest", "schema", db}, cli.ExitOK, "public_02_price\n"},
		{[]string{"latest", "migration", db}, cli.ExitOK, "02_price\n"},
		{[]string{"latest", "url", db}, cli.ExitOK, "search_path%3D%22public_02_price%22"},
		{[]string{"latest", "schema", db, "--json"}, cli.ExitOK, `"version_schema": "public_02_price"`},
		{[]string{"rollback", db, "--json"}, cli.ExitOK, `"status": "rolled_back"`},
		{[]string{"start", good, db}, cli.ExitOK, "public_02_price"},
		{[]string{"complete", db, "--json"}, cli.ExitOK, `"migration": "02_price",
  "status": "completed"`},
		{[]string{"rollback", db}, cli.ExitFailure, "no migration is in progress"},
		{[]string{"maintenance", "on", db, "--json", "--reason=test"}, cli.ExitOK, `"enabled": true`},
		{[]string{"maintenance", "off", db, "--json"}, cli.ExitOK, `"enabled": false`},
		{[]string{"start", good, db}, cli.ExitUsage, "already been applied"},
	}
	for _, s := range steps {
		code, out := tandem(t, s.args...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) {
			t.Fatalf("tandem %s: exit %d, output:\n%s\nwant exit %d and output containing %q", strings.Join(s.args, " "), code, out, s.wantCode, s.wantOut)
		}
	}

	var vr validateResult
	code, out := tandem(t, "validate", "--json", bad, db)
	if err := json.Unmarshal([]byte(out), &vr); code != cli.ExitUsage || err != nil || vr.Valid || vr.Field != "table" || vr.Kind != "add_column" || vr.Operation == nil || *vr.Operation != 0 {
		t.Fatalf("validate --json of a bad file: exit %d, %+v (%v):\n%s", code, vr, err, out)
	}

	code, out = tandem(t, "status", "--json", db)
	if code != cli.ExitOK {
		t.Fatalf("status --json: exit %d: %s", code, out)
	}
	var st migrate.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if st.State != "complete" || st.Version != "02_price" || len(st.History) != 2 || st.History[0].Status != migrate.StatusRolledBack || st.History[1].Status != migrate.StatusCompleted {
		t.Fatalf("status: %+v", st)
	}
}

func TestMigrateDirectory(t *testing.T) {
	url := pgtest.NewOwnerDatabase(t)
	dir := t.TempDir()
	writeFile(t, dir, "01_create.json", `{"operations": [{"create_table": {"name": "t", "columns": [{"name": "id", "type": "serial", "pk": true}]}}]}`)
	writeFile(t, dir, "02_add.json", `{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true}}}]}`)
	db := "--postgres-url=" + url
	if code, out := tandem(t, "migrate", dir, db); code != cli.ExitOK || !strings.Contains(out, "applied 01_create, 02_add") {
		t.Fatalf("migrate: exit %d: %s", code, out)
	}
	if code, out := tandem(t, "status", db); code != cli.ExitOK || !strings.Contains(out, "active:  02_add, started") {
		t.Fatalf("status after migrate: exit %d: %s", code, out)
	}
	if code, out := tandem(t, "migrate", dir, "--complete", db); code != cli.ExitOK {
		t.Fatalf("migrate --complete: exit %d: %s", code, out)
	}
	if code, out := tandem(t, "migrate", dir, db); code != cli.ExitOK || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("migrate again: exit %d: %s", code, out)
	}
}

func TestVersionURL(t *testing.T) {
	t.Setenv("PGHOST", "/var/run/postgresql")
	t.Setenv("PGPORT", "5433")
	t.Setenv("PGUSER", "app")
	t.Setenv("PGDATABASE", "shop")
	for _, tc := range []struct{ base, want string }{
		{"", "postgres://app@/shop?host=%2Fvar%2Frun%2Fpostgresql&options=-c+search_path%3D%22public_02%22+-c+tandem.version_schema%3Dpublic_02&port=5433"},
		{"postgres://u@db:5432/x?sslmode=disable", "postgres://u@db:5432/x?options=-c+search_path%3D%22public_02%22+-c+tandem.version_schema%3Dpublic_02&sslmode=disable"},
	} {
		got, err := versionURL(tc.base, "public_02")
		if err != nil || got != tc.want {
			t.Errorf("versionURL(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
	if _, err := versionURL("host=db user=u", "public_02"); exitCode(err) != cli.ExitUsage {
		t.Errorf("a keyword/value connection string: err = %v, want a usage error", err)
	}
}

func TestProgressRows(t *testing.T) {
	for _, tc := range []struct {
		bp   migrate.BackfillProgress
		want string
	}{
		{migrate.BackfillProgress{RowsDone: 157, RowsTotal: 99999, Estimate: true}, "157 of about 99999 rows (0%, the total is an estimate)"},
		{migrate.BackfillProgress{RowsDone: 120, RowsTotal: 100, Estimate: true}, "120 of about 120 rows (100%, the total is an estimate)"},
		{migrate.BackfillProgress{RowsDone: 50, RowsTotal: 200}, "50 of 200 rows (25%)"},
		{migrate.BackfillProgress{RowsDone: 100000, RowsTotal: 99999, Done: true}, "100000 rows"},
	} {
		if got := progressRows(tc.bp); got != tc.want {
			t.Errorf("progressRows(%+v) = %q, want %q", tc.bp, got, tc.want)
		}
	}
}

// TestMigrateDirectoryWithStartSQL: a start-time sql operation cannot be part of the one
// step tandem migrate makes; the error names the file that holds it, not the last one.
func TestMigrateDirectoryWithStartSQL(t *testing.T) {
	url := pgtest.NewOwnerDatabase(t)
	dir := t.TempDir()
	writeFile(t, dir, "01_create.json", `{"operations": [{"create_table": {"name": "t", "columns": [{"name": "id", "type": "serial", "pk": true}]}}]}`)
	writeFile(t, dir, "02_sql.json", `{"operations": [{"sql": {"up": "CREATE TABLE u (id int)", "down": "DROP TABLE u"}}]}`)
	writeFile(t, dir, "03_add.json", `{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true}}}]}`)
	code, out := tandem(t, "migrate", dir, "--postgres-url="+url)
	if code != cli.ExitUsage || !strings.Contains(out, "02_sql.json: operation 0 (sql)") || !strings.Contains(out, "tandem start") {
		t.Fatalf("migrate: exit %d: %s", code, out)
	}
}
