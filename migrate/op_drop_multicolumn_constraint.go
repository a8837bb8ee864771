package migrate

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// OpDropMultiColumnConstraint drops a constraint over one or several columns (pgroll's
// drop_multicolumn_constraint).
//
// The new version is no longer meant to be held to the constraint, but the old version
// still is until complete, and both write the same columns: the constraint stays in the
// table until complete drops it. down (per column, in the new version's names) maps the
// new version's writes so that they still satisfy it meanwhile; without down, a write of
// the new version that breaks the constraint fails until complete. up has nothing to do:
// the old version's writes satisfy the constraint already. Nothing is copied.
type OpDropMultiColumnConstraint struct {
	Table string            `json:"table"`
	Name  string            `json:"name"`
	Up    map[string]string `json:"up,omitempty"`
	Down  map[string]string `json:"down,omitempty"`
}

// Kind implements Operation.
func (o *OpDropMultiColumnConstraint) Kind() string { return "drop_multicolumn_constraint" }

func (o *OpDropMultiColumnConstraint) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	if err := required("name", o.Name); err != nil {
		return err
	}
	for field, m := range map[string]map[string]string{"up": o.Up, "down": o.Down} {
		for c, e := range m {
			if err := checkExpr(e); err != nil {
				return fieldErr(field+"."+c, "%v", err)
			}
		}
	}
	return nil
}

func (o *OpDropMultiColumnConstraint) validate(ctx context.Context, v *validator) error {
	return validateDropConstraint(ctx, v, o.Table, o.Name, o.Up, o.Down)
}

// validateDropConstraint is the validation drop_constraint and drop_multicolumn_constraint
// share: the table and the constraint exist, the up and down keys are the constraint's
// columns and their expressions are valid.
func validateDropConstraint(ctx context.Context, v *validator, table, name string, up, down map[string]string) error {
	t, err := v.table("table", table)
	if err != nil {
		return err
	}
	if !t.hasConstraint(name) {
		return fieldErr("name", "constraint %q does not exist on table %q%s", name, table, suggest(name, t.Constraints))
	}
	if len(down) > 0 {
		if err := v.noInheritance(ctx, "table", t); err != nil {
			return err
		}
	}
	info, err := v.constraintColumns(ctx, t, name)
	if err != nil {
		return fieldErr("name", "%v", err)
	}
	if info == nil && (len(up) > 0 || len(down) > 0) {
		return fieldErr("name", "constraint %q is created or renamed earlier in this migration, so its columns are not known yet; drop it without up and down, or in a later migration", name)
	}
	if info != nil {
		var referenced bool
		if err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_constraint f ON f.contype = 'f' AND f.conindid = k.conindid
				WHERE k.conrelid = to_regclass($1) AND k.conname = $2 AND k.conindid <> 0 AND k.contype IN ('p', 'u'))`,
				qi(v.schema, t.Physical), name).Scan(&referenced)
		}); err != nil {
			return fieldErr("name", "%s", pgMessage(err))
		}
		if referenced {
			return fieldErr("name", "foreign keys reference the key of constraint %q; drop them first", name)
		}
		oldShape := v.opBefore.Table(table)
		upCols, downCols := map[string]bool{}, map[string]bool{}
		for _, p := range info.columns {
			if c := oldShape.ColumnByPhysical(p); c != nil {
				upCols[c.Name] = true
			}
			if c := t.ColumnByPhysical(p); c != nil {
				downCols[c.Name] = true
			}
		}
		if err := v.checkColumnExprs(ctx, "up", up, oldShape, upCols); err != nil {
			return err
		}
		if err := v.checkColumnExprs(ctx, "down", down, t, downCols); err != nil {
			return err
		}
	}
	t.removeConstraint(name)
	return nil
}

func (o *OpDropMultiColumnConstraint) start(ctx context.Context, r *run) error {
	return startDropConstraint(ctx, r, o.Table, o.Down)
}

func (o *OpDropMultiColumnConstraint) complete(ctx context.Context, r *run) error {
	return completeDropConstraint(ctx, r, o.Table, o.Name, len(o.Down) > 0)
}

func (o *OpDropMultiColumnConstraint) rollback(ctx context.Context, r *run) error {
	return dropTrigger(ctx, r, r.objectName("trg"), r.opAfter.Table(o.Table).Physical)
}

// startDropConstraint installs the trigger that maps the new version's writes through
// down, if there is a down.
func startDropConstraint(ctx context.Context, r *run, table string, down map[string]string) error {
	if len(down) == 0 {
		return nil
	}
	t := r.opAfter.Table(table)
	dw := dualWrite{name: r.objectName("trg"), down: mapRule(t, physicalExprs(down, t))}
	stmts, err := dw.statements(r, t.Physical)
	if err != nil {
		return err
	}
	return r.m.execLocked(ctx, []string{r.table(t.Physical)}, stmts...)
}

// completeDropConstraint drops the trigger (if any) and the constraint.
func completeDropConstraint(ctx context.Context, r *run, table, name string, trigger bool) error {
	t := r.opAfter.Table(table)
	if trigger {
		if err := dropTrigger(ctx, r, r.objectName("trg"), t.Physical); err != nil {
			return err
		}
	}
	qt := r.table(t.Physical)
	return r.m.execLocked(ctx, []string{qt}, "ALTER TABLE "+qt+" DROP CONSTRAINT IF EXISTS "+qi(name))
}
