package migrate

import (
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func TestCheckTypeName(t *testing.T) {
	for _, tc := range []struct {
		typ string
		ok  bool
	}{
		{"integer", true},
		{"varchar(200)", true},
		{"timestamp with time zone", true},
		{"numeric(10, 2)[]", true},
		{`"my type"`, true},
		{"int, 2", false},
		{"int; DROP TABLE x", false},
		{"int -- c", false},
		{"int) FROM x", false},
		{"1 + 1", false},
	} {
		if err := checkTypeName(tc.typ); (err == nil) != tc.ok {
			t.Errorf("checkTypeName(%s) = %v, want ok %v", tc.typ, err, tc.ok)
		}
	}
}

func TestCheckStorageParametersAndSequenceOptions(t *testing.T) {
	for _, tc := range []struct {
		params string
		ok     bool
	}{
		{"fillfactor = 70", true},
		{"fillfactor=70, deduplicate_items = off", true},
		{"fillfactor = 70) WHERE (true", false},
		{"fillfactor = 70); DROP TABLE x; --", false},
	} {
		if err := checkStorageParameters(tc.params); (err == nil) != tc.ok {
			t.Errorf("checkStorageParameters(%s) = %v, want ok %v", tc.params, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		opts string
		ok   bool
	}{
		{"START 10 INCREMENT 5", true},
		{"START WITH 1 MINVALUE 1 MAXVALUE 100 CACHE 1 NO CYCLE", true},
		{"START 1; DROP TABLE x", false},
		{"START 1) , b int", false},
	} {
		if err := checkSequenceOptions(tc.opts); (err == nil) != tc.ok {
			t.Errorf("checkSequenceOptions(%s) = %v, want ok %v", tc.opts, err, tc.ok)
		}
	}
}

// FuzzCheckExpr: whatever the input, the expression guard accepts only text that
// PostgreSQL's parser reads as one expression in each place Tandem writes one: inside
// parentheses in a SELECT list (followed by more), and in a CHECK constraint.
func FuzzCheckExpr(f *testing.F) {
	for _, s := range []string{"qty * 1.25", "c$a$ + 1", "$a$ ) $a$", "E'\\''", "1); DROP TABLE t; --",
		"'a' || \"b\"", "(SELECT 1)", "x /* c */", "U&'\\0027'", "1), (2", "$1", "a$$b$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if checkExpr(expr) != nil {
			return
		}
		res, err := pgtree.Parse("SELECT (" + expr + ")::text, 2")
		if err != nil {
			t.Fatalf("accepted %q, but SELECT (expr)::text, 2 does not parse: %v", expr, err)
		}
		if len(res.Stmts) != 1 || res.Stmts[0].Stmt.GetSelectStmt() == nil || len(res.Stmts[0].Stmt.GetSelectStmt().TargetList) != 2 {
			t.Fatalf("accepted %q, but SELECT (expr)::text, 2 is not one SELECT of two expressions", expr)
		}
		res, err = pgtree.Parse("ALTER TABLE t ADD CONSTRAINT c CHECK (" + expr + "), ADD COLUMN z int")
		if err != nil {
			t.Fatalf("accepted %q, but it does not parse in a CHECK: %v", expr, err)
		}
		if len(res.Stmts) != 1 || len(res.Stmts[0].Stmt.GetAlterTableStmt().GetCmds()) != 2 {
			t.Fatalf("accepted %q, but a CHECK of it is not one constraint", expr)
		}
	})
}
