package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// BackfillSetting is the session setting ("on") of a backfill batch's transaction. The
// batch computes the new values itself, set-based, and Tandem's triggers are not installed
// to fire for it; an application's own triggers (an updated_at trigger, say) can read the
// setting to let backfill writes pass.
const BackfillSetting = "tandem.backfill"

// isNewVersionSQL is the SQL condition, evaluated in a trigger, that is true when the
// session writing speaks version schema vs. See VersionSetting for the rule.
//
// It is evaluated for every row written, and its cost is paid again in every transaction
// (PL/pgSQL prepares an expression anew in each): current_schema() reads the search path
// the server keeps resolved, where parsing the text of search_path cost about as much
// again as the rest of the trigger.
func isNewVersionSQL(vs string) string {
	return fmt.Sprintf(`coalesce(nullif(current_setting(%s, true), ''), current_schema()::text) = %s`, ql(VersionSetting), ql(vs))
}

// dualWrite describes one dual-write trigger on a table: on every INSERT and UPDATE it
// applies up to the old version's writes and down to the new version's writes.
//
// A trigger that fires for a backfill's UPDATE costs it dearly (a WHEN clause that tells
// the batches apart is evaluated for every row), so while start runs, a trigger fires only
// on INSERTs and on UPDATEs of the columns the old version has: until the version schema
// exists, only the old version writes, and backfills set only new columns. Once every
// operation has started, the triggers are armed: re-created to fire on every UPDATE, for
// the new version's writes (see arming).
type dualWrite struct {
	name string // trigger and function name
	up   *rule  // for writes from the old version; nil for none
	down *rule  // for writes from the new version; nil for none
	// fillUnfilled: an UPDATE from the new version of a row whose up target is still
	// NULL on both sides (a row the backfill has not reached yet) gets up too.
	fillUnfilled bool
}

// rule sets physical columns from expressions written in one version's names. Every
// expression sees the row as it was written, whatever the others assign.
type rule struct {
	table *Table // the shape whose column names the expressions use
	sets  []assignment
}

// assignment sets one physical column.
type assignment struct {
	target string // physical column to set
	typ    string // the target's type: expr is cast to it, as validation checked; "" for none
	expr   string
}

// setRule is a rule that sets one column.
func setRule(table *Table, target, typ, expr string) *rule {
	return &rule{table: table, sets: []assignment{{target: target, typ: typ, expr: expr}}}
}

// block is PL/pgSQL that sets the rule's targets, with the expressions evaluated
// straight over the row being written (see rowExpr): no variable is assigned per row,
// except a copy of a column that an assignment of the rule overwrites before another one
// reads it (every expression sees the row as it was written).
func (ru *rule) block(table string) (string, error) {
	written := map[string]bool{}
	vars := map[string]string{}
	var decl []string
	for _, a := range ru.sets {
		_, reads, err := rowExpr(a.expr, ru.table, "new", nil)
		if err != nil {
			return "", err
		}
		for _, p := range reads {
			if written[p] && vars[p] == "" {
				vars[p] = fmt.Sprintf("_tandem_was_%d", len(vars))
				decl = append(decl, fmt.Sprintf("%s %s.%s%%TYPE := NEW.%s;", vars[p], table, qi(p), qi(p)))
			}
		}
		written[a.target] = true
	}
	var set []string
	for _, a := range ru.sets {
		e, _, err := rowExpr(a.expr, ru.table, "new", vars)
		if err != nil {
			return "", err
		}
		set = append(set, fmt.Sprintf("NEW.%s := %s;", qi(a.target), castTo(e, a.typ)))
	}
	if len(decl) == 0 {
		return strings.Join(set, " "), nil
	}
	return fmt.Sprintf("DECLARE %s BEGIN %s END;", strings.Join(decl, " "), strings.Join(set, " ")), nil
}

// install creates (or replaces) the trigger function and the trigger, in one transaction
// under the lock policy.
func (d dualWrite) install(ctx context.Context, r *run, physicalTable string) error {
	stmts, err := d.statements(r, physicalTable)
	if err != nil {
		return err
	}
	return r.m.execLocked(ctx, []string{r.table(physicalTable)}, stmts...)
}

