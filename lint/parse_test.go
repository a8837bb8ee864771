package lint

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// TestChunkedParseMatchesWholeParse: parsing a large file chunk by chunk yields the same
// statements, at the same offsets, as parsing it at once, also when a BEGIN ATOMIC body
// (semicolons inside a statement) straddles a chunk boundary.
func TestChunkedParseMatchesWholeParse(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 5*chunkSize; i++ {
		switch i % 40 {
		case 7:
			fmt.Fprintf(&b, "CREATE FUNCTION f%d() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT %d; END;\n", i, i)
		case 13:
			fmt.Fprintf(&b, "-- a comment; with a semicolon\nCREATE FUNCTION g%d() RETURNS text LANGUAGE sql AS $$ SELECT 'a;b' $$;\n", i)
		default:
			fmt.Fprintf(&b, "INSERT INTO t (id, v) VALUES (%d, 'x;%d');\n", i, i)
		}
	}
	sql := b.String()
	whole, err := pgtree.Parse(sql)
	if err != nil {
		t.Fatal(err)
	}
	got := parseAll(t, sql)
	if len(got) != len(whole.Stmts) {
		t.Fatalf("chunked parse gave %d statements, whole parse %d", len(got), len(whole.Stmts))
	}
	for i, raw := range whole.Stmts {
		start := skipSpaceAndComments(sql, int(raw.StmtLocation), len(sql))
		if got[i].start != start {
			t.Fatalf("statement %d starts at %d, want %d (%q)", i, got[i].start, start, got[i].text)
		}
	}
}

// TestChunkedParseErrorPosition: a syntax error far into a large file is reported at its
// line, and the statements before it are analysed.
func TestChunkedParseErrorPosition(t *testing.T) {
	var b strings.Builder
	n := 0
	for b.Len() < 3*chunkSize {
		fmt.Fprintf(&b, "INSERT INTO t VALUES (%d);\n", n)
		n++
	}
	b.WriteString("ALTER TABLE t ADD COLUMN;\nTRUNCATE t;\n")
	res, err := LintString("big.sql", b.String(), Options{})
	pe, ok := AsParseError(err)
	if !ok {
		t.Fatalf("err = %v, want a parse error", err)
	}
	if pe.Line != n+1 || pe.Column != 25 {
		t.Errorf("error at %d:%d, want %d:25", pe.Line, pe.Column, n+1)
	}
	if res.Coverage.Statements != n {
		t.Errorf("%d statements analysed before the error, want %d", res.Coverage.Statements, n)
	}
}

// TestParseNotUTF8: text that is not UTF-8 in a statement is the file's parse error, which
// names the file and says what to do, not a crash.
func TestParseNotUTF8(t *testing.T) {
	_, err := LintString("latin1.sql", "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t ADD COLUMN b text DEFAULT 'caf\xe9';\n", Options{})
	pe, ok := AsParseError(err)
	if !ok {
		t.Fatalf("err = %v, want a parse error", err)
	}
	if pe.File != "latin1.sql" || !strings.Contains(pe.Message, "not valid UTF-8") || !strings.Contains(pe.Message, "save the SQL as UTF-8") {
		t.Errorf("parse error %+v, want one in latin1.sql about UTF-8", pe)
	}
}

