package migrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// OpDropConstraint drops a constraint of one column: pgroll's older form of
// drop_multicolumn_constraint, with up and down as single expressions. column names the
// column they compute; without it, the constraint must cover exactly one column.
//
// As for drop_multicolumn_constraint, the constraint stays until complete (the old
// version is still held to it), and down maps the new version's writes so that they
// satisfy it meanwhile.
type OpDropConstraint struct {
	Table  string `json:"table"`
	Name   string `json:"name"`
	Column string `json:"column,omitempty"`
	Up     string `json:"up,omitempty"`
	Down   string `json:"down,omitempty"`
}

// Kind implements Operation.
func (o *OpDropConstraint) Kind() string { return "drop_constraint" }

func (o *OpDropConstraint) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	if err := required("name", o.Name); err != nil {
		return err
	}
	for field, e := range map[string]string{"up": o.Up, "down": o.Down} {
		if e != "" {
			if err := checkExpr(e); err != nil {
				return fieldErr(field, "%v", err)
			}
		}
	}
	return nil
}

// column returns the column (in the new version's names) that up and down compute.
func (o *OpDropConstraint) column(info *constraintInfo, t *Table) (string, error) {
	if o.Column != "" {
		return o.Column, nil
	}
	if info == nil || len(info.columns) != 1 {
		return "", fieldErr("column", "constraint %q does not cover exactly one column: name the column up and down compute, or use drop_multicolumn_constraint", o.Name)
	}
	c := t.ColumnByPhysical(info.columns[0])
	if c == nil {
		return "", fieldErr("name", "the column of constraint %q is dropped in this migration", o.Name)
	}
	return c.Name, nil
}

func (o *OpDropConstraint) validate(ctx context.Context, v *validator) error {
	if o.Up == "" && o.Down == "" {
		return validateDropConstraint(ctx, v, o.Table, o.Name, nil, nil)
	}
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	if !t.hasConstraint(o.Name) {
		return fieldErr("name", "constraint %q does not exist on table %q%s", o.Name, o.Table, suggest(o.Name, t.Constraints))
	}
	info, err := v.constraintColumns(ctx, t, o.Name)
	if err != nil {
		return fieldErr("name", "%v", err)
	}
	col, err := o.column(info, t)
	if err != nil {
		return err
	}
	up, down := o.maps(col, v.opBefore.Table(o.Table), t)
	return validateDropConstraint(ctx, v, o.Table, o.Name, up, down)
}

// maps turns up and down into pgroll's per-column form. The column is named col in the new
// version's shape t; up uses the name before this operation.
func (o *OpDropConstraint) maps(col string, before, t *Table) (up, down map[string]string) {
	if o.Down != "" {
		down = map[string]string{col: o.Down}
	}
	if o.Up != "" {
		name := col
		if c := t.Column(col); c != nil {
			if bc := before.ColumnByPhysical(c.Physical); bc != nil {
				name = bc.Name
			}
		}
		up = map[string]string{name: o.Up}
	}
	return up, down
}

func (o *OpDropConstraint) start(ctx context.Context, r *run) error {
	if o.Down == "" {
		return nil
	}
	t := r.opAfter.Table(o.Table)
	col := o.Column
	if col == "" {
		var physical string
		err := r.m.conn.QueryRow(ctx, `SELECT a.attname FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
			WHERE k.conrelid = $1::regclass AND k.conname = $2`, r.table(t.Physical), o.Name).Scan(&physical)
		if errors.Is(err, pgx.ErrNoRows) {
			// Made earlier in this migration: the constraint is attached at complete.
			if cols := r.opBefore.Table(o.Table).ConstraintColumns[o.Name]; len(cols) == 1 {
				physical, err = cols[0], nil
			}
		}
		if err != nil {
			return fmt.Errorf("find the column of constraint %s: %w", o.Name, err)
		}
		c := t.ColumnByPhysical(physical)
		if c == nil {
			return fmt.Errorf("find the column of constraint %s: column %s is not in the new version of %s", o.Name, physical, o.Table)
		}
		col = c.Name
	}
	return startDropConstraint(ctx, r, o.Table, map[string]string{col: o.Down})
}

func (o *OpDropConstraint) complete(ctx context.Context, r *run) error {
	return completeDropConstraint(ctx, r, o.Table, o.Name, o.Down != "")
}

func (o *OpDropConstraint) rollback(ctx context.Context, r *run) error {
	return dropTrigger(ctx, r, r.objectName("trg"), r.opAfter.Table(o.Table).Physical)
}
