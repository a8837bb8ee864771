package migrate

import "context"

// OpDropColumn drops a column. The new version does not see it at once; complete drops
// it physically. While both versions run, down computes the column for the rows the new
// version writes, so the old version keeps reading sensible values (and NOT NULL holds).
type OpDropColumn struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	Down   string `json:"down,omitempty"`
}

// Kind implements Operation.
func (o *OpDropColumn) Kind() string { return "drop_column" }

func (o *OpDropColumn) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	return required("column", o.Column)
}

func (o *OpDropColumn) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	if err := v.noInheritance(ctx, "table", t); err != nil {
		return err
	}
	c, err := v.column("column", t, o.Column)
	if err != nil {
		return err
	}
	for _, pk := range t.PrimaryKey {
		if pk == c.Physical {
			return fieldErr("column", "column %q is part of the primary key of %q and cannot be dropped", o.Column, o.Table)
		}
	}
	if !c.Nullable && c.Default == nil && o.Down == "" && !c.Generated {
		return fieldErr("down", "column %q is NOT NULL without a default: the new version's inserts would fail; give a down expression that computes it", o.Column)
	}
	var kept []*Column
	for _, x := range t.Columns {
		if x != c {
			kept = append(kept, x)
		}
	}
	t.Columns = kept
	if o.Down != "" {
		if err := v.checkExpr(ctx, "down", o.Down, t, c.Type); err != nil {
			return err
		}
	}
	return nil
}

func (o *OpDropColumn) triggerName(r *run) string { return r.objectName("trg") }

func (o *OpDropColumn) start(ctx context.Context, r *run) error {
	if o.Down == "" {
		return nil
	}
	t := r.opAfter.Table(o.Table)
	c := r.opBefore.Table(o.Table).Column(o.Column)
	dw := dualWrite{name: o.triggerName(r), down: setRule(t, c.Physical, c.Type, o.Down)}
	return dw.install(ctx, r, t.Physical)
}

func (o *OpDropColumn) complete(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	c := r.opBefore.Table(o.Table).Column(o.Column)
	table := r.table(t.Physical)
	// The trigger goes with the column: without it, the new version's writes would
	// leave the column NULL.
	stmts := append(dropTriggerSQL(r, o.triggerName(r), t.Physical), "ALTER TABLE "+table+" DROP COLUMN IF EXISTS "+qi(c.Physical))
	return r.m.execLocked(ctx, []string{table}, stmts...)
}

func (o *OpDropColumn) rollback(ctx context.Context, r *run) error {
	return dropTrigger(ctx, r, o.triggerName(r), r.opAfter.Table(o.Table).Physical)
}