// TestViewsFoundBeforeTheParse: the views a file creates are known before its statements
// run, with the same key the parser gives.
func TestViewsFoundBeforeTheParse(t *testing.T) {
	for _, sql := range []string{
		"CREATE VIEW users AS SELECT 1",
		"create or replace view Users as select 1",
		"CREATE TEMP RECURSIVE VIEW public.users (n) AS VALUES (1) UNION ALL SELECT n FROM users",
		`CREATE VIEW "public"."users" AS SELECT 1`,
		`CREATE /* c */ VIEW -- x
		users AS SELECT 1`,
	} {
		pf, err := parseFile("v.sql", sql, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pf.views["public.users"]; !ok || len(pf.views) != 1 {
			t.Errorf("%s: views = %v, want public.users", sql, pf.views)
		}
	}
	pf, _ := parseFile("v.sql", `CREATE VIEW "Users" AS SELECT 1; CREATE MATERIALIZED VIEW m AS SELECT 1`, true, false)
	if _, ok := pf.views["public.Users"]; !ok || len(pf.views) != 1 {
		t.Errorf("views = %v, want only public.Users", pf.views)
	}
}

// TestPsqlScripts: what psql reads itself (meta-commands, the data after COPY ... FROM
// stdin) is not sent to the parser; the statements around it are, at their own lines.
func TestPsqlScripts(t *testing.T) {
	tests := []struct {
		name      string
		sql       string
		wantStmts []string // each statement's line and text
		wantMeta  []string // each meta-command's line and text
	}{
		{"a meta-command between statements",
			"SET lock_timeout = '1s';\n\\set ON_ERROR_STOP on\nALTER TABLE t ADD COLUMN c int;\n",
			[]string{"1 SET lock_timeout = '1s'", "3 ALTER TABLE t ADD COLUMN c int"}, []string{"2 \\set ON_ERROR_STOP on"}},
		{"COPY data with semicolons, quotes and backslashes",
			"COPY t (a, b) FROM stdin;\n1\ta;b\n2\tit's \\N\n3\t$$x\n\\.\nCREATE INDEX ti ON t (a);\n",
			[]string{"1 COPY t (a, b) FROM stdin", "6 CREATE INDEX ti ON t (a)"}, nil},
		{"COPY in lower case with options, data to the end of the file",
			"copy public.t from STDIN with (format csv);\n1,\"a;b\"\n",
			[]string{"1 copy public.t from STDIN with (format csv)"}, nil},
		{"COPY after a meta-command and a comment",
			"\\set x 1\n-- the data\nCOPY t FROM stdin;\n1;2\n\\.\nSELECT 1;\n",
			[]string{"3 COPY t FROM stdin", "6 SELECT 1"}, []string{"1 \\set x 1"}},
		{"a meta-command that sends the query ends the statement",
			"SELECT 'CREATE DATABASE x' WHERE NOT EXISTS (SELECT 1) \\gexec\nCREATE INDEX i ON t (a);\n",
			[]string{"1 SELECT 'CREATE DATABASE x' WHERE NOT EXISTS (SELECT 1)", "2 CREATE INDEX i ON t (a)"}, []string{"1 \\gexec"}},
		{"\\copy from stdin has data lines too",
			"\\copy t from stdin\n1\n2;3\n\\.\nCREATE INDEX i ON t (a);\n",
			[]string{"5 CREATE INDEX i ON t (a)"}, []string{"1 \\copy t from stdin"}},
		{"the rest of a COPY's line runs before its data",
			"COPY t FROM stdin; INSERT INTO x VALUES (1);\n1\n\\.\nCREATE INDEX i ON t (a);\n",
			[]string{"1 COPY t FROM stdin", "1 INSERT INTO x VALUES (1)", "4 CREATE INDEX i ON t (a)"}, nil},
		{"COPY from a file, stdin in a comment",
			"COPY t FROM '/tmp/x' -- not from stdin\n;\nCREATE INDEX i ON t (a);\n",
			[]string{"1 COPY t FROM '/tmp/x'", "3 CREATE INDEX i ON t (a)"}, nil},
		{"COPY from a query that reads a table named stdin",
			"COPY (SELECT * FROM stdin s) TO stdout;\nCREATE INDEX i ON t (a);\n",
			[]string{"1 COPY (SELECT * FROM stdin s) TO stdout", "2 CREATE INDEX i ON t (a)"}, nil},
		{"FROM and stdin apart by a comment, CRLF lines",
			"COPY t(a)FROM/*c*/stdin;\r\n1\r\n\\.\r\nSELECT 1;\r\n",
			[]string{"1 COPY t(a)FROM     stdin", "4 SELECT 1"}, nil},
		{"COPY data without its closing line runs to the end",
			"COPY t FROM stdin;\n1\nCREATE INDEX i ON t (a);\n",
			[]string{"1 COPY t FROM stdin"}, nil},
		{"COPY to stdout has no data lines",
			"COPY t TO stdout;\nSELECT 1;\n",
			[]string{"1 COPY t TO stdout", "2 SELECT 1"}, nil},
		{"a backslash in a literal is not a meta-command",
			"SELECT E'\\\\n', '\\x', $$\\q$$;\n-- \\set in a comment\nSELECT 2;\n",
			[]string{"1 SELECT E'\\\\n', '\\x', $$\\q$$", "3 SELECT 2"}, nil},
		{"pg_dump's header", "\\restrict abc\nSET statement_timeout = 0;\n\\connect app\nCREATE TABLE t (a int);\n\\unrestrict abc\n",
			[]string{"2 SET statement_timeout = 0", "4 CREATE TABLE t (a int)"},
			[]string{"1 \\restrict abc", "3 \\connect app", "5 \\unrestrict abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf, err := parseFile("p.sql", tt.sql, true, false)
			if err != nil {
				t.Fatal(err)
			}
			var stmts, meta []string
			if err := pf.statements(func(st *statement) { stmts = append(stmts, fmt.Sprintf("%d %s", st.line, st.text)) }); err != nil {
				t.Fatal(err)
			}
			for _, mc := range pf.metaCommands {
				meta = append(meta, fmt.Sprintf("%d %s", mc.line, mc.text))
			}
			if !slices.Equal(stmts, tt.wantStmts) || !slices.Equal(meta, tt.wantMeta) {
				t.Errorf("statements %q, meta-commands %q;\nwant %q, %q", stmts, meta, tt.wantStmts, tt.wantMeta)
			}
		})
	}
}
