package migrate

import (
	"testing"
)

func TestParenthesizeSelect(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT CASE WHEN x IS NULL THEN 0 ELSE x END", "(SELECT CASE WHEN x IS NULL THEN 0 ELSE x END)"},
		{"  select\n lower(name) ", "(select\n lower(name))"},
		{"SELECT(1)", "(SELECT(1))"},
		{"selected_at", "selected_at"},
		{"qty * 2", "qty * 2"},
		{"(SELECT 1)", "(SELECT 1)"},
		{"select", "select"},
		// Still checked by the guard afterwards: this one is refused there.
		{"SELECT 1); DROP TABLE t; SELECT (1", "(SELECT 1); DROP TABLE t; SELECT (1)"},
	} {
		if got := parenthesizeSelect(tc.in); got != tc.want {
			t.Errorf("parenthesizeSelect(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if err := checkExpr(parenthesizeSelect("SELECT 1); DROP TABLE t; SELECT (1")); err == nil {
		t.Error("the guard accepted an injection written as a SELECT")
	}
	// An sql operation's up and down are statements, left as written.
	mig, err := Parse("m.json", "m", []byte(`{"operations": [{"sql": {"up": "SELECT 1; SELECT 2", "down": "SELECT 3"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if op := mig.Operations[0].(*OpRawSQL); op.Up != "SELECT 1; SELECT 2" || op.Down != "SELECT 3" {
		t.Errorf("sql operation rewritten: up %q, down %q", op.Up, op.Down)
	}
}

// TestSelectExpressions runs up and down expressions written as pgroll's documentation
// writes them, "SELECT CASE ...", through start, both versions and complete.
func TestSelectExpressions(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE reviews (id int PRIMARY KEY, product text NOT NULL, review text)")
	e.exec("INSERT INTO reviews VALUES (1, 'apple', NULL), (2, 'pear', 'fine')")
	e.start(`{"name": "m1", "operations": [{"alter_column": {"table": "reviews", "column": "review", "nullable": false,
		"up": "SELECT CASE WHEN review IS NULL THEN product || ' is good' ELSE review END", "down": "review"}}]}`)
	v := e.version("m1")
	expectString(t, v, "SELECT string_agg(review, ',' ORDER BY id) FROM reviews", "apple is good,fine")
	mustExec(t, e.version(""), "INSERT INTO reviews VALUES (3, 'plum', NULL)")
	expectString(t, v, "SELECT review FROM reviews WHERE id = 3", "plum is good")
	e.complete()
	e.start(`{"name": "m2", "operations": [{"create_constraint": {"table": "reviews", "name": "review_len", "type": "check",
		"columns": ["review"], "check": "length(review) > 3",
		"up": {"review": "SELECT CASE WHEN length(review) <= 3 THEN review || '...' ELSE review END"},
		"down": {"review": "review"}}}]}`)
	mustExec(t, e.version("m1"), "INSERT INTO reviews VALUES (4, 'fig', 'ok')")
	expectString(t, e.version("m2"), "SELECT review FROM reviews WHERE id = 4", "ok...")
	e.complete()
}