// statements returns the CREATE OR REPLACE statements of the trigger function and the
// trigger, for callers that install them together with other DDL in one transaction.
func (d dualWrite) statements(r *run, physicalTable string) ([]string, error) {
	var exprs []string
	for _, ru := range []*rule{d.up, d.down} {
		if ru != nil {
			for _, a := range ru.sets {
				exprs = append(exprs, a.expr)
			}
		}
	}
	tag := "$" + shortName("tandem_", d.name, strings.Join(exprs, "\x00")) + "$"
	for _, e := range exprs {
		if strings.Contains(e, tag) {
			return nil, fmt.Errorf("expression contains the reserved marker %s", tag)
		}
	}
	table := r.table(physicalTable)
	var fromNew, fromOld []string
	if d.up != nil {
		up, err := d.up.block(table)
		if err != nil {
			return nil, err
		}
		fromOld = append(fromOld, up)
		if d.fillUnfilled {
			fromNew = append(fromNew, fmt.Sprintf("IF TG_OP = 'UPDATE' AND NEW.%[1]s IS NULL AND OLD.%[1]s IS NULL THEN %[2]s END IF;",
				qi(d.up.sets[0].target), up))
		}
	}
	if d.down != nil {
		down, err := d.down.block(table)
		if err != nil {
			return nil, err
		}
		fromNew = append(fromNew, down)
	}
	if len(fromNew) == 0 {
		fromNew = append(fromNew, "NULL;")
	}
	if len(fromOld) == 0 {
		fromOld = append(fromOld, "NULL;")
	}
	fn := qi(r.schema, d.name)
	body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %s
BEGIN
  IF %s THEN
    %s
  ELSE
    %s
  END IF;
  RETURN NEW;
END
%s`, fn, tag, isNewVersionSQL(r.newSchema), strings.Join(fromNew, "\n    "), strings.Join(fromOld, "\n    "), tag)
	createTrigger := func(cols []string) string {
		events := "INSERT OR UPDATE"
		if len(cols) > 0 {
			events += " OF " + quoteAll(cols)
		}
		return fmt.Sprintf("CREATE OR REPLACE TRIGGER %s BEFORE %s ON %s FOR EACH ROW EXECUTE FUNCTION %s()", qi(d.name), events, table, fn)
	}
	armed := createTrigger(nil)
	trigger := armed
	if r.arming != nil {
		trigger = "CREATE OR REPLACE TRIGGER " + qi(d.name) + " BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()"
		if cols := r.oldColumns(physicalTable); len(cols) > 0 {
			trigger = createTrigger(cols)
		}
		r.arming.add(table, armed)
	}
	return []string{body, trigger}, nil
}

// castTo is expr cast explicitly to typ (when given): validation checks that the cast
// exists, and the value is stored under the same rule, not under the stricter
// assignment casts.
func castTo(expr, typ string) string {
	if typ == "" {
		return "(" + expr + ")"
	}
	return "(" + expr + ")::" + typ
}

// mentions reports whether expr may refer to the column name: whether name occurs in it
// as a whole word, ignoring case. It may say yes wrongly (in a string literal, say), which
// costs a variable; it never says no wrongly for an unquoted or quoted reference.
func mentions(expr, name string) bool {
	e, n := strings.ToLower(expr), strings.ToLower(name)
	for i := 0; ; {
		j := strings.Index(e[i:], n)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(n)
		before := start == 0 || !isWordByte(e[start-1])
		after := end == len(e) || !isWordByte(e[end])
		if before && after {
			return true
		}
		i = start + 1
	}
}

func isWordByte(c byte) bool { return c == '_' || c == '$' || isAlnum(c) }

// dropTrigger removes a dual-write trigger and its function, if they exist.
func dropTrigger(ctx context.Context, r *run, name, physicalTable string) error {
	exists, err := tableExists(ctx, r, r.table(physicalTable))
	if err != nil {
		return err
	}
	if !exists {
		// The table is gone (dropped by an earlier, interrupted run): only the function
		// can be left.
		return r.m.execLocked(ctx, nil, "DROP FUNCTION IF EXISTS "+qi(r.schema, name)+"()")
	}
	return r.m.execLocked(ctx, []string{r.table(physicalTable)}, dropTriggerSQL(r, name, physicalTable)...)
}

// dropTriggerSQL returns the statements that drop a dual-write trigger and its function,
// for callers that must drop them in the same transaction as the column the trigger
// fills (otherwise writes in between would miss it).
func dropTriggerSQL(r *run, name, physicalTable string) []string {
	return []string{
		"DROP TRIGGER IF EXISTS " + qi(name) + " ON " + r.table(physicalTable),
		"DROP FUNCTION IF EXISTS " + qi(r.schema, name) + "()",
	}
}

// arming collects the armed form of the dual-write triggers start installs (see
// dualWrite), to install once every operation has started.
type arming struct {
	tables []string
	stmts  []string
}

func (a *arming) add(table, stmt string) {
	if !slices.Contains(a.tables, table) {
		a.tables = append(a.tables, table)
	}
	a.stmts = append(a.stmts, stmt)
}

// arm installs the armed triggers, in one transaction. CREATE TRIGGER's SHARE ROW
// EXCLUSIVE lock waits for the writers, not for readers.
func (a *arming) arm(ctx context.Context, m *Migrator) error {
	if len(a.stmts) == 0 {
		return nil
	}
	if err := m.execLockedConflicting(ctx, a.tables, shareRowExclusive, a.stmts...); err != nil {
		return fmt.Errorf("arm the dual-write triggers for the new version: %w", err)
	}
	return nil
}

// oldColumns returns the physical columns the old version has in the table, the
// columns its writes can set.
func (r *run) oldColumns(physicalTable string) []string {
	var cols []string
	for _, t := range r.before.Tables {
		if t.Physical == physicalTable {
			for _, c := range t.Columns {
				cols = append(cols, c.Physical)
			}
		}
	}
	return cols
}
