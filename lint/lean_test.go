package lint

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestLeanTail checks where the lean parse cuts statements (and that it leaves alone the
// ones whose head it cannot be sure of), and that linting each statement, after a table
// and a view it can refer to, gives the same result with the lean parse as with whole
// trees.
func TestLeanTail(t *testing.T) {
	tests := []struct {
		sql  string
		head string // the text kept before the minimal tail; "" when not cut
	}{
		{"UPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT 10)", "UPDATE t"},
		{"update ONLY public.t set a = 1", "update ONLY public.t"},
		{"UPDATE t * SET a = 1", "UPDATE t"},
		{`UPDATE "My ""T"".x"."y" AS z SET a = 1`, `UPDATE "My ""T"".x"."y"`},
		{"UPDATE t/* c */SET a = 1", "UPDATE t"},
		{"UPDATE t-- c\nSET a = 1", "UPDATE t"},
		{"UPDATE public . t SET a = 1", ""},
		{"UPDATE public/**/.t SET a = 1", ""},
		{"UPDATE U&\"t\" SET a = 1", ""},
		{"UPDATE t SET a=1", "UPDATE t"}, // just fits
		{"WITH x AS (SELECT 1) UPDATE t SET a = 1", ""},
		{"INSERT INTO t (a, b) VALUES (1, 2), (3, 4)", "INSERT INTO t"},
		{"INSERT INTO t(a)SELECT 1", "INSERT INTO t"},
		{"INSERT INTO s.t AS x DEFAULT VALUES", "INSERT INTO s.t"},
		{"INSERT INTO t VALUES(1)", "INSERT INTO t"},
		{"INSERT INTO t TABLE u", "INSERT INTO t"},
		{"DELETE FROM t WHERE a = 1", "DELETE FROM t"},
		{"DELETE FROM ONLY t", "DELETE FROM ONLY t"},
		{"CREATE VIEW v AS SELECT a, b FROM t WHERE a > 1", "CREATE VIEW v AS"},
		{"CREATE OR REPLACE TEMP VIEW v (x, y) WITH (security_barrier = true) AS SELECT a, b FROM t", "CREATE OR REPLACE TEMP VIEW v (x, y) WITH (security_barrier = true) AS"},
		{"create temporary view \"V\"(\"a)\") as(select 1 as a)", "create temporary view \"V\"(\"a)\") as"},
		{"CREATE VIEW v WITH (check_option = E'loc\\'al') AS SELECT 1 AS a", "CREATE VIEW v WITH (check_option = E'loc\\'al') AS"},
		{"CREATE VIEW v AS TABLE t", "CREATE VIEW v AS"},
		{"CREATE VIEW v AS VALUES (1)", "CREATE VIEW v AS"},
		{"CREATE RECURSIVE VIEW v (n) AS SELECT 1", ""},
		{"CREATE MATERIALIZED VIEW v AS SELECT 1", ""},
		{"CREATE VIEW v AS (SELECT 1)", "CREATE VIEW v AS"},
		{"CREATE VIEW v (a AS SELECT 1", ""},
		{"CREATE TABLE t (a int)", ""},
		{"SELECT 1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			cut, tail, ok := leanTail(tt.sql)
			head := ""
			if ok {
				head = tt.sql[:cut]
				if len(tt.sql)-cut < len(tail) {
					t.Fatalf("tail %q does not fit in %q", tail, tt.sql[cut:])
				}
			}
			if head != tt.head {
				t.Errorf("head %q, want %q", head, tt.head)
			}
			srcs := []Source{{Name: "1.sql", SQL: "CREATE TABLE t (id int PRIMARY KEY, a int, b int);\nCREATE VIEW v AS SELECT 1 AS a;\n"}, {Name: "2.sql", SQL: tt.sql + ";\n"}}
			res, err := Lint(srcs, Options{})
			if _, ok := AsParseError(err); err != nil && !ok {
				t.Fatal(err)
			}
			checkLeanParse(t, srcs, Options{}, res, err)
		})
	}
}

