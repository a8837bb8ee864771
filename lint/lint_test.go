package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSafeRecipes lints the standard safe recipes: none may produce an error-level finding.
func TestSafeRecipes(t *testing.T) {
	recipes := []struct {
		name string
		sql  string
	}{
		{"not valid then validate in a later transaction", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;" + fileSep +
			"SET lock_timeout = '2s';\nALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;"},
		{"create index concurrently in a non-transactional file", "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{"set not null after a validated check on pg 12+", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;" + fileSep +
			"SET lock_timeout = '2s';\nALTER TABLE users VALIDATE CONSTRAINT users_email_nn;" + fileSep +
			"SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_nn;"},
		{"varchar widening", "CREATE TABLE users (id int, name varchar(50));" + fileSep + "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ALTER COLUMN name TYPE varchar(100);"},
		{"unique constraint using a concurrent index", "-- +goose NO TRANSACTION\nCREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\nSET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;"},
		{"add column with a constant default", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;"},
		{"new table with indexes and constraints", "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE);\nCREATE INDEX t_email ON t (lower(email));\nALTER TABLE t ADD CONSTRAINT c CHECK (email <> '');"},
		{"detach concurrently", "-- atlas:txmode none\nALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;"},
		{"refresh concurrently", "REFRESH MATERIALIZED VIEW CONCURRENTLY stats;"},
		{"rename a table and keep the old name as a view", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users RENAME TO accounts;\nCREATE VIEW users AS SELECT * FROM accounts;"},
		{"add a column, then an index concurrently in the next file", "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ADD COLUMN org_id bigint;" + fileSep + "-- +goose NO TRANSACTION\nDROP INDEX CONCURRENTLY IF EXISTS users_org_id;\nCREATE INDEX CONCURRENTLY users_org_id ON users (org_id);"},
	}
	for _, r := range recipes {
		t.Run(r.name, func(t *testing.T) {
			res := lintCase(t, ruleCase{sql: r.sql})
			for _, f := range res.Findings {
				t.Errorf("%s:%d [%s] %s", f.File, f.Line, f.Rule, f.Message)
			}
		})
	}
}

func TestPositionsAndStatements(t *testing.T) {
	sql := "-- comment\n\n  /* block */ CREATE INDEX a ON t (x);\nCREATE INDEX b\n  ON t (y); CREATE INDEX c ON t (z)"
	var got [][2]int
	for _, st := range parseAll(t, sql) {
		got = append(got, [2]int{st.line, st.col})
	}
	want := [][2]int{{3, 15}, {4, 1}, {5, 13}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("positions = %v, want %v", got, want)
	}
}

func TestParseError(t *testing.T) {
	_, err := LintString("bad.sql", "CREATE TABLE t (a int);\n\nALTER TABLE t ADD COLUMN;\n", Options{})
	pe, ok := AsParseError(err)
	if !ok {
		t.Fatalf("err = %v, want a *ParseError", err)
	}
	if pe.File != "bad.sql" || pe.Line != 3 {
		t.Errorf("parse error at %s:%d, want bad.sql:3 (%v)", pe.File, pe.Line, pe)
	}
}

// TestParseErrorIsAFinding: a file that does not parse is reported as a finding at the
// error's position, and the files after it are still analysed.
func TestParseErrorIsAFinding(t *testing.T) {
	res, err := Lint([]Source{
		{Name: "1.sql", SQL: "CREATE TABLE {{ .Schema }}.t (a int);"},
		{Name: "2.sql", SQL: "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\n\nTRUNCATE users;"},
		{Name: "3.sql", SQL: "SELECT 1;\nALTER TABLE;"},
	}, Options{})
	if _, ok := AsParseError(err); !ok {
		t.Fatalf("err = %v, want a *ParseError", err)
	}
	if res == nil {
		t.Fatal("no result next to the parse errors")
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, fmt.Sprintf("%s:%d:%d %s %s", f.File, f.Line, f.Column, f.Rule, f.Severity))
	}
	want := []string{"1.sql:1:14 syntax-error error", "2.sql:4:1 truncate error", "3.sql:2:12 syntax-error error"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings = %v, want %v", got, want)
	}
	if res.Coverage.Files != 3 || res.Errors() != 3 {
		t.Errorf("files = %d, errors = %d; want 3 and 3", res.Coverage.Files, res.Errors())
	}
	if f := res.Findings[2]; f.Statement != "ALTER TABLE;" {
		t.Errorf("the syntax error's line = %q, want the line it is on", f.Statement)
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	if out := text.String(); !strings.Contains(out, "3.sql:2:12: error: PostgreSQL cannot parse this statement") ||
		!strings.Contains(out, "\n    line: ALTER TABLE;\n") || strings.Count(out, "lock: ") != 1 {
		t.Errorf("text report: want each syntax error with its line and without a statement's facts (one lock: line, truncate's):\n%s", out)
	}
}

// TestParseErrorLine: the line a syntax error shows is the file's, shortened, without a
// byte-order mark or control characters; a file that begins with a UTF-8 byte-order
// mark is told so.
func TestParseErrorLine(t *testing.T) {
	long := "ALTER TABLE t ADD COLUMN " + strings.Repeat("x", 200) + " int int;"
	tests := []struct {
		name, sql, wantLine, wantMsg string
	}{
		{"a byte-order mark", "\ufeffCREATE TABLE t (a int);", "CREATE TABLE t (a int);", "byte-order mark"},
		{"control characters", "SELECT 1;\nALTER\x1b[2J TABLE;", "ALTER\ufffd[2J TABLE;", "syntax error"},
		{"bytes that are not UTF-8", "SELECT 1;\nALTER \xff\xfe;", "ALTER \ufffd\ufffd;", "syntax error"},
		{"a long line", long, string([]rune(long)[:120]) + " …", "syntax error"},
		{"C1 controls and bidi overrides", "SELECT 1;\nALTER \u009b2J\u202e TABLE;", "ALTER \ufffd2J\ufffd TABLE;", "syntax error"},
		// PostgreSQL counts the error's position in characters: multibyte text before it
		// must not move it to an earlier line.
		{"multibyte text before the error", "-- " + strings.Repeat("é", 40) + "\nSELECT 1 2;", "SELECT 1 2;", "syntax error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("f.sql", tt.sql, Options{})
			if _, ok := AsParseError(err); !ok || res == nil || len(res.Findings) != 1 {
				t.Fatalf("err = %v, result %+v: want one syntax error", err, res)
			}
			f := res.Findings[0]
			if f.Statement != tt.wantLine || !strings.Contains(f.Message, tt.wantMsg) {
				t.Errorf("line %q and message %q, want %q and a message with %q", f.Statement, f.Message, tt.wantLine, tt.wantMsg)
			}
			if tt.name != "a byte-order mark" && strings.Contains(f.Message, "byte-order") {
				t.Errorf("message %q speaks of a byte-order mark the file does not have", f.Message)
			}
		})
	}
}

func TestInlineIgnores(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"comment before the statement", "-- tandem-lint-ignore: truncate\nTRUNCATE a;\nTRUNCATE b;", []string{"truncate"}},
		{"trailing comment", "TRUNCATE a; -- tandem-lint-ignore: truncate\nTRUNCATE b;", []string{"truncate"}},
		{"several rules", "-- tandem-lint-ignore: truncate, missing-lock-timeout\nTRUNCATE a;", nil},
		{"all", "TRUNCATE a; /* tandem-lint-ignore: all */", nil},
		{"file-wide", "-- tandem-lint-ignore-file: truncate\nTRUNCATE a;\nTRUNCATE b;", nil},
		{"other rule only", "-- tandem-lint-ignore: drop-table\nTRUNCATE a;", []string{"truncate"}},
		{"text in a string is not a comment", "INSERT INTO x VALUES ('-- tandem-lint-ignore: truncate');\nTRUNCATE a;", []string{"truncate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("i.sql", tt.sql, Options{Config: Config{Disable: []string{"statement-timeout", "missing-lock-timeout", "lock-held-across-statements"}}})
			if err != nil {
				t.Fatal(err)
			}
			got := ruleIDs(res.Findings)
			if len(got) != len(tt.want) {
				t.Fatalf("findings %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDownSectionsAreSkipped(t *testing.T) {
	for _, sql := range []string{
		"-- +goose Up\nALTER TABLE users ADD COLUMN x int;\n-- +goose Down\nALTER TABLE users DROP COLUMN x;\n",
		"-- migrate:up\nALTER TABLE users ADD COLUMN x int;\n\n-- migrate:down\nALTER TABLE users DROP COLUMN x;\n",
	} {
		res, err := LintString("g.sql", sql, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			if f.Rule == "drop-column" {
				t.Errorf("down section linted: %s", f.Message)
			}
		}
	}
}

func TestCoverage(t *testing.T) {
	res, err := LintString("c.sql", "SELECT 1;\nDO $$ BEGIN EXECUTE 'DROP TABLE x'; END $$;\nCALL p();\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Coverage
	if c.Statements != 3 || c.Analysed != 1 || len(c.Skipped) != 2 || c.Skipped[0].Line != 2 {
		t.Errorf("coverage = %+v", c)
	}
	if s := Summary(res); !strings.Contains(s, "1 of 3 statements analysed") || !strings.Contains(s, "c.sql:2 (DO block") {
		t.Errorf("summary = %q", s)
	}
}

func TestSeverityConfig(t *testing.T) {
	sql := "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;"
	res, err := LintString("s.sql", sql, Options{Config: Config{Severity: map[string]string{"drop-not-null": "error"}, TimeoutsSetByRunner: true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors() != 1 {
		t.Errorf("errors = %d, want 1: %v", res.Errors(), ruleIDs(res.Findings))
	}
	res, err = LintString("s.sql", sql, Options{Config: Config{Disable: []string{"drop-not-null"}, TimeoutsSetByRunner: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 {
		t.Errorf("disabled rule fired: %v", ruleIDs(res.Findings))
	}
	if _, err := LintString("s.sql", sql, Options{Config: Config{Disable: []string{"no-such-rule"}}}); err == nil {
		t.Error("unknown rule accepted")
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		shared  bool
		want    Config
		wantErr bool
	}{
		{name: "plain", doc: "pg-version: 13\ndisable: [truncate]\nseverity:\n  drop-not-null: error\ntimeouts-set-by-runner: true\ntransaction: none\n",
			want: Config{PGVersion: 13, Disable: []string{"truncate"}, Severity: map[string]string{"drop-not-null": "error"}, TimeoutsSetByRunner: true, Transaction: "none"}},
		{name: "under lint key", doc: "lint:\n  disable: [truncate]\nstart:\n  foo: 1\n", shared: true, want: Config{Disable: []string{"truncate"}}},
		{name: "shared without lint key", doc: "start:\n  foo: 1\n", shared: true},
		{name: "empty", doc: ""},
		{name: "unknown key", doc: "disabel: [truncate]\n", wantErr: true},
		{name: "unknown rule", doc: "disable: [nope]\n", wantErr: true},
		{name: "bad severity", doc: "severity: {truncate: loud}\n", wantErr: true},
		{name: "bad transaction", doc: "transaction: sometimes\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.doc), tt.shared)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"10_c.up.sql":         "SELECT 10;",
		"10_c.down.sql":       "SELECT -10;",
		"2_b.up.sql":          "SELECT 2;",
		"2_b.down.sql":        "SELECT -2;",
		"1_a.sql":             "SELECT 1;",
		"V3__x.sql":           "SELECT 3;",
		"U3__x.sql":           "SELECT -3;",
		"20240101_d/up.sql":   "SELECT 4;",
		"20240101_d/down.sql": "SELECT -4;",
		"README.md":           "not sql",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srcs, err := LoadSources([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range srcs {
		rel, _ := filepath.Rel(dir, s.Name)
		got = append(got, filepath.ToSlash(rel))
	}
	want := []string{"1_a.sql", "2_b.up.sql", "10_c.up.sql", "20240101_d/up.sql", "V3__x.sql"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	srcs, err = LoadSources([]string{"-"}, strings.NewReader("SELECT 1;"))
	if err != nil || len(srcs) != 1 || srcs[0].Name != "<stdin>" {
		t.Errorf("stdin: %v %v", srcs, err)
	}
	if _, err := LoadSources([]string{filepath.Join(dir, "missing.sql")}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestFormats(t *testing.T) {
	res, err := LintString("dir/f.sql", "CREATE INDEX i ON users (email);\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, format, res); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if !strings.Contains(out, "index-not-concurrent") {
				t.Errorf("output lacks the rule ID:\n%s", out)
			}
			switch format {
			case "json", "sarif":
				var v map[string]any
				if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
					t.Errorf("invalid JSON: %v", err)
				}
			case "github":
				if !strings.HasPrefix(out, "::error file=dir/f.sql,line=1,col=1,title=tandem lint%3A index-not-concurrent::") {
					t.Errorf("github output:\n%s", out)
				}
			case "text":
				if !strings.Contains(out, "dir/f.sql:1:1: error:") || !strings.Contains(out, "CREATE INDEX CONCURRENTLY") {
					t.Errorf("text output:\n%s", out)
				}
			}
		})
	}
	if err := Write(&bytes.Buffer{}, "xml", res); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestRulesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/lint-rules.md")
	if err != nil {
		t.Skipf("docs not available: %v", err)
	}
	for _, r := range Rules() {
		if !bytes.Contains(doc, []byte("## "+r.ID)) {
			t.Errorf("rule %s is not documented in docs/lint-rules.md", r.ID)
		}
		if _, err := os.Stat("rule_" + strings.ReplaceAll(r.ID, "-", "_") + ".go"); err != nil {
			if !ruleFileExists(r.ID) {
				t.Errorf("rule %s has no rule_<id>.go file", r.ID)
			}
		}
	}
}

// ruleFileExists accepts a rule file whose name is a prefix of the ID (rule_drop_column.go).
func ruleFileExists(id string) bool {
	matches, _ := filepath.Glob("rule_*.go")
	for _, m := range matches {
		base := strings.TrimSuffix(strings.TrimPrefix(m, "rule_"), ".go")
		if !strings.HasSuffix(base, "_test") && strings.HasPrefix(strings.ReplaceAll(id, "-", "_"), base) {
			return true
		}
	}
	return false
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"V2__a.sql", "V10__a.sql", true},
		{"V10__a.sql", "V2__a.sql", false},
		{"001_a", "002_a", true},
		{"1_a", "1_b", true},
		{"a", "a1", true},
	}
	for _, tt := range tests {
		if got := naturalLess(tt.a, tt.b); got != tt.want {
			t.Errorf("naturalLess(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestUncertainFindingsAreWarnings(t *testing.T) {
	tests := []struct {
		name, sql, rule string
		want            Severity
	}{
		{"unknown previous type", "ALTER TABLE users ALTER COLUMN name TYPE varchar(80);", "alter-column-type-rewrite", SeverityWarning},
		{"unknown function", "ALTER TABLE users ADD COLUMN x int DEFAULT my_fn();", "add-column-volatile-default", SeverityWarning},
		{"lock_timeout during a concurrent build", "-- +goose NO TRANSACTION\nSET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY i ON users (email);", "concurrent-index-invalid-risk", SeverityWarning},
		{"known volatile function", "ALTER TABLE users ADD COLUMN x float8 DEFAULT random();", "add-column-volatile-default", SeverityError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("w.sql", tt.sql, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Findings {
				if f.Rule == tt.rule {
					if f.Severity != tt.want {
						t.Errorf("severity %s, want %s", f.Severity, tt.want)
					}
					return
				}
			}
			t.Errorf("%s did not fire", tt.rule)
		})
	}
}

// TestSARIFParseError: a syntax error points at its own rule in the SARIF log, and every
// result carries its fingerprint.
func TestSARIFParseError(t *testing.T) {
	res, _ := Lint([]Source{{Name: "a.sql", SQL: "ALTER TABLE;"}, {Name: "b.sql", SQL: "TRUNCATE t;"}}, Options{})
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, res); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID              string            `json:"ruleId"`
				RuleIndex           int               `json:"ruleIndex"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	seen := map[string]bool{}
	for _, r := range run.Results {
		seen[r.RuleID] = true
		if got := run.Tool.Driver.Rules[r.RuleIndex].ID; got != r.RuleID {
			t.Errorf("result %s points at rule %s", r.RuleID, got)
		}
		if r.RuleID != ParseErrorRule && r.PartialFingerprints["tandemFingerprint/v1"] == "" {
			t.Errorf("result %s has no fingerprint", r.RuleID)
		}
	}
	if !seen[ParseErrorRule] || !seen["truncate"] {
		t.Errorf("results %v, want syntax-error and truncate", seen)
	}
}

// TestOpenCopyData: COPY data without its closing \. line runs to the end of the file, as
// in psql; the summary says so rather than dropping the statements after it unseen.
func TestOpenCopyData(t *testing.T) {
	res, err := LintString("c.sql", "COPY t FROM stdin;\n1\nCREATE INDEX i ON big (a);\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || len(res.Coverage.Skipped) != 1 || res.Coverage.Skipped[0].Line != 1 ||
		!strings.Contains(res.Coverage.Skipped[0].Reason, `without a closing \. line`) {
		t.Errorf("findings %v, skipped %+v: want none, and the open COPY at line 1 listed", ruleIDs(res.Findings), res.Coverage.Skipped)
	}
}
