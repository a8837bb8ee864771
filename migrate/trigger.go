package migrate

import (
	"context"
	"fmt"
	"strings"
)

// BackfillSetting is the session setting a backfill batch sets so that Tandem's triggers
// stand aside: the batch computes the new values itself, set-based.
const BackfillSetting = "tandem.backfill"

// isNewVersionSQL is the SQL condition, evaluated in a trigger, that is true when the
// session writing speaks version schema vs. See VersionSetting for the rule.
func isNewVersionSQL(vs string) string {
	return fmt.Sprintf(`coalesce(nullif(current_setting(%s, true), ''), btrim(split_part(current_setting('search_path'), ',', 1), ' "')) = %s`,
		ql(VersionSetting), ql(vs))
}

// dualWrite describes one dual-write trigger: on every INSERT and UPDATE of the table,
// writes from the old version set column `target` from expression `expr` written in the
// old version's column names; or, with fromNew, writes from the new version set `target`
// from `expr` written in the new version's column names.
type dualWrite struct {
	name    string // trigger and function name
	table   *Table // the version's view of the table whose names expr uses
	target  string // physical column to set
	expr    string
	fromNew bool
	// alsoUnfilled: compute target for updates from the new version too when neither the
	// row nor the update sets it: a row the backfill has not reached yet.
	alsoUnfilled bool
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
	tag := "$" + shortName("tandem_", d.name, d.expr) + "$"
	if strings.Contains(d.expr, tag) {
		return nil, fmt.Errorf("expression contains the reserved marker %s", tag)
	}
	table := r.table(physicalTable)
	// Only the columns the expression may mention become variables: each one costs an
	// assignment on every row written.
	var decl []string
	for _, c := range d.table.Columns {
		if mentions(d.expr, c.Name) {
			decl = append(decl, fmt.Sprintf("  %s %s.%s%%TYPE := NEW.%s;", qi(c.Name), table, qi(c.Physical), qi(c.Physical)))
		}
	}
	cond := isNewVersionSQL(r.newSchema)
	if !d.fromNew {
		cond = "NOT (" + cond + ")"
		if d.alsoUnfilled {
			cond += fmt.Sprintf(" OR (TG_OP = 'UPDATE' AND NEW.%[1]s IS NULL AND OLD.%[1]s IS NULL)", qi(d.target))
		}
	}
	fn := qi(r.schema, d.name)
	body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %s
DECLARE
%s
BEGIN
  IF %s THEN
    NEW.%s := (%s);
  END IF;
  RETURN NEW;
END
%s`, fn, tag, strings.Join(decl, "\n"), cond, qi(d.target), d.expr, tag)
	trigger := fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW
WHEN (coalesce(current_setting(%s, true), '') <> 'on') EXECUTE FUNCTION %s()`,
		qi(d.name), table, ql(BackfillSetting), fn)
	return []string{body, trigger}, nil
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
	table := r.table(physicalTable)
	var exists bool
	if err := r.m.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return err
	}
	stmts := []string{}
	if exists {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+qi(name)+" ON "+table)
	}
	stmts = append(stmts, "DROP FUNCTION IF EXISTS "+qi(r.schema, name)+"()")
	tables := []string{}
	if exists {
		tables = append(tables, table)
	}
	return r.m.execLocked(ctx, tables, stmts...)
}
