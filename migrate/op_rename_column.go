package migrate

import "context"

// OpRenameColumn renames a column. The new version's view shows the new name at once;
// complete renames the physical column.
type OpRenameColumn struct {
	Table string `json:"table"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Kind implements Operation.
func (o *OpRenameColumn) Kind() string { return "rename_column" }

func (o *OpRenameColumn) checkFields() error {
	for f, v := range map[string]string{"table": o.Table, "from": o.From, "to": o.To} {
		if err := required(f, v); err != nil {
			return err
		}
	}
	if o.From == o.To {
		return fieldErr("to", "the new name is the old name")
	}
	return nil
}

func (o *OpRenameColumn) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	c, err := v.column("from", t, o.From)
	if err != nil {
		return err
	}
	if t.Column(o.To) != nil {
		return fieldErr("to", "column %q already exists in table %q", o.To, o.Table)
	}
	if x := t.ColumnByPhysical(o.To); x != nil && x != c {
		return fieldErr("to", "a column is stored physically as %q in table %q; choose another name", o.To, o.Table)
	}
	if old := v.existing(t); old != nil && old.ColumnByPhysical(o.To) != nil && c.Physical != o.To {
		return fieldErr("to", "a column named %q still exists physically in table %q until this migration completes; choose another name", o.To, o.Table)
	}
	c.Name = o.To
	return nil
}

func (o *OpRenameColumn) start(ctx context.Context, r *run) error { return nil }

// complete does nothing of its own: the physical rename is made by complete's final
// pass (see renameToFinal), which renames every column to its final name once the
// other operations are done with the physical names they started with.
func (o *OpRenameColumn) complete(ctx context.Context, r *run) error { return nil }

func (o *OpRenameColumn) rollback(ctx context.Context, r *run) error { return nil }