// TestLeanParse checks that the lean parse finds the same statements, findings and
// syntax errors as whole trees do, in files that mix cut and uncut statements, in chunks.
func TestLeanParse(t *testing.T) {
	big := strings.Repeat("UPDATE t SET a = a + 1 WHERE id IN (SELECT id FROM t WHERE b IS NULL LIMIT 100);\n", 1000) // over a chunk
	files := map[string]string{
		"mixed": "CREATE TABLE t (id int PRIMARY KEY, a int, b int);\nCREATE OR REPLACE VIEW v AS SELECT a FROM t;\n" +
			"UPDATE t SET a = 1;\nALTER TABLE t ADD COLUMN c int;\nINSERT INTO t VALUES (1, 2, 3);\nCREATE OR REPLACE VIEW v AS SELECT a, b FROM t;\nDELETE FROM t WHERE a = 2;\n",
		"chunks":                big + "ALTER TABLE t ALTER COLUMN a TYPE bigint;\n" + big,
		"error in a view":       "CREATE VIEW v AS SELECT a FROM t;\nCREATE VIEW w AS SELECT a FROM FROM t;\nALTER TABLE t ADD COLUMN c int;\n",
		"error after an update": "UPDATE t SET a = 1 WHERE b = 2;\nALTER TABLE t ADD COLUMN;\n",
		"error in a big file":   big + "UPDATE t SET a = = 1;\n" + big,
		"unterminated string":   "UPDATE t SET a = 'x WHERE b = 2;\nUPDATE t SET a = 1 WHERE b = 3;\n",
		"begin atomic": "CREATE TABLE t (id int PRIMARY KEY, a int);\nCREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE t SET a = 1 WHERE id = 1; UPDATE t SET a = 2 WHERE id = 2; END;\n" +
			"UPDATE t SET a = 3 WHERE id = 3;\n",
		"trailing comment": "CREATE TABLE t (id int PRIMARY KEY, a int);\nUPDATE t SET a = 3 WHERE id = 3 -- done",
	}
	// Whether the whole file's statements that can be cut parse as written; a syntax error
	// elsewhere shows only when the lean text is parsed, which then falls back.
	leaned := map[string]bool{"mixed": true, "chunks": true, "trailing comment": true, "error after an update": true}
	for name, sql := range files {
		t.Run(name, func(t *testing.T) {
			pf, err := parseFile(name+".sql", sql, true, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := pf.leanChunk(0, len(pf.text), 0, len(pf.ends)-1); ok != leaned[name] {
				t.Errorf("lean parse of the whole file: %v, want %v", ok, leaned[name])
			}
			srcs := []Source{{Name: "setup.sql", SQL: "CREATE TABLE t (id int PRIMARY KEY, a int, b int);"}, {Name: name + ".sql", SQL: sql}}
			res, err := Lint(srcs, Options{})
			if _, ok := AsParseError(err); err != nil && !ok {
				t.Fatal(err)
			}
			checkLeanParse(t, srcs, Options{}, res, err)
		})
	}
}

// TestSnippetAndFingerprint checks the excerpt and the fingerprint against their
// definitions: the words joined by single spaces, cut at 100 bytes on a character
// boundary; a hash of rule, table and those words.
func TestSnippetAndFingerprint(t *testing.T) {
	long := strings.Repeat("ab ", 33) + "é" + strings.Repeat(" x", 50)
	for _, s := range []string{"", "  ", "SELECT 1", " a\n\tb  c ", long, long[:97] + "\u00a0é\u00a0é", strings.Repeat("ä", 80), "x" + strings.Repeat(" ", 200) + "y"} {
		joined := strings.Join(strings.Fields(s), " ")
		want := joined
		if len(want) > 100 {
			cut := 100
			for cut > 0 && want[cut]&0xC0 == 0x80 {
				cut--
			}
			want = want[:cut] + "…"
		}
		if got := snippet(s); got != want {
			t.Errorf("snippet(%q) = %q, want %q", s, got, want)
		}
		sum := sha256.Sum256([]byte("rule\x00tbl\x00" + joined))
		if got := collapseSpace(s); got != joined {
			t.Errorf("collapseSpace(%q) = %q, want %q", s, got, joined)
		}
		if got, want := fingerprint("rule", "tbl", collapseSpace(s)), hex.EncodeToString(sum[:8]); got != want {
			t.Errorf("fingerprint of %q = %s, want %s", s, got, want)
		}
	}
}
