package lint

import (
	"strings"
	"testing"
)

// cascadeSchema is an earlier file: tables, views, a foreign key, a type and a trigger.
const cascadeSchema = `CREATE TABLE r (id int PRIMARY KEY, kind text);
CREATE TYPE mood AS ENUM ('a', 'b');
CREATE TABLE t (id int PRIMARY KEY, r_id int REFERENCES r, v text, m mood);
CREATE VIEW t_view AS SELECT id, v FROM t;
CREATE VIEW t_view2 AS SELECT * FROM t_view;
CREATE VIEW r_view AS SELECT kind FROM r;
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t_trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg();` + fileSep

func TestRuleDropCascade(t *testing.T) {
	runRuleCases(t, "drop-cascade", []ruleCase{
		{name: "table with a view and a foreign key", sql: cascadeSchema + "DROP TABLE r CASCADE;", want: true},
		{name: "column read by a view", sql: cascadeSchema + "ALTER TABLE t DROP COLUMN v CASCADE;", want: true},
		{name: "referenced key column", sql: cascadeSchema + "ALTER TABLE r DROP COLUMN id CASCADE;", want: true},
		{name: "view read by a view", sql: cascadeSchema + "DROP VIEW t_view CASCADE;", want: true},
		{name: "function of a trigger", sql: cascadeSchema + "DROP FUNCTION trg() CASCADE;", want: true},
		{name: "type of a column", sql: cascadeSchema + "DROP TYPE mood CASCADE;", want: true},
		{name: "renamed table, its view follows", sql: cascadeSchema + "ALTER TABLE r RENAME TO r2;\nDROP TABLE r2 CASCADE;", want: true},
		{name: "dependents named in the same DROP", sql: cascadeSchema + "DROP VIEW t_view, t_view2 CASCADE;\nDROP VIEW r_view;\nDROP TABLE r, t CASCADE;"},
		{name: "no CASCADE", sql: cascadeSchema + "DROP VIEW t_view2;"},
		{name: "nothing depends on it", sql: cascadeSchema + "DROP VIEW t_view2 CASCADE;"},
		{name: "column no view reads", sql: cascadeSchema + "ALTER TABLE t DROP COLUMN m CASCADE;"},
		{name: "function no trigger calls", sql: cascadeSchema + "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\nDROP FUNCTION f() CASCADE;"},
		{name: "dependents created in the same file", sql: "CREATE TABLE a (id int PRIMARY KEY);\nCREATE VIEW a_v AS SELECT id FROM a;\nDROP TABLE a CASCADE;"},
		{name: "view dropped before", sql: cascadeSchema + "DROP VIEW r_view;\nALTER TABLE t DROP CONSTRAINT t_r_id_fkey;\nDROP TABLE r CASCADE;"},
		{name: "view re-created without the column", sql: cascadeSchema + "DROP VIEW t_view2;\nDROP VIEW t_view;\nCREATE VIEW t_view AS SELECT id FROM t;\nALTER TABLE t DROP COLUMN v CASCADE;"},
	})
}

func TestDropCascadeNamesDependents(t *testing.T) {
	tests := []struct {
		stmt string
		want []string // in the message, in order
		fix  []string // in the recipe
	}{
		{"DROP TABLE r CASCADE;", []string{"view r_view, foreign key t_r_id_fkey of t", "ACCESS EXCLUSIVE locks on r_view, t"},
			[]string{"DROP VIEW r_view;", "ALTER TABLE t DROP CONSTRAINT t_r_id_fkey;", "DROP TABLE r;"}},
		{"ALTER TABLE t DROP COLUMN v CASCADE;", []string{"view t_view, view t_view2"}, []string{"DROP VIEW t_view;", "DROP VIEW t_view2;"}},
		{"DROP FUNCTION trg() CASCADE;", []string{"trigger t_trg on t", "locks on t"}, []string{"DROP TRIGGER t_trg ON t;", "DROP FUNCTION trg();"}},
		{"DROP TYPE mood CASCADE;", []string{"column t.m"}, []string{"ALTER TABLE t DROP COLUMN m;", "DROP TYPE mood;"}},
	}
	for _, tt := range tests {
		t.Run(tt.stmt, func(t *testing.T) {
			res := lintCase(t, ruleCase{sql: cascadeSchema + "SET lock_timeout = '1s';\n" + tt.stmt})
			var f *Finding
			for i := range res.Findings {
				if res.Findings[i].Rule == "drop-cascade" {
					f = &res.Findings[i]
				}
			}
			if f == nil {
				t.Fatalf("no drop-cascade finding in %v", ruleIDs(res.Findings))
			}
			for _, w := range tt.want {
				if !strings.Contains(f.Message, w) {
					t.Errorf("message %q lacks %q", f.Message, w)
				}
			}
			for _, w := range tt.fix {
				if !strings.Contains(f.Fix, w) {
					t.Errorf("recipe %q lacks %q", f.Fix, w)
				}
			}
			if !f.BreaksOldVersion || f.Lock != "ACCESS EXCLUSIVE" {
				t.Errorf("breaks %v, lock %q", f.BreaksOldVersion, f.Lock)
			}
		})
	}
}

// TestDropCascadeForgetsDependents checks that the catalog forgets what a CASCADE dropped:
// a later CASCADE does not report it again.
func TestDropCascadeForgetsDependents(t *testing.T) {
	res := lintCase(t, ruleCase{sql: cascadeSchema + "DROP VIEW t_view CASCADE;\nCREATE VIEW t_view AS SELECT id FROM t;\nALTER TABLE t DROP COLUMN v CASCADE;\nDROP TABLE r CASCADE;\nDROP TABLE r2 CASCADE;"})
	var lines []int
	for _, f := range res.Findings {
		if f.Rule == "drop-cascade" {
			lines = append(lines, f.Line)
		}
	}
	if len(lines) != 2 || lines[0] != 1 || lines[1] != 4 {
		t.Errorf("drop-cascade on lines %v, want [1 4]", lines)
	}
}
