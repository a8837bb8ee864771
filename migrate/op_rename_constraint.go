package migrate

import "context"

// OpRenameConstraint renames a constraint of a table (pgroll's rename_constraint).
//
// Constraint names are not part of the version views, but the old version may still see
// them: in the errors its writes get (an application that tells a duplicate email by the
// constraint name, say). So the physical rename waits for complete, when the old version
// is gone; start and rollback do nothing. Renaming a unique or primary key constraint
// renames its index too.
type OpRenameConstraint struct {
	Table string `json:"table"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Kind implements Operation.
func (o *OpRenameConstraint) Kind() string { return "rename_constraint" }

func (o *OpRenameConstraint) checkFields() error {
	for _, f := range []struct{ name, value string }{{"table", o.Table}, {"from", o.From}, {"to", o.To}} {
		if err := required(f.name, f.value); err != nil {
			return err
		}
	}
	if o.From == o.To {
		return fieldErr("to", "the new name is the old name")
	}
	if len(o.To) > 63 {
		return fieldErr("to", "%q is longer than PostgreSQL's 63-byte limit for names", o.To)
	}
	return nil
}

func (o *OpRenameConstraint) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	if !t.hasConstraint(o.From) {
		return fieldErr("from", "constraint %q does not exist on table %q%s", o.From, o.Table, suggest(o.From, t.Constraints))
	}
	info, err := v.lookupConstraint(ctx, t, o.From)
	if err != nil {
		return fieldErr("from", "%v", err)
	}
	// A constraint created in this migration (not in the catalog yet) may be index-backed.
	indexBacked := info == nil || info.contype == "u" || info.contype == "p" || info.contype == "x"
	if err := v.constraintNameTaken(ctx, "to", t, o.To, indexBacked); err != nil {
		return err
	}
	t.removeConstraint(o.From)
	t.Constraints = append(t.Constraints, o.To)
	if indexBacked && t.hasIndex(o.From) {
		for i, x := range t.Indexes {
			if x == o.From {
				t.Indexes[i] = o.To
			}
		}
	}
	return nil
}

func (o *OpRenameConstraint) start(ctx context.Context, r *run) error { return nil }

func (o *OpRenameConstraint) complete(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	exists, err := constraintExists(ctx, r, table, o.From)
	if err != nil || !exists {
		return err // renamed by an earlier, interrupted complete
	}
	return r.m.execLocked(ctx, []string{table}, "ALTER TABLE "+table+" RENAME CONSTRAINT "+qi(o.From)+" TO "+qi(o.To))
}

func (o *OpRenameConstraint) rollback(ctx context.Context, r *run) error { return nil }
