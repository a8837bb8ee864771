package migrate

import (
	"context"
	"errors"
	"fmt"
)

// OpAddColumn adds a column. The old version does not see it. A NOT NULL column needs a
// default or an up expression: up fills the existing rows (backfill) and the rows the
// old version writes during the migration (trigger); the new version is held to NOT NULL
// from start on by a NOT VALID check, which complete validates and turns into NOT NULL.
type OpAddColumn struct {
	Table  string    `json:"table"`
	Column ColumnDef `json:"column"`
	Up     string    `json:"up,omitempty"`
}

// Kind implements Operation.
func (o *OpAddColumn) Kind() string { return "add_column" }

func (o *OpAddColumn) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	if o.Column.PK {
		return fieldErr("column.pk", "a primary key cannot be added to an existing table with add_column")
	}
	if o.Column.Generated != nil {
		return fieldErr("column.generated", "adding a generated or identity column rewrites the whole table under an ACCESS EXCLUSIVE lock; add a plain column with up computing the value (and a default), or create the table with it")
	}
	if isSerial(o.Column.Type) {
		return fieldErr("column.type", "adding a %s column rewrites the whole table under an ACCESS EXCLUSIVE lock; add a nullable bigint column, then give it a sequence default in a later migration", o.Column.Type)
	}
	return o.Column.checkFields("column.")
}

func (o *OpAddColumn) notNull() bool { return !o.Column.Nullable }

func (o *OpAddColumn) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	if t.Column(o.Column.Name) != nil {
		return fieldErr("column.name", "column %q already exists in table %q", o.Column.Name, o.Table)
	}
	if o.Up != "" {
		if err := v.noInheritance(ctx, "table", t); err != nil {
			return err
		}
	}
	if old := v.existing(t); old != nil && old.ColumnByPhysical(o.Column.Name) != nil {
		return fieldErr("column.name", "a column named %q still exists physically in table %q (dropped or renamed in this migration); choose another name", o.Column.Name, o.Table)
	}
	if o.notNull() && o.Up == "" && o.Column.Default == nil {
		return fieldErr("up", "a NOT NULL column needs an up expression or a default: the old version keeps inserting rows without it (or set nullable: true)")
	}
	t.Columns = append(t.Columns, o.Column.columnShape(o.Column.Name))
	if err := o.Column.validate(ctx, v, "column.", t); err != nil {
		return err
	}
	if o.Up != "" {
		if err := v.checkExpr(ctx, "up", o.Up, v.opBefore.Table(o.Table), o.Column.Type); err != nil {
			return err
		}
	}
	return nil
}

func (o *OpAddColumn) triggerName(r *run) string  { return r.objectName("trg") }
func (o *OpAddColumn) notNullCheck(r *run) string { return r.notNullName(o.Column.Name, "") }
func (o *OpAddColumn) uniqueIndex(r *run) string  { return r.objectName("uq") }

func (o *OpAddColumn) start(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	c := o.Column
	col := qi(c.Name)
	// Without up, the column and its NOT VALID constraints go in together. With up, the
	// column goes in with its foreign key (a NULL passes it) and guards for its checks;
	// the trigger and the checks go in with the backfill (see backfill), each in a short
	// transaction of its own.
	var stmts []string
	exists, err := columnExists(ctx, r, table, c.Name)
	if err != nil {
		return err
	}
	if !exists {
		def := "ALTER TABLE " + table + " ADD COLUMN " + col + " " + c.Type
		if o.Up == "" && c.Default != nil {
			// A constant default fills existing rows without a rewrite (PostgreSQL 11+),
			// and the old version's inserts get it too.
			def += " DEFAULT " + *c.Default
			if o.notNull() {
				def += " NOT NULL"
			}
			stmts = append(stmts, def)
		} else {
			stmts = append(stmts, def)
			if c.Default != nil {
				stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" SET DEFAULT "+*c.Default)
			}
		}
		if c.Comment != nil {
			stmts = append(stmts, "COMMENT ON COLUMN "+table+"."+col+" IS "+ql(*c.Comment))
		}
	}
	var bf *backfill
	if o.Up != "" {
		bf = &backfill{table: r.opBefore.Table(o.Table), target: c.Name, typ: c.Type, expr: o.Up, ruleTables: []string{table}}
		dw := dualWrite{name: o.triggerName(r), up: setRule(bf.table, c.Name, c.Type, o.Up), fillUnfilled: true}
		if bf.trigger, err = dw.statements(r, t.Physical); err != nil {
			return err
		}
	}
	// addCheck adds a check: guarded until the rules go in when there is a backfill.
	addCheck := func(name, expr, what string) error {
		if bf != nil {
			return bf.guardedCheck(ctx, r, &stmts, table, name, "CHECK ("+expr+")", what)
		}
		return r.addNotValid(ctx, &stmts, table, name, "CHECK ("+expr+")")
	}
	tables := []string{table}
	if o.needsNotNullCheck() {
		if err := addCheck(o.notNullCheck(r), col+" IS NOT NULL", "NOT NULL"); err != nil {
			return err
		}
	}
	if c.Check != nil {
		if err := addCheck(c.Check.Name, c.Check.Constraint, fmt.Sprintf("check %q", c.Check.Name)); err != nil {
			return err
		}
	}
	if ref := c.References; ref != nil {
		if err := r.addNotValid(ctx, &stmts, table, ref.Name, "FOREIGN KEY ("+col+") "+ref.referencesSQL(r.schema, r.opAfter)); err != nil {
			return err
		}
		tables = append(tables, r.table(r.opAfter.Table(ref.Table).Physical))
	}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, tables, stmts...); err != nil {
			return err
		}
	}
	if bf != nil {
		if err := bf.run(ctx, r); err != nil {
			return err
		}
	}
	if c.Unique {
		idx := o.uniqueIndex(r)
		if err := r.m.execConcurrently(ctx, r.schema, idx, "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "+qi(idx)+" ON "+table+" ("+col+")"); err != nil {
			return err
		}
	}
	return nil
}

