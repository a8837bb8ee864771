package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// OpAlterColumn changes a column: its type, nullability, default, comment, a unique,
// check or foreign key constraint, and its name, in any combination that takes effect
// together.
//
// The column is only duplicated when the two versions must see different values: for a
// type change, for dropping NOT NULL, and for a new rule (NOT NULL, check) that existing
// rows break. Then a shadow column with the new definition is filled by up (for existing
// rows and the old version's writes), the old column by down (for the new version's
// writes), and complete swaps them. Otherwise the change is made in place: constraints go
// in NOT VALID (the new version is held to them from start on), the old version's writes
// are mapped through up, and complete validates. A comment, a default or a rename alone
// touch no row.
type OpAlterColumn struct {
	Table      string        `json:"table"`
	Column     string        `json:"column"`
	Name       string        `json:"name,omitempty"`
	Type       string        `json:"type,omitempty"`
	Nullable   *bool         `json:"nullable,omitempty"`
	Default    optString     `json:"default,omitzero"`
	Comment    optString     `json:"comment,omitzero"`
	Unique     *UniqueDef    `json:"unique,omitempty"`
	Check      *CheckDef     `json:"check,omitempty"`
	References *ReferenceDef `json:"references,omitempty"`
	Up         string        `json:"up,omitempty"`
	Down       string        `json:"down,omitempty"`
}

// UniqueDef names the unique constraint alter_column adds.
type UniqueDef struct {
	Name string `json:"name"`
}

// Kind implements Operation.
func (o *OpAlterColumn) Kind() string { return "alter_column" }

func (o *OpAlterColumn) changesData() bool {
	return o.Type != "" || o.Nullable != nil || o.Check != nil || o.Unique != nil || o.References != nil
}

func (o *OpAlterColumn) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	if err := required("column", o.Column); err != nil {
		return err
	}
	if !o.changesData() && !o.Default.Set && !o.Comment.Set && o.Name == "" {
		return fieldErr("", "nothing to change: give at least one of name, type, nullable, default, comment, unique, check, references")
	}
	if o.Type != "" && (o.Up == "" || o.Down == "") {
		return fieldErr("up", "a type change needs both up (old value → new type) and down (new value → old type)")
	}
	if o.Check != nil {
		if err := required("check.name", o.Check.Name); err != nil {
			return err
		}
		if err := required("check.constraint", o.Check.Constraint); err != nil {
			return err
		}
	}
	if o.Unique != nil {
		if err := required("unique.name", o.Unique.Name); err != nil {
			return err
		}
	}
	if o.References != nil {
		return (&ColumnDef{Name: o.Column, Type: "-", References: o.References}).checkFields("")
	}
	return nil
}

func (o *OpAlterColumn) newName() string {
	if o.Name != "" {
		return o.Name
	}
	return o.Column
}

