package migrate

import (
	"context"
	"strings"
	"testing"
)

// untouched is a digest of what a plan must leave alone: the base schema (catalog), and
// every schema, relation, trigger and function of the database.
func (e *testEnv) untouched() string {
	e.t.Helper()
	return e.catalog() + "\n" + strings.Join(queryStrings(e.t, e.db, `
		SELECT 'schema ' || nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
		UNION ALL SELECT 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
		UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname::text FROM pg_trigger WHERE NOT tgisinternal
		UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
		ORDER BY 1`), "\n")
}

// stepWith returns the first step of plan whose statements contain s, or nil.
func stepWith(plan *Plan, s string) *PlanStep {
	for i, st := range plan.Steps {
		for _, stmt := range st.Statements {
			if strings.Contains(stmt, s) {
				return &plan.Steps[i]
			}
		}
	}
	return nil
}

func lockMode(s *PlanStep, table string) string {
	for _, l := range s.Locks {
		if l.Table == table {
			return l.Mode
		}
	}
	return ""
}

// TestPlanStartAppliesNothing: a dry run of start lists each operation's statements with
// the locks they take and the rows the backfill fills, and leaves the database as it was,
// without even Tandem's state schema.
func TestPlanStartAppliesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(lockTestTable + "; ANALYZE items")
	before := e.untouched()
	plan, err := e.m.PlanStart(ctx, e.parse(`{"name": "02_plan", "operations": [
		{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}},
		{"create_table": {"name": "tags", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "label", "type": "text"}]}},
		{"add_column": {"table": "tags", "column": {"name": "note", "type": "text", "nullable": true}}},
		{"create_index": {"table": "items", "name": "items_name", "columns": ["name"]}}]}`))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if after := e.untouched(); after != before {
		t.Fatalf("the plan changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if plan.Action != "start" || plan.Migration != "02_plan" {
		t.Errorf("plan of %s %s", plan.Action, plan.Migration)
	}
	add := stepWith(plan, `ADD COLUMN "_tandem_new_qty" bigint`)
	if add == nil || add.Operation != 0 || add.Kind != "alter_column" || lockMode(add, `"public"."items"`) != "ACCESS EXCLUSIVE" {
		t.Errorf("the shadow column's step: %+v", add)
	}
	var bf *PlanBackfill
	for _, s := range plan.Steps {
		if s.Backfill != nil {
			bf = s.Backfill
		}
	}
	if bf == nil || bf.Table != "items" || bf.Column != "_tandem_new_qty" || bf.Rows != 100 {
		t.Errorf("backfill: %+v, want 100 rows of items._tandem_new_qty", bf)
	}
	if s := stepWith(plan, "CREATE TABLE IF NOT EXISTS"); s == nil || s.Operation != 1 {
		t.Errorf("create_table's step: %+v", s)
	}
	if s := stepWith(plan, "CREATE INDEX CONCURRENTLY"); s == nil || s.Type != "concurrently" || lockMode(s, `"public"."items"`) != "SHARE UPDATE EXCLUSIVE" {
		t.Errorf("create_index's step: %+v", s)
	}
	if s := stepWith(plan, "CREATE VIEW"); s == nil || s.Operation != -1 || lockMode(s, `"public"."items"`) != "ACCESS SHARE" {
		t.Errorf("the version schema's step: %+v", s)
	}
	var armed *PlanStep
	for i, s := range plan.Steps {
		if s.Kind == "triggers armed" {
			armed = &plan.Steps[i]
		}
	}
	if armed == nil || lockMode(armed, `"public"."items"`) != "SHARE ROW EXCLUSIVE" {
		t.Errorf("the step that arms the triggers: %+v", armed)
	}
	// And it starts for real afterwards, as planned.
	e.start(`{"name": "02_plan", "operations": [
		{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}},
		{"create_table": {"name": "tags", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "label", "type": "text"}]}},
		{"add_column": {"table": "tags", "column": {"name": "note", "type": "text", "nullable": true}}},
		{"create_index": {"table": "items", "name": "items_name", "columns": ["name"]}}]}`)
}

// TestPlanCompleteAppliesNothing: a dry run of complete lists the contraction, the
// ACCESS EXCLUSIVE work of the type change in one transaction, and changes nothing.
func TestPlanCompleteAppliesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(lockTestTable)
	if _, err := e.m.PlanComplete(ctx); err == nil {
		t.Errorf("a plan of complete with no migration in progress")
	}
	e.start(`{"name": "02_qty", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}}]}`)
	before := e.untouched()
	status := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_qty'")
	plan, err := e.m.PlanComplete(ctx)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if after := e.untouched(); after != before {
		t.Fatalf("the plan changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if now := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_qty'"); now != status {
		t.Errorf("status %s after the plan, was %s", now, status)
	}
	if s := stepWith(plan, "VALIDATE CONSTRAINT"); s == nil || lockMode(s, `"public"."items"`) != "SHARE UPDATE EXCLUSIVE" {
		t.Errorf("validation step: %+v", s)
	}
	swap := stepWith(plan, `DROP COLUMN "qty"`)
	if swap == nil || lockMode(swap, `"public"."items"`) != "ACCESS EXCLUSIVE" {
		t.Fatalf("swap step: %+v", swap)
	}
	for _, want := range []string{"DROP TRIGGER", "SET NOT NULL"} {
		if !strings.Contains(strings.Join(swap.Statements, "\n"), want) {
			t.Errorf("the swap's transaction lacks %s: %v", want, swap.Statements)
		}
	}
	if s := stepWith(plan, `RENAME COLUMN "_tandem_new_qty" TO "qty"`); s == nil || s.Kind != "renames" {
		t.Errorf("rename step: %+v", s)
	}
	e.complete()
}