// needsNotNullCheck: NOT NULL is enforced through a NOT VALID check until complete,
// unless a constant default made the column NOT NULL at once.
func (o *OpAddColumn) needsNotNullCheck() bool {
	return o.notNull() && !(o.Up == "" && o.Column.Default != nil)
}

func (o *OpAddColumn) complete(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	col := qi(o.Column.Name)
	if o.Up != "" {
		if exists, err := tableExists(ctx, r, table); err != nil {
			return err
		} else if !exists {
			return dropTrigger(ctx, r, o.triggerName(r), t.Physical)
		}
	}
	// The NOT NULL check is gone when an earlier, interrupted complete already turned it
	// into NOT NULL (both in one transaction).
	nn := false
	if o.needsNotNullCheck() {
		var err error
		if nn, err = constraintExists(ctx, r, table, o.notNullCheck(r)); err != nil {
			return err
		}
	}
	// VALIDATE takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on meanwhile. The
	// trigger still fills the column for the old version's writes as it runs.
	var validate []string
	if nn {
		validate = append(validate, o.notNullCheck(r))
	}
	if o.Column.Check != nil {
		validate = append(validate, o.Column.Check.Name)
	}
	if o.Column.References != nil {
		validate = append(validate, o.Column.References.Name)
	}
	for _, name := range validate {
		if err := validateConstraint(ctx, r, table, name); err != nil {
			return err
		}
	}
	// What needs the ACCESS EXCLUSIVE lock goes in one transaction: the trigger, and NOT
	// NULL, which a validated CHECK (col IS NOT NULL) lets PostgreSQL set without a scan.
	var stmts []string
	if o.Up != "" {
		stmts = append(stmts, dropTriggerSQL(r, o.triggerName(r), t.Physical)...)
	}
	if nn {
		stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" SET NOT NULL",
			"ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(o.notNullCheck(r)))
	}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, []string{table}, stmts...); err != nil {
			return err
		}
	}
	if o.Column.Unique {
		// Named as PostgreSQL would name it: constraint indexes share the schema's
		// namespace, so the table's name keeps two tables' "email" columns apart.
		name := t.Physical + "_" + o.Column.Name + "_key"
		if len(name) > 63 {
			name = o.uniqueIndex(r) + "_key"
		}
		if err := attachUnique(ctx, r, table, o.uniqueIndex(r), name); err != nil {
			return err
		}
	}
	return nil
}

func (o *OpAddColumn) rollback(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	if err := r.m.execConcurrently(ctx, r.schema, o.uniqueIndex(r), "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.uniqueIndex(r))); err != nil {
		return err
	}
	exists, err := tableExists(ctx, r, table)
	if err != nil {
		return err
	}
	if !exists {
		return dropTrigger(ctx, r, o.triggerName(r), t.Physical) // the table is gone: only the function can be left
	}
	// The column (with its NOT NULL check) and the trigger that fills it go in one
	// transaction: an old-version write in between would miss the trigger and fail the check.
	stmts := append([]string{"ALTER TABLE " + table + " DROP COLUMN IF EXISTS " + qi(o.Column.Name)},
		dropTriggerSQL(r, o.triggerName(r), t.Physical)...)
	if c := o.Column.Check; c != nil {
		// A guard whose check does not mention the column outlives it.
		stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(guardName(r, c.Name)))
	}
	return r.m.execLocked(ctx, []string{table}, stmts...)
}

func tableExists(ctx context.Context, r *run, table string) (bool, error) {
	var ok bool
	err := r.m.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
	return ok, err
}

// validateConstraint validates a NOT VALID constraint, if it is not valid yet.
func validateConstraint(ctx context.Context, r *run, table, name string) error {
	var valid bool
	err := r.m.conn.QueryRow(ctx, "SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2", table, name).Scan(&valid)
	if err != nil {
		return errors.Join(errors.New("constraint "+name+" not found on "+table), err)
	}
	if valid {
		return nil
	}
	return r.m.execLocked(ctx, []string{table}, "ALTER TABLE "+table+" VALIDATE CONSTRAINT "+qi(name))
}

// attachUnique turns a unique index built concurrently into a UNIQUE constraint.
func attachUnique(ctx context.Context, r *run, table, index, constraint string) error {
	exists, err := constraintExists(ctx, r, table, constraint)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	return r.m.execLocked(ctx, []string{table}, "ALTER TABLE "+table+" ADD CONSTRAINT "+qi(constraint)+" UNIQUE USING INDEX "+qi(index))
}

func columnExists(ctx context.Context, r *run, table, column string) (bool, error) {
	var ok bool
	err := r.m.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)",
		table, column).Scan(&ok)
	return ok, err
}

// addNotValid appends to stmts the statement that adds constraint name (def) to table
// NOT VALID, unless the table has it already (a rerun after an interrupted start).
func (r *run) addNotValid(ctx context.Context, stmts *[]string, table, name, def string) error {
	ok, err := constraintExists(ctx, r, table, name)
	if err == nil && !ok {
		*stmts = append(*stmts, "ALTER TABLE "+table+" ADD CONSTRAINT "+qi(name)+" "+def+" NOT VALID")
	}
	return err
}

func constraintExists(ctx context.Context, r *run, table, name string) (bool, error) {
	var ok bool
	err := r.m.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)", table, name).Scan(&ok)
	return ok, err
}