func (o *OpAlterColumn) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	c, err := v.column("column", t, o.Column)
	if err != nil {
		return err
	}
	if o.Up != "" || o.Down != "" {
		if err := v.noInheritance(ctx, "table", t); err != nil {
			return err
		}
	}
	if o.Name != "" && o.Name != o.Column && t.Column(o.Name) != nil {
		return fieldErr("name", "column %q already exists in table %q", o.Name, o.Table)
	}
	oldShape := v.opBefore.Table(o.Table)
	newType := c.Type
	if o.Type != "" {
		if newType, err = v.checkType(ctx, "type", o.Type); err != nil {
			return err
		}
		for _, pk := range t.PrimaryKey {
			if pk == c.Physical {
				return fieldErr("type", "changing the type of primary key column %q is not supported", o.Column)
			}
		}
	}
	hasRows, err := v.hasRows(ctx, t)
	if err != nil {
		return err
	}
	setNotNull := o.Nullable != nil && !*o.Nullable && c.Nullable
	dropNotNull := o.Nullable != nil && *o.Nullable && !c.Nullable
	if setNotNull && o.Up == "" && hasRows {
		return fieldErr("up", "setting NOT NULL on a table with rows needs an up expression that maps NULLs (the old version may keep writing them)")
	}
	if dropNotNull && o.Down == "" {
		return fieldErr("down", "dropping NOT NULL needs a down expression: the old version still expects a value where the new one writes NULL")
	}
	if o.Up != "" {
		if err := v.checkExpr(ctx, "up", o.Up, oldShape, newType); err != nil {
			return err
		}
	}

	// The new version's view of the column.
	nc := *c
	nc.Name, nc.Type = o.newName(), newType
	if o.Nullable != nil {
		nc.Nullable = *o.Nullable
	}
	if o.Default.Set {
		if o.Default.Null {
			nc.Default, nc.ViewDefault = nil, nil
		} else {
			if err := v.checkValueExpr(ctx, "default", o.Default.Value, newType); err != nil {
				return err
			}
			d := o.Default.Value
			nc.Default, nc.ViewDefault = &d, &d
		}
	} else if o.Type != "" && c.Default != nil {
		// Keep the default, cast to the new type, if its value converts; drop it with a
		// warning otherwise.
		if d, err := v.defaultFor(ctx, *c.Default, newType); err != nil {
			v.log.Warn("alter_column drops the column's default: it does not fit the new type; give a default in the operation to keep one",
				"table", o.Table, "column", o.Column, "default", *c.Default, "type", newType, "reason", err)
			nc.Default, nc.ViewDefault = nil, nil
		} else {
			if c.ViewDefault != nil && *c.ViewDefault == *c.Default {
				nc.ViewDefault = &d
			}
			nc.Default = &d
		}
	}

	// Does the old data break the new rule? Then the versions must see different values.
	shadow := o.Type != "" || dropNotNull
	if !shadow && hasRows && (setNotNull || o.Check != nil) {
		var cond []string
		if setNotNull {
			cond = append(cond, qi(o.newName())+" IS NULL")
		}
		if o.Check != nil {
			cond = append(cond, "NOT ("+o.Check.Constraint+")")
		}
		broken, err := v.anyRow(ctx, t, strings.Join(cond, " OR "), map[string]string{c.Physical: o.newName()})
		if err != nil {
			return fieldErr("check.constraint", "%v", err)
		}
		shadow = broken
		if broken && o.Up == "" {
			return fieldErr("up", "existing rows of %q break the new rule; give an up expression that maps them", o.Table)
		}
	}
	if shadow {
		nc.Physical = shadowName(c.Physical)
	}
	*c = nc
	if o.Check != nil {
		if err := v.checkExpr(ctx, "check.constraint", o.Check.Constraint, t, "boolean"); err != nil {
			return err
		}
		if hasRows && o.Up != "" {
			// Every existing row, mapped by up, must satisfy the new check.
			cond := "NOT (" + renameIdent(o.Check.Constraint, o.newName(), "_tandem_up") + ")"
			if bad, err := v.anyRowMapped(ctx, oldShape, o.Up, newType, cond); err != nil {
				return fieldErr("up", "%v", err)
			} else if bad {
				return fieldErr("up", "for some existing rows the value up computes still breaks check %q; change up so that every row satisfies it", o.Check.Name)
			}
		}
	}
	if o.Down != "" {
		if err := v.checkExpr(ctx, "down", o.Down, t, oldTypeOf(v.opBefore, o.Table, o.Column)); err != nil {
			return err
		}
	}
	if r := o.References; r != nil {
		rt, err := v.table("references.table", r.Table)
		if err != nil {
			return err
		}
		if _, err := v.column("references.column", rt, r.Column); err != nil {
			return err
		}
	}
	// The constraints it adds exist for the operations after it.
	if o.Check != nil {
		t.addConstraint(o.Check.Name, c.Physical)
	}
	if o.Unique != nil {
		t.addConstraint(o.Unique.Name, c.Physical)
	}
	if o.References != nil {
		t.addConstraint(o.References.Name, c.Physical)
	}
	return nil
}

func oldTypeOf(s *Schema, table, column string) string {
	return s.Table(table).Column(column).Type
}

// shadowName names the shadow column that replaces column col.
func shadowName(col string) string {
	name := "_tandem_new_" + col
	if len(name) > 63 {
		name = shortName("_tandem_new_", col)
	}
	return name
}

func (o *OpAlterColumn) triggerName(r *run) string  { return r.objectName("trg") }
func (o *OpAlterColumn) notNullCheck(r *run) string { return r.notNullName(o.newName(), "") }
func (o *OpAlterColumn) uniqueIndex(r *run) string  { return r.objectName("uq") }

// keptName is the temporary name of a constraint carried over to the shadow column.
func (o *OpAlterColumn) keptName(r *run, name string) string {
	return shortName("_tandem_kc_", r.rec.Name, fmt.Sprint(r.op), name)
}

