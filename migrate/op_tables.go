package migrate

import "context"

// OpDropTable drops a table. The new version does not see it; complete drops it.
type OpDropTable struct {
	Name string `json:"name"`
}

// Kind implements Operation.
func (o *OpDropTable) Kind() string { return "drop_table" }

func (o *OpDropTable) checkFields() error { return required("name", o.Name) }

func (o *OpDropTable) validate(ctx context.Context, v *validator) error {
	if _, err := v.table("name", o.Name); err != nil {
		return err
	}
	delete(v.after.Tables, o.Name)
	return nil
}

func (o *OpDropTable) start(ctx context.Context, r *run) error { return nil }

func (o *OpDropTable) complete(ctx context.Context, r *run) error {
	t := r.opBefore.Table(o.Name)
	return r.m.execLocked(ctx, []string{r.table(t.Physical)}, "DROP TABLE IF EXISTS "+r.table(t.Physical))
}

func (o *OpDropTable) rollback(ctx context.Context, r *run) error { return nil }

// OpRenameTable renames a table. The new version's view has the new name at once;
// complete renames the physical table.
type OpRenameTable struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Kind implements Operation.
func (o *OpRenameTable) Kind() string { return "rename_table" }

func (o *OpRenameTable) checkFields() error {
	if err := required("from", o.From); err != nil {
		return err
	}
	if err := required("to", o.To); err != nil {
		return err
	}
	if o.From == o.To {
		return fieldErr("to", "the new name is the old name")
	}
	return nil
}

func (o *OpRenameTable) validate(ctx context.Context, v *validator) error {
	t, err := v.table("from", o.From)
	if err != nil {
		return err
	}
	if v.after.Table(o.To) != nil {
		return fieldErr("to", "table %q already exists", o.To)
	}
	if v.before.physicalTableTaken(o.To) && t.Physical != o.To {
		return fieldErr("to", "a table named %q still exists physically until this migration completes; choose another name", o.To)
	}
	delete(v.after.Tables, o.From)
	t.Name = o.To
	v.after.Tables[o.To] = t
	return nil
}

func (o *OpRenameTable) start(ctx context.Context, r *run) error { return nil }

// complete does nothing of its own: the physical rename is made by complete's final
// pass (see renameToFinal).
func (o *OpRenameTable) complete(ctx context.Context, r *run) error { return nil }

func (o *OpRenameTable) rollback(ctx context.Context, r *run) error { return nil }
