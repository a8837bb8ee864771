package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

// lintCLI runs "tandem lint" in-process with stdin and returns the exit code and output.
func lintCLI(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	return runCLI(t, stdin, append([]string{"lint"}, args...)...)
}

// runCLI runs tandem in-process with args and stdin and returns the exit code and the
// output, stderr included.
func runCLI(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	global = globals{}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	code := cli.Execute(context.Background(), root, args, &out, &out, exitCode)
	return code, out.String()
}

func TestLintCommand(t *testing.T) {
	dir := t.TempDir()
	writeLintFile(t, dir, "001_users.up.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text);\nCREATE INDEX users_email ON users (email);\n")
	writeLintFile(t, dir, "001_users.down.sql", "DROP TABLE users;\n")
	writeLintFile(t, dir, "002_index.up.sql", "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_lower_email ON users (lower(email));\n")
	bad := writeLintFile(t, t.TempDir(), "003_bad.sql", "SET lock_timeout = '2s';\n\nALTER TABLE users ADD COLUMN;\n")
	risky := writeLintFile(t, t.TempDir(), "004_risky.sql", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nCREATE INDEX users_id ON users (id);\n")
	cfg := writeLintFile(t, t.TempDir(), "tandem.yaml", "lint:\n  disable: [index-not-concurrent]\n")
	badCfg := writeLintFile(t, t.TempDir(), ".tandem-lint.yaml", "disable: [no-such-rule]\n")

	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "clean directory", args: []string{dir}, wantCode: 0, want: []string{"0 errors, 0 warnings in 2 files; 3 of 3 statements analysed"}},
		{name: "finding", args: []string{risky}, wantCode: 1, want: []string{"004_risky.sql:3:1: error:", "[index-not-concurrent]", "CREATE INDEX CONCURRENTLY users_id"}},
		{name: "stdin", stdin: "TRUNCATE users;", args: []string{"-"}, wantCode: 1, want: []string{"<stdin>:1:1: error:", "[truncate]"}},
		{name: "warning only", stdin: "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\nALTER TABLE users ALTER COLUMN email DROP NOT NULL;", args: []string{"-"}, wantCode: 0, want: []string{"warning:", "[drop-not-null]"}},
		{name: "parse error", args: []string{bad}, wantCode: 2, want: []string{"003_bad.sql:3:"}},
		{name: "missing file", args: []string{filepath.Join(dir, "nope.sql")}, wantCode: 2},
		{name: "no arguments", wantCode: 2},
		{name: "bad format", args: []string{"--format", "xml", dir}, wantCode: 2},
		{name: "bad pg version", args: []string{"--pg-version", "1000", dir}, wantCode: 2},
		{name: "config disables the rule", args: []string{"--config", cfg, risky}, wantCode: 0},
		{name: "bad config", args: []string{"--config", badCfg, risky}, wantCode: 2, want: []string{"no-such-rule"}},
		{name: "pg version matters", stdin: "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\nALTER TABLE users ADD COLUMN a boolean DEFAULT true;", args: []string{"--pg-version", "10", "-"}, wantCode: 1, want: []string{"[add-column-volatile-default]"}},
		{name: "github format", args: []string{"--format", "github", risky}, wantCode: 1, want: []string{"::error file=", "title=tandem lint%3A index-not-concurrent::"}},
		{name: "list rules", args: []string{"--list-rules"}, wantCode: 0, want: []string{"concurrent-index-invalid-risk", "enum-rename-value"}},
		{name: "json alias", stdin: "TRUNCATE users;", args: []string{"--json", "-"}, wantCode: 1, want: []string{`"rule": "truncate"`}},
		{name: "json alias with the same format", stdin: "TRUNCATE users;", args: []string{"--json", "--format", "json", "-"}, wantCode: 1, want: []string{`"rule": "truncate"`}},
		{name: "json alias contradicts format", args: []string{"--json", "--format", "sarif", dir}, wantCode: 2, want: []string{"--json and --format sarif"}},
		{name: "squawk-ignore honoured", stdin: "-- squawk-ignore-file\nTRUNCATE users;", args: []string{"-"}, wantCode: 0},
		{name: "no-foreign-ignores", stdin: "-- squawk-ignore-file\nTRUNCATE users;", args: []string{"--no-foreign-ignores", "-"}, wantCode: 1, want: []string{"[truncate]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := lintCLI(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestLintCommandJSON(t *testing.T) {
	code, out := lintCLI(t, "ALTER TABLE users RENAME COLUMN a TO b;", "--format", "json", "-")
	if code != 1 {
		t.Fatalf("exit code %d\n%s", code, out)
	}
	var doc struct {
		Findings []struct {
			Rule             string `json:"rule"`
			Lock             string `json:"lock"`
			BreaksOldVersion bool   `json:"breaks_old_version"`
		} `json:"findings"`
		Errors int `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	found := false
	for _, f := range doc.Findings {
		if f.Rule == "rename-column" && f.Lock == "ACCESS EXCLUSIVE" && f.BreaksOldVersion {
			found = true
		}
	}
	if !found || doc.Errors == 0 {
		t.Errorf("rename-column finding missing: %s", out)
	}
}

func TestLintCommandLiveCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	url := pgtest.NewDatabase(t)
	pool := pgtest.NewPool(t, url)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE users (id bigint PRIMARY KEY, name varchar(50))`); err != nil {
		t.Fatal(err)
	}
	sql := "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\nALTER TABLE users ALTER COLUMN name TYPE varchar(80);"
	if code, out := lintCLI(t, sql, "-"); code != 0 || !strings.Contains(out, "1 warning") {
		t.Errorf("without the catalog: exit %d, want 0 and a warning about the unknown type\n%s", code, out)
	}
	if code, out := lintCLI(t, sql, "--database-url", url, "-"); code != 0 || !strings.Contains(out, "0 errors, 0 warnings") {
		t.Errorf("with the catalog: exit %d\n%s", code, out)
	}
	if code, _ := lintCLI(t, sql, "--database-url", "postgres://127.0.0.1:1/x?connect_timeout=1", "-"); code != 2 {
		t.Errorf("unreachable catalog: exit %d, want 2", code)
	}
}

// writeLintFile writes body to dir/name and returns the path.
func writeLintFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLintBaseline: the first run records the findings and passes; later runs fail only
// on new findings, even when old statements move to other lines.
func TestLintBaseline(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(t.TempDir(), "baseline.json")
	writeLintFile(t, dir, "001.sql", "TRUNCATE users;\nALTER TABLE users DROP COLUMN a;\n")
	if code, out := lintCLI(t, "", "--baseline", base, dir); code != 0 || !strings.Contains(out, "recorded 4 findings") {
		t.Fatalf("recording run: exit %d\n%s", code, out)
	}
	if code, out := lintCLI(t, "", "--baseline", base, dir); code != 0 || !strings.Contains(out, "4 findings not shown") {
		t.Fatalf("unchanged: exit %d\n%s", code, out)
	}
	// The old statements move down; a new one comes.
	writeLintFile(t, dir, "001.sql", "-- a comment\n\nTRUNCATE users;\nALTER TABLE users DROP COLUMN a;\n")
	writeLintFile(t, dir, "002.sql", "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\nALTER TABLE users RENAME COLUMN b TO c;\n")
	code, out := lintCLI(t, "", "--baseline", base, "--json", dir)
	if code != 1 {
		t.Fatalf("new finding: exit %d, want 1\n%s", code, out)
	}
	var doc struct {
		Findings []struct{ Rule, File string } `json:"findings"`
		Hidden   int                           `json:"hidden"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Findings) != 1 || doc.Findings[0].Rule != "rename-column" || doc.Hidden != 4 {
		t.Errorf("findings = %+v, hidden = %d; want only rename-column and 4 hidden", doc.Findings, doc.Hidden)
	}
	if code, out := lintCLI(t, "", "--baseline", base, "--update-baseline", dir); code != 0 || !strings.Contains(out, "recorded 5 findings") {
		t.Errorf("update: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(base, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := lintCLI(t, "", "--baseline", base, dir); code != 2 || !strings.Contains(out, "--update-baseline") {
		t.Errorf("corrupt baseline: exit %d, want 2 and the fix\n%s", code, out)
	}
}

// TestLintSince: every file is replayed (the table created in the old file is known), but
// only the files changed since the revision are reported.
func TestLintSince(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		c := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	dir := filepath.Join(repo, "migrations")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLintFile(t, dir, "001.sql", "TRUNCATE users;\n")
	writeLintFile(t, dir, "002.sql", "CREATE TABLE audit (id int);\n")
	git("add", ".")
	git("commit", "-q", "-m", "old")
	// New table in the same file is new; audit comes from the old file, so it is not.
	writeLintFile(t, dir, "003.sql", "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\nCREATE INDEX ON audit (id);\n")

	code, out := lintCLI(t, "", "--since", "HEAD", dir)
	if code != 1 || !strings.Contains(out, "003.sql:3:1") || strings.Contains(out, "001.sql") {
		t.Errorf("--since HEAD: exit %d, want 1 with only 003.sql\n%s", code, out)
	}
	if !strings.Contains(out, "not shown") {
		t.Errorf("the summary does not count the findings left out:\n%s", out)
	}
	if code, out := lintCLI(t, "", "--since", "no-such-rev", dir); code != 2 || !strings.Contains(out, "no-such-rev") {
		t.Errorf("unknown revision: exit %d, want 2\n%s", code, out)
	}
	if code, _ := lintCLI(t, "TRUNCATE a;", "--since", "HEAD", "-"); code != 2 {
		t.Errorf("--since with stdin: exit %d, want 2", code)
	}
}

// TestLintParseErrorJSON: a file that does not parse is a finding in the JSON report, the
// other files are analysed, and the exit code is 2.
func TestLintParseErrorJSON(t *testing.T) {
	dir := t.TempDir()
	writeLintFile(t, dir, "001.sql", "CREATE TABLE {{ .Schema }}.t (a int);\n")
	writeLintFile(t, dir, "002.sql", "TRUNCATE users;\n")
	code, out := lintCLI(t, "", "--format", "json", dir)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	var doc struct {
		Findings []struct {
			Rule string `json:"rule"`
			Line int    `json:"line"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rules := map[string]bool{}
	for _, f := range doc.Findings {
		rules[f.Rule] = true
	}
	if !rules["syntax-error"] || !rules["truncate"] {
		t.Errorf("findings %+v, want syntax-error and truncate", doc.Findings)
	}
}

// TestLintDjangoSqlmigrate lints the output of Django's sqlmigrate, one file per pending
// migration as docs/lint-rules.md shows: BEGIN/COMMIT and the "-- Add field" comments that
// name each operation come through as the findings' context.
func TestLintDjangoSqlmigrate(t *testing.T) {
	dir := t.TempDir()
	writeLintFile(t, dir, "0001_accounts_0007_profile_bio.sql", "BEGIN;\n--\n-- Add field bio to profile\n--\n"+
		"ALTER TABLE \"accounts_profile\" ADD COLUMN \"bio\" text DEFAULT '' NOT NULL;\n"+
		"ALTER TABLE \"accounts_profile\" ALTER COLUMN \"bio\" DROP DEFAULT;\nCOMMIT;\n")
	writeLintFile(t, dir, "0002_accounts_0008_profile_email_idx.sql", "BEGIN;\n--\n-- Alter field email on profile\n--\n"+
		"CREATE INDEX \"accounts_profile_email_b0fb0137\" ON \"accounts_profile\" (\"email\");\nCOMMIT;\n")
	code, out := lintCLI(t, "", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, w := range []string{
		"0002_accounts_0008_profile_email_idx.sql:5:1: error: CREATE INDEX without CONCURRENTLY",
		"context: Alter field email on profile",
		"context: Add field bio to profile",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