// cols returns the column as the operation sees it and as the new version sees it.
func (o *OpAlterColumn) cols(r *run) (old, new *Column, shadow bool) {
	old = r.opBefore.Table(o.Table).Column(o.Column)
	new = r.opAfter.Table(o.Table).Column(o.newName())
	return old, new, old.Physical != new.Physical
}

func (o *OpAlterColumn) start(ctx context.Context, r *run) error {
	if !o.changesData() {
		return nil // a rename, default or comment: the new version's view does it
	}
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	old, nc, shadow := o.cols(r)
	target := qi(nc.Physical)
	if !shadow {
		return o.startInPlace(ctx, r, table, old, nc)
	}
	// The shadow column goes in with its foreign keys (a NULL passes them) and guards for
	// its checks; the trigger and the checks go in with the backfill (see backfill), each
	// in a short transaction of its own.
	var stmts []string
	tables := []string{table}
	bf := &backfill{table: r.opBefore.Table(o.Table), target: nc.Physical, typ: nc.Type, expr: o.Up}
	exists, err := columnExists(ctx, r, table, nc.Physical)
	if err != nil {
		return err
	}
	kept, err := readKeptRules(ctx, r, table, old.Physical)
	if err != nil {
		return err
	}
	for _, w := range kept.lost {
		r.m.log.Warn("alter_column cannot keep this on the new column; recreate it in a later migration", "table", o.Table, "column", o.Column, "lost", w)
	}
	if !exists {
		stmts = append(stmts, "ALTER TABLE "+table+" ADD COLUMN "+target+" "+nc.Type)
		if nc.Default != nil {
			// For the rows the new version writes without the column (a later operation
			// hides it): down then maps the default, not NULL, into the old column. Set
			// apart from ADD COLUMN, it touches no existing row.
			stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+target+" SET DEFAULT "+*nc.Default)
		}
		if kept.comment != nil && !o.Comment.Set {
			stmts = append(stmts, "COMMENT ON COLUMN "+table+"."+target+" IS "+ql(*kept.comment))
		}
	}
	dw := dualWrite{name: o.triggerName(r),
		up:           setRule(r.opBefore.Table(o.Table), nc.Physical, nc.Type, o.Up),
		down:         setRule(t, old.Physical, old.Type, o.Down),
		fillUnfilled: true}
	if o.Down == "" {
		dw.down = nil
	}
	if bf.trigger, err = dw.statements(r, t.Physical); err != nil {
		return err
	}
	// Kept constraints get a temporary name until the old column (and its constraints
	// of the same names) is gone.
	for _, k := range kept.checks {
		def := renameIdent(k.def, old.Physical, nc.Physical)
		if !k.validated {
			// Existing rows were never held to it: neither are their copies.
			if err := r.addNotValid(ctx, &bf.rules, table, o.keptName(r, k.name), def); err != nil {
				return err
			}
			continue
		}
		if err := bf.guardedCheck(ctx, r, &stmts, table, o.keptName(r, k.name), def, fmt.Sprintf("check %q", k.name)); err != nil {
			return err
		}
	}
	for _, k := range kept.foreignKeys {
		if err := r.addNotValid(ctx, &stmts, table, o.keptName(r, k.name), "FOREIGN KEY ("+target+") "+k.def); err != nil {
			return err
		}
	}
	if !nc.Nullable {
		if err := bf.guardedCheck(ctx, r, &stmts, table, o.notNullCheck(r), "CHECK ("+target+" IS NOT NULL)", "NOT NULL"); err != nil {
			return err
		}
	}
	if o.Check != nil {
		if err := bf.guardedCheck(ctx, r, &stmts, table, o.Check.Name, "CHECK ("+renameIdent(o.Check.Constraint, o.newName(), nc.Physical)+")", fmt.Sprintf("check %q", o.Check.Name)); err != nil {
			return err
		}
	}
	if ref := o.References; ref != nil {
		if err := r.addNotValid(ctx, &stmts, table, ref.Name, "FOREIGN KEY ("+target+") "+ref.referencesSQL(r.schema, r.opAfter)); err != nil {
			return err
		}
		tables = append(tables, r.table(r.opAfter.Table(ref.Table).Physical))
	}
	bf.ruleTables = []string{table}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, tables, stmts...); err != nil {
			return err
		}
	}
	if err := bf.run(ctx, r); err != nil {
		return err
	}
	for i, k := range kept.indexes {
		name := shortName("_tandem_ix_", r.rec.Name, fmt.Sprint(r.op), fmt.Sprint(i))
		u := ""
		if k.unique {
			u = "UNIQUE "
		}
		if err := r.m.execConcurrently(ctx, r.schema, name, "CREATE "+u+"INDEX CONCURRENTLY IF NOT EXISTS "+qi(name)+" ON "+table+" USING "+qi(k.method)+" ("+target+")"+k.withClause()); err != nil {
			return err
		}
	}
	return o.startUnique(ctx, r, table, target)
}

// startInPlace changes the column in place: the new version is held to the new rules at
// once (NOT VALID), and the old version's writes are mapped through up, all in one
// transaction.
func (o *OpAlterColumn) startInPlace(ctx context.Context, r *run, table string, old, nc *Column) error {
	var stmts []string
	tables := []string{table}
	target := qi(nc.Physical)
	if o.Up != "" {
		dw := dualWrite{name: o.triggerName(r), up: setRule(r.opBefore.Table(o.Table), nc.Physical, nc.Type, o.Up)}
		trig, err := dw.statements(r, r.opAfter.Table(o.Table).Physical)
		if err != nil {
			return err
		}
		stmts = append(stmts, trig...)
	}
	addConstraint := func(name, def string) error { return r.addNotValid(ctx, &stmts, table, name, def) }
	if !nc.Nullable && old.Nullable {
		if err := addConstraint(o.notNullCheck(r), "CHECK ("+target+" IS NOT NULL)"); err != nil {
			return err
		}
	}
	if o.Check != nil {
		if err := addConstraint(o.Check.Name, "CHECK ("+renameIdent(o.Check.Constraint, o.newName(), nc.Physical)+")"); err != nil {
			return err
		}
	}
	if ref := o.References; ref != nil {
		if err := addConstraint(ref.Name, "FOREIGN KEY ("+target+") "+ref.referencesSQL(r.schema, r.opAfter)); err != nil {
			return err
		}
		tables = append(tables, r.table(r.opAfter.Table(ref.Table).Physical))
	}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, tables, stmts...); err != nil {
			return err
		}
	}
	return o.startUnique(ctx, r, table, target)
}

// startUnique builds the unique index a unique constraint will use, concurrently.
func (o *OpAlterColumn) startUnique(ctx context.Context, r *run, table, target string) error {
	if o.Unique == nil {
		return nil
	}
	idx := o.uniqueIndex(r)
	return r.m.execConcurrently(ctx, r.schema, idx, "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "+qi(idx)+" ON "+table+" ("+target+")")
}

func (o *OpAlterColumn) complete(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	old, nc, shadow := o.cols(r)
	if !shadow && (o.Up != "" || o.Down != "") {
		if exists, err := tableExists(ctx, r, table); err != nil {
			return err
		} else if !exists {
			return dropTrigger(ctx, r, o.triggerName(r), t.Physical)
		}
	}
	var validate []string
	if !nc.Nullable && (shadow || old.Nullable) {
		validate = append(validate, o.notNullCheck(r))
	}
	if o.Check != nil {
		validate = append(validate, o.Check.Name)
	}
	if o.References != nil {
		validate = append(validate, o.References.Name)
	}
	var kept *keptRules
	if shadow {
		exists, err := columnExists(ctx, r, table, old.Physical)
		if err != nil {
			return err
		}
		if exists {
			if kept, err = readKeptRules(ctx, r, table, old.Physical); err != nil {
				return err
			}
			for _, k := range append(kept.checks, kept.foreignKeys...) {
				if k.validated {
					validate = append(validate, o.keptName(r, k.name))
				}
			}
		}
	}
	for _, name := range validate {
		if ok, err := constraintExists(ctx, r, table, name); err != nil {
			return err
		} else if !ok {
			continue // already folded into NOT NULL by an interrupted complete
		}
		if err := validateConstraint(ctx, r, table, name); err != nil {
			return err
		}
	}
	// What needs the ACCESS EXCLUSIVE lock goes in one transaction, the trigger first (in
	// a swap, with the old column it fills). Nothing in it scans the table: NOT NULL is
	// set through the validated CHECK (col IS NOT NULL).
	var stmts []string
	if shadow || o.Up != "" || o.Down != "" {
		stmts = append(stmts, dropTriggerSQL(r, o.triggerName(r), t.Physical)...)
	}
	if shadow && kept != nil {
		// Copies made at start of constraints that an operation of this migration has
		// dropped since go too.
		stale, err := o.staleKeptCopies(ctx, r, table, nc.Physical, kept)
		if err != nil {
			return err
		}
		for _, name := range stale {
			stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(name))
		}
		// The swap: drop the old column (and what hangs on it), give the shadow its name
		// and the kept indexes and constraints theirs.
		stmts = append(stmts, "ALTER TABLE "+table+" DROP COLUMN "+qi(old.Physical))
		for _, k := range append(kept.checks, kept.foreignKeys...) {
			stmts = append(stmts, "ALTER TABLE "+table+" RENAME CONSTRAINT "+qi(o.keptName(r, k.name))+" TO "+qi(k.name))
		}
		for i, k := range kept.indexes {
			name := shortName("_tandem_ix_", r.rec.Name, fmt.Sprint(r.op), fmt.Sprint(i))
			if k.constraint {
				stmts = append(stmts, "ALTER TABLE "+table+" ADD CONSTRAINT "+qi(k.name)+" UNIQUE USING INDEX "+qi(name))
			} else {
				stmts = append(stmts, "ALTER INDEX "+qi(r.schema, name)+" RENAME TO "+qi(k.name))
			}
		}
	}
	// The column keeps its physical name (the shadow's, after a swap) until complete's
	// final pass gives it its final name (see renameToFinal): later operations of the
	// migration know it by that physical name.
	col := qi(nc.Physical)
	if !nc.Nullable && (shadow || old.Nullable) {
		stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" SET NOT NULL",
			"ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(o.notNullCheck(r)))
	}
	if o.Nullable != nil && *o.Nullable && !shadow {
		stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" DROP NOT NULL")
	}
	if nc.Default != nil {
		stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" SET DEFAULT "+*nc.Default)
	} else if o.Default.Set || shadow {
		stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+col+" DROP DEFAULT")
	}
	if o.Comment.Set {
		if o.Comment.Null {
			stmts = append(stmts, "COMMENT ON COLUMN "+table+"."+col+" IS NULL")
		} else {
			stmts = append(stmts, "COMMENT ON COLUMN "+table+"."+col+" IS "+ql(o.Comment.Value))
		}
	}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, []string{table}, stmts...); err != nil {
			return err
		}
	}
	if o.Unique != nil {
		if err := attachUnique(ctx, r, table, o.uniqueIndex(r), o.Unique.Name); err != nil {
			return err
		}
	}
	return nil
}

func (o *OpAlterColumn) rollback(ctx context.Context, r *run) error {
	t := r.opAfter.Table(o.Table)
	table := r.table(t.Physical)
	_, nc, shadow := o.cols(r)
	if err := dropTrigger(ctx, r, o.triggerName(r), t.Physical); err != nil {
		return err
	}
	if err := r.m.execConcurrently(ctx, r.schema, o.uniqueIndex(r), "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.uniqueIndex(r))); err != nil {
		return err
	}
	var stmts []string
	if shadow {
		stmts = append(stmts, "ALTER TABLE "+table+" DROP COLUMN IF EXISTS "+qi(nc.Physical))
		if o.Check != nil {
			// A guard whose check does not mention the column outlives it.
			stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(guardName(r, o.Check.Name)))
		}
	} else {
		for _, name := range []string{o.notNullCheck(r), nameOf(o.Check), refName(o.References)} {
			if name != "" {
				stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(name))
			}
		}
	}
	return r.m.execLocked(ctx, []string{table}, stmts...)
}

// staleKeptCopies lists the constraints of the shadow column that start copied from the
// old column's and whose original is gone.
func (o *OpAlterColumn) staleKeptCopies(ctx context.Context, r *run, table, shadow string, kept *keptRules) ([]string, error) {
	want := map[string]bool{}
	for _, k := range append(kept.checks, kept.foreignKeys...) {
		want[o.keptName(r, k.name)] = true
	}
	rows, err := r.m.conn.Query(ctx, `SELECT k.conname::text FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
		WHERE k.conrelid = $1::regclass AND a.attname = $2 AND k.conname LIKE '\_tandem\_kc\_%'`, table, shadow)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, n := range names {
		if !want[n] {
			stale = append(stale, n)
		}
	}
	return stale, nil
}

func nameOf(c *CheckDef) string {
	if c == nil {
		return ""
	}
	return c.Name
}

func refName(r *ReferenceDef) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// keptRules is what a column's replacement must carry over from the old column.
type keptRules struct {
	comment     *string
	checks      []keptConstraint // def: the CHECK (...) clause
	foreignKeys []keptConstraint // def: REFERENCES ... clause
	indexes     []keptIndex      // single-column indexes, unique constraints among them
	lost        []string         // what cannot be kept, for the user
}

type keptConstraint struct {
	name, def string
	validated bool // a constraint added NOT VALID and never validated stays so
}

type keptIndex struct {
	name       string
	method     string
	unique     bool
	constraint bool     // a UNIQUE constraint, not just an index
	options    []string // storage parameters, "name=value" as pg_class.reloptions has them
}

// withClause is the index's storage parameters as a WITH clause ("" for none), names
// quoted as identifiers and values as literals.
func (ix keptIndex) withClause() string {
	if len(ix.options) == 0 {
		return ""
	}
	var ps []string
	for _, o := range ix.options {
		name, value, _ := strings.Cut(o, "=")
		ps = append(ps, qi(name)+" = "+ql(value))
	}
	return " WITH (" + strings.Join(ps, ", ") + ")"
}

// readKeptRules reads the constraints and indexes of column col of table.
func readKeptRules(ctx context.Context, r *run, table, col string) (*keptRules, error) {
	k := &keptRules{}
	var attnum int
	if err := r.m.conn.QueryRow(ctx, "SELECT attnum, col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
		table, col).Scan(&attnum, &k.comment); err != nil {
		return nil, fmt.Errorf("read column %s of %s: %w", col, table, err)
	}
	rows, err := r.m.conn.Query(ctx, `
		SELECT conname, contype::text, pg_get_constraintdef(oid), cardinality(conkey), conrelid = $1::regclass, convalidated
		  FROM pg_constraint
		 WHERE (conrelid = $1::regclass AND $2 = ANY (conkey)) OR (confrelid = $1::regclass AND $2 = ANY (confkey))
		 ORDER BY conname`, table, attnum)
	if err != nil {
		return nil, err
	}
	constraintIndexes := map[string]bool{}
	for rows.Next() {
		var name, typ, def string
		var n int
		var own, validated bool
		if err := rows.Scan(&name, &typ, &def, &n, &own, &validated); err != nil {
			rows.Close()
			return nil, err
		}
		def = strings.TrimSuffix(def, " NOT VALID")
		switch {
		case !own:
			k.lost = append(k.lost, fmt.Sprintf("foreign key %s of another table references this column", name))
		case n > 1:
			k.lost = append(k.lost, fmt.Sprintf("constraint %s spans several columns", name))
		case strings.HasPrefix(name, "_tandem_"):
			// Tandem's own (an earlier operation's NOT NULL check, say): that operation
			// completes or rolls it back, and this one makes its own for the new column.
		case typ == "c":
			k.checks = append(k.checks, keptConstraint{name, def, validated})
		case typ == "f":
			if i := strings.Index(def, "REFERENCES"); i >= 0 {
				k.foreignKeys = append(k.foreignKeys, keptConstraint{name, def[i:], validated})
			}
		case typ == "u":
			constraintIndexes[name] = true
		case typ == "p":
			return nil, errors.New("the column is part of the primary key")
		default:
			k.lost = append(k.lost, fmt.Sprintf("constraint %s (%s)", name, def))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = r.m.conn.Query(ctx, `
		SELECT i.relname, am.amname, x.indisunique, x.indnatts = 1 AND x.indexprs IS NULL AND x.indpred IS NULL AND x.indkey[0] = $2,
		       coalesce(i.reloptions, '{}')
		  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
		 WHERE x.indrelid = $1::regclass AND NOT x.indisprimary
		   AND ($2 = ANY (x.indkey::int2[]) OR x.indexprs IS NOT NULL OR x.indpred IS NOT NULL)
		 ORDER BY 1`, table, attnum)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ix keptIndex
		var simple bool
		if err := rows.Scan(&ix.name, &ix.method, &ix.unique, &simple, &ix.options); err != nil {
			return nil, err
		}
		if strings.HasPrefix(ix.name, "_tandem_") {
			continue
		}
		if !simple {
			k.lost = append(k.lost, fmt.Sprintf("index %s (several columns, an expression or a predicate)", ix.name))
			continue
		}
		ix.constraint = constraintIndexes[ix.name]
		k.indexes = append(k.indexes, ix)
	}
	return k, rows.Err()
}
