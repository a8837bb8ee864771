package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OpCreateConstraint adds a unique, check, foreign key or primary key constraint over one
// or several columns of an existing table (pgroll's create_constraint).
//
// The new version is held to the constraint from start on; the old version's writes are
// mapped through up (per column, in the old version's names) so that they satisfy it. The
// constraint reaches the database the safe way: CHECK and FOREIGN KEY go in NOT VALID at
// start and are validated at complete; UNIQUE and PRIMARY KEY are built as a unique index
// CONCURRENTLY at start and attached with ADD CONSTRAINT ... USING INDEX at complete, a
// primary key's columns becoming NOT NULL through validated checks first.
//
// When the existing rows satisfy the constraint, the change is made in place: no column
// is copied and no row is rewritten, and down has nothing to do (the new version's writes
// satisfy the constraint already). When they do not, the versions must see different
// values, and the constraint's columns are copied as alter_column copies a column: up (by
// default the value itself) fills each copy for the existing rows (backfill) and for the
// old version's writes (trigger), down (likewise) fills the old column for the new
// version's writes, the constraint is made over the copies, and complete swaps them in,
// carrying over the old columns' single-column indexes and constraints, defaults and
// comments. Validation makes sure the values up computes for the existing rows satisfy
// the constraint, and rejects a copy of primary key columns. A check needs its columns
// listed to be copied.
type OpCreateConstraint struct {
	Table             string               `json:"table"`
	Name              string               `json:"name"`
	Type              string               `json:"type"`
	Columns           []string             `json:"columns,omitempty"`
	Check             string               `json:"check,omitempty"`
	References        *ConstraintReference `json:"references,omitempty"`
	Up                map[string]string    `json:"up,omitempty"`
	Down              map[string]string    `json:"down,omitempty"`
	NullsNotDistinct  bool                 `json:"nulls_not_distinct,omitempty"`
	Deferrable        bool                 `json:"deferrable,omitempty"`
	InitiallyDeferred bool                 `json:"initially_deferred,omitempty"`
	NoInherit         bool                 `json:"no_inherit,omitempty"`
	IndexParameters   *IndexParameters     `json:"index_parameters,omitempty"`
}

// ConstraintReference is the referenced side of a multi-column foreign key.
type ConstraintReference struct {
	Table              string   `json:"table"`
	Columns            []string `json:"columns"`
	OnDelete           string   `json:"on_delete,omitempty"`
	OnUpdate           string   `json:"on_update,omitempty"`
	MatchType          string   `json:"match_type,omitempty"`
	OnDeleteSetColumns []string `json:"on_delete_set_columns,omitempty"`
}

// IndexParameters are the options of the index behind a unique or primary key constraint.
type IndexParameters struct {
	IncludeColumns    []string `json:"include_columns,omitempty"`
	StorageParameters string   `json:"storage_parameters,omitempty"`
	Tablespace        string   `json:"tablespace,omitempty"`
}

// Kind implements Operation.
func (o *OpCreateConstraint) Kind() string { return "create_constraint" }

func (o *OpCreateConstraint) indexBacked() bool { return o.Type == "unique" || o.Type == "primary_key" }

func (o *OpCreateConstraint) checkFields() error {
	for f, v := range map[string]string{"table": o.Table, "name": o.Name, "type": o.Type} {
		if err := required(f, v); err != nil {
			return err
		}
	}
	if len(o.Name) > 63 {
		return fieldErr("name", "%q is longer than PostgreSQL's 63-byte limit for names", o.Name)
	}
	switch o.Type {
	case "unique", "primary_key", "foreign_key":
		if len(o.Columns) == 0 {
			return fieldErr("columns", "required for a %s constraint", o.Type)
		}
		if o.Check != "" {
			return fieldErr("check", "only a check constraint has a check expression")
		}
	case "check":
		if err := required("check", o.Check); err != nil {
			return err
		}
		if err := checkExpr(o.Check); err != nil {
			return fieldErr("check", "%v", err)
		}
	default:
		return fieldErr("type", "must be one of unique, check, foreign_key, primary_key")
	}
	seen := map[string]bool{}
	for _, c := range o.Columns {
		if err := required("columns", c); err != nil {
			return err
		}
		if seen[c] {
			return fieldErr("columns", "column %q is listed twice", c)
		}
		seen[c] = true
	}
	if r := o.References; r != nil {
		if o.Type != "foreign_key" {
			return fieldErr("references", "only a foreign_key constraint references a table")
		}
		if err := required("references.table", r.Table); err != nil {
			return err
		}
		if len(r.Columns) != len(o.Columns) {
			return fieldErr("references.columns", "a foreign key needs as many referenced columns (%d) as columns (%d)", len(r.Columns), len(o.Columns))
		}
		r.OnDelete = strings.ToUpper(strings.TrimSpace(r.OnDelete))
		r.OnUpdate = strings.ToUpper(strings.TrimSpace(r.OnUpdate))
		r.MatchType = strings.ToUpper(strings.TrimSpace(r.MatchType))
		if !fkActions[r.OnDelete] {
			return fieldErr("references.on_delete", "must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT")
		}
		if !fkActions[r.OnUpdate] {
			return fieldErr("references.on_update", "must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT")
		}
		if r.MatchType != "" && r.MatchType != "SIMPLE" && r.MatchType != "FULL" {
			return fieldErr("references.match_type", "must be SIMPLE or FULL (PostgreSQL does not implement PARTIAL)")
		}
		if len(r.OnDeleteSetColumns) > 0 && r.OnDelete != "SET NULL" && r.OnDelete != "SET DEFAULT" {
			return fieldErr("references.on_delete_set_columns", "needs on_delete SET NULL or SET DEFAULT")
		}
		for _, c := range r.OnDeleteSetColumns {
			if !seen[c] {
				return fieldErr("references.on_delete_set_columns", "column %q is not one of the constraint's columns", c)
			}
		}
	} else if o.Type == "foreign_key" {
		return fieldErr("references", "required for a foreign_key constraint")
	}
	if o.NullsNotDistinct && o.Type != "unique" {
		return fieldErr("nulls_not_distinct", "only for a unique constraint")
	}
	if o.Deferrable && o.Type == "check" {
		return fieldErr("deferrable", "a check constraint cannot be deferrable")
	}
	if o.InitiallyDeferred && !o.Deferrable {
		return fieldErr("initially_deferred", "needs deferrable: true")
	}
	if o.NoInherit && o.Type != "check" {
		return fieldErr("no_inherit", "only for a check constraint")
	}
	if p := o.IndexParameters; p != nil {
		if !o.indexBacked() {
			return fieldErr("index_parameters", "only for a unique or primary_key constraint")
		}
		if p.StorageParameters != "" {
			if err := checkStorageParameters(p.StorageParameters); err != nil {
				return fieldErr("index_parameters.storage_parameters", "%v", err)
			}
		}
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

func (o *OpCreateConstraint) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	created := v.existing(t) == nil
	if !created {
		if err := v.noInheritance(ctx, "table", t); err != nil {
			return err
		}
	}
	if err := v.constraintNameTaken(ctx, "name", t, o.Name, o.indexBacked()); err != nil {
		return err
	}
	var cols []*Column
	for _, name := range o.Columns {
		c, err := v.column("columns", t, name)
		if err != nil {
			return err
		}
		cols = append(cols, c)
	}
	if o.Type == "primary_key" && len(t.PrimaryKey) > 0 {
		return fieldErr("type", "table %q has a primary key already", o.Table)
	}
	if o.Type == "check" {
		if err := v.checkExpr(ctx, "check", o.Check, t, "boolean"); err != nil {
			return err
		}
	}
	if p := o.IndexParameters; p != nil {
		for _, name := range p.IncludeColumns {
			if _, err := v.column("index_parameters.include_columns", t, name); err != nil {
				return err
			}
		}
	}
	if o.Type == "foreign_key" {
		if err := o.validateReferences(ctx, v); err != nil {
			return err
		}
	}
	if created {
		// A table created earlier in this migration: only the new version sees it, so
		// the constraint goes in at start as it is; up and down have nothing to map.
		o.addToShape(t, cols)
		return nil
	}

	// up maps the old version's writes; its keys are the old version's names.
	var allowed map[string]bool
	if len(o.Columns) > 0 {
		allowed = map[string]bool{}
		for _, c := range cols {
			if oc := v.opBefore.Table(o.Table).ColumnByPhysical(c.Physical); oc != nil {
				allowed[oc.Name] = true
			}
		}
	}
	if err := v.checkColumnExprs(ctx, "up", o.Up, v.opBefore.Table(o.Table), allowed); err != nil {
		return err
	}
	if len(o.Columns) > 0 {
		allowed = map[string]bool{}
		for _, c := range o.Columns {
			allowed[c] = true
		}
	}
	if err := v.checkColumnExprs(ctx, "down", o.Down, t, allowed); err != nil {
		return err
	}

	// In place when the existing rows satisfy the constraint already.
	broken, err := o.anyViolation(ctx, v, t, v.rowsSQL(t, nil))
	if err != nil {
		return fieldErr("columns", "%v", err)
	}
	if broken != "" {
		if len(o.Up) == 0 || len(o.Columns) == 0 {
			return fieldErr("up", "existing rows of %q break the new constraint %q (%s); give the constraint's columns and up expressions that map them so that every row satisfies it (the columns are then copied), or fix the existing rows first", o.Table, o.Name, broken)
		}
		return o.validateCopy(ctx, v, t, cols)
	}
	o.addToShape(t, cols)
	return nil
}

// addToShape records the constraint in the new version's shape of its table.
func (o *OpCreateConstraint) addToShape(t *Table, cols []*Column) {
	var physical []string
	for _, c := range cols {
		physical = append(physical, c.Physical)
	}
	t.addConstraint(o.Name, physical...)
	if o.indexBacked() {
		t.Indexes = append(t.Indexes, o.Name)
	}
	if o.Type == "primary_key" {
		t.PrimaryKey = nil
		for _, c := range cols {
			c.Nullable = false
			t.PrimaryKey = append(t.PrimaryKey, c.Physical)
		}
	}
}

// onNewTable reports whether the constraint's table is created in this migration.
func (o *OpCreateConstraint) onNewTable(r *run) bool {
	t := r.opAfter.Table(o.Table)
	for _, old := range r.before.Tables {
		if old.Physical == t.Physical {
			return false
		}
	}
	return true
}

// startOnNewTable adds the constraint to a table created in this migration, at once.
func (o *OpCreateConstraint) startOnNewTable(ctx context.Context, r *run) error {
	t, cols := o.shape(r)
	table := r.table(t.Physical)
	if ok, err := constraintExists(ctx, r, table, o.Name); err != nil || ok {
		return err
	}
	tables := []string{table}
	var def string
	switch o.Type {
	case "check":
		def = "CHECK (" + physicalExpr(o.Check, t) + ")"
		if o.NoInherit {
			def += " NO INHERIT"
		}
	case "foreign_key":
		fk, rtable := o.foreignKeySQL(r, t, cols)
		def = fk + o.deferrableSQL()
		if rtable != table {
			tables = append(tables, rtable)
		}
	default:
		def = "UNIQUE"
		if o.Type == "primary_key" {
			def = "PRIMARY KEY"
		} else if o.NullsNotDistinct {
			def += " NULLS NOT DISTINCT"
		}
		def += " (" + quoteAll(cols) + ")"
		if p := o.IndexParameters; p != nil {
			physical := *p
			physical.IncludeColumns = nil
			for _, c := range p.IncludeColumns {
				physical.IncludeColumns = append(physical.IncludeColumns, t.Column(c).Physical)
			}
			def += physical.sql()
		}
		def += o.deferrableSQL()
	}
	return r.m.execLocked(ctx, tables, "ALTER TABLE "+table+" ADD CONSTRAINT "+qi(o.Name)+" "+def)
}

// validateReferences checks the referenced table and columns of a foreign key, and that
// they carry a unique or primary key constraint, as PostgreSQL requires.
func (o *OpCreateConstraint) validateReferences(ctx context.Context, v *validator) error {
	r := o.References
	rt, err := v.table("references.table", r.Table)
	if err != nil {
		return err
	}
	var rcols []string
	for _, name := range r.Columns {
		c, err := v.column("references.columns", rt, name)
		if err != nil {
			return err
		}
		rcols = append(rcols, c.Physical)
	}
	if v.existing(rt) == nil {
		return nil // created in this migration: its create_table declares its keys
	}
	var unique bool
	err = savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_index x
			                WHERE x.indrelid = to_regclass($1) AND x.indisunique AND x.indisvalid
			                  AND x.indpred IS NULL AND x.indexprs IS NULL AND x.indnkeyatts = cardinality($2::text[])
			                  AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
			                        WHERE a.attrelid = x.indrelid AND a.attnum = ANY ((x.indkey::int2[])[0:x.indnkeyatts - 1]))
			                      = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) c))`,
			qi(v.schema, rt.Physical), rcols).Scan(&unique)
	})
	if err != nil {
		return fieldErr("references", "%s", pgMessage(err))
	}
	if !unique {
		return fieldErr("references.columns", "columns (%s) of table %q carry no unique or primary key constraint, which a foreign key needs", strings.Join(r.Columns, ", "), r.Table)
	}
	return nil
}

// anyViolation reads the table and describes how existing rows break the constraint, or
// returns "" when they all satisfy it.
// rows is a subquery of the rows to check, under the new version's column names, aliased
// as the table.
func (o *OpCreateConstraint) anyViolation(ctx context.Context, v *validator, t *Table, rows string) (string, error) {
	var names, notNull []string
	for _, c := range o.Columns {
		names = append(names, qi(c))
		notNull = append(notNull, qi(c)+" IS NOT NULL")
	}
	type probe struct{ sql, what string }
	var probes []probe
	switch o.Type {
	case "check":
		probes = append(probes, probe{"SELECT EXISTS (SELECT 1 FROM " + rows + " WHERE NOT (" + o.Check + "))", "some rows fail the check"})
	case "unique", "primary_key":
		where := " WHERE " + strings.Join(notNull, " AND ")
		if o.NullsNotDistinct || o.Type == "primary_key" {
			where = ""
		}
		if o.Type == "primary_key" {
			probes = append(probes, probe{"SELECT EXISTS (SELECT 1 FROM " + rows + " WHERE NOT (" + strings.Join(notNull, " AND ") + "))", "some rows hold NULL in a key column"})
		}
		probes = append(probes, probe{"SELECT EXISTS (SELECT 1 FROM " + rows + where + " GROUP BY " + strings.Join(names, ", ") + " HAVING count(*) > 1)", "some rows share the same values"})
	case "foreign_key":
		r := o.References
		rt := v.after.Table(r.Table)
		cond := strings.Join(notNull, " AND ")
		if r.MatchType == "FULL" {
			cond = "(" + strings.Join(notNull, " OR ") + ")"
		}
		missing := "true"
		if v.existing(rt) != nil {
			var eq []string
			for i, c := range r.Columns {
				eq = append(eq, "_tandem_ref."+qi(rt.Column(c).Physical)+" = "+qi(t.Name)+"."+qi(o.Columns[i]))
			}
			missing = "NOT EXISTS (SELECT 1 FROM " + qi(v.schema, rt.Physical) + " AS _tandem_ref WHERE " + strings.Join(eq, " AND ") + ")"
		}
		what := fmt.Sprintf("some rows reference no row of %q", r.Table)
		if r.MatchType == "FULL" {
			what += " (or are partly NULL, which MATCH FULL forbids)"
			missing = "(NOT (" + strings.Join(notNull, " AND ") + ") OR " + missing + ")"
		}
		probes = append(probes, probe{"SELECT EXISTS (SELECT 1 FROM " + rows + " WHERE " + cond + " AND " + missing + ")", what})
	}
	for _, p := range probes {
		var found bool
		err := savepoint(ctx, v.tx, func(tx pgx.Tx) error { return tx.QueryRow(ctx, p.sql).Scan(&found) })
		if err != nil {
			return "", fmt.Errorf("%s", pgMessage(err))
		}
		if found {
			return p.what, nil
		}
	}
	return "", nil
}

// shadowAlter is the alter_column that makes a single-column constraint which the
// existing rows break: the versions must then see different values, so the column is
// copied, filled by up and kept in step by triggers (see OpAlterColumn). Without down, the
// new version's values go to the old column as they are. It returns nil for a constraint
// over several columns, a primary key, or one with options alter_column does not have.
func (o *OpCreateConstraint) shadowAlter() *OpAlterColumn {
	if len(o.Columns) != 1 || o.Deferrable || o.NullsNotDistinct || o.IndexParameters != nil {
		return nil
	}
	col := o.Columns[0]
	down, ok := o.Down[col]
	if !ok {
		down = qi(col)
	}
	ac := &OpAlterColumn{Table: o.Table, Column: col, Up: o.Up[col], Down: down}
	switch o.Type {
	case "check":
		ac.Check = &CheckDef{Name: o.Name, Constraint: o.Check, NoInherit: o.NoInherit}
	case "unique":
		ac.Unique = &UniqueDef{Name: o.Name}
	case "foreign_key":
		r := o.References
		if (r.MatchType != "" && r.MatchType != "SIMPLE") || len(r.OnDeleteSetColumns) > 0 {
			return nil
		}
		ac.References = &ReferenceDef{Name: o.Name, Table: r.Table, Column: r.Columns[0], OnDelete: r.OnDelete, OnUpdate: r.OnUpdate}
	default:
		return nil
	}
	return ac
}

// copied returns the alter_column that does the work when validation decided to copy the
// column (the new version's column is stored elsewhere than the old one's), or nil.
func (o *OpCreateConstraint) copied(r *run) *OpAlterColumn {
	ac := o.shadowAlter()
	if ac == nil || ac.Up == "" {
		return nil
	}
	before, after := r.opBefore.Table(o.Table), r.opAfter.Table(o.Table)
	if before == nil || after == nil || before.Column(ac.Column) == nil || after.Column(ac.Column) == nil ||
		before.Column(ac.Column).Physical == after.Column(ac.Column).Physical {
		return nil
	}
	return ac
}

// validateCopy validates copying the constraint's columns, for a constraint that
// existing rows break: the versions must then see different values. The values up
// computes for the existing rows must satisfy the constraint. A single-column check,
// unique or foreign key is what alter_column makes (see shadowAlter); otherwise every
// column is copied as is (see copyAlter) and the constraint is made over the copies.
func (o *OpCreateConstraint) validateCopy(ctx context.Context, v *validator, t *Table, cols []*Column) error {
	for i, c := range cols {
		for _, pk := range t.PrimaryKey {
			if pk == c.Physical {
				return fieldErr("columns", "existing rows break constraint %q, so its columns would be copied, but column %q is part of the primary key of %q; fix the existing rows first", o.Name, o.Columns[i], o.Table)
			}
		}
	}
	broken, err := o.anyViolation(ctx, v, t, o.mappedRows(v, t))
	if err != nil {
		return fieldErr("up", "%v", err)
	}
	if broken != "" {
		return fieldErr("up", "for some existing rows the values up computes still break constraint %q (%s); change up so that every row satisfies it", o.Name, broken)
	}
	before := v.opBefore.Table(o.Table)
	if ac := o.shadowAlter(); ac != nil && ac.Up != "" {
		if err := ac.validate(ctx, v); err != nil {
			return err
		}
		// alter_column copies for a check the rows break; a unique or foreign key it
		// would make in place.
		if c, bc := t.Column(ac.Column), before.Column(ac.Column); c.Physical == bc.Physical {
			c.Physical = shadowName(bc.Physical)
		}
	} else {
		for i := range o.Columns {
			if err := o.copyAlter(before, i).validate(ctx, v); err != nil {
				return err
			}
		}
	}
	var physical []string
	for _, c := range cols {
		physical = append(physical, c.Physical)
	}
	t.addConstraint(o.Name, physical...)
	if o.indexBacked() {
		t.Indexes = append(t.Indexes, o.Name)
	}
	if o.Type == "primary_key" {
		for _, c := range o.Columns {
			t.Column(c).Nullable = false
		}
	}
	return nil
}

// mappedRows is a subquery of the existing rows as up maps them, under the new version's
// column names.
func (o *OpCreateConstraint) mappedRows(v *validator, t *Table) string {
	old := v.opBefore.Table(o.Table)
	var sel []string
	for _, c := range t.Columns {
		oc := old.ColumnByPhysical(c.Physical)
		switch {
		case oc != nil && o.Up[oc.Name] != "":
			sel = append(sel, "("+o.Up[oc.Name]+")::"+c.Type+" AS "+qi(c.Name))
		case oc != nil:
			sel = append(sel, qi(oc.Name)+" AS "+qi(c.Name))
		default:
			sel = append(sel, "NULL::"+c.Type+" AS "+qi(c.Name))
		}
	}
	return "(SELECT " + strings.Join(sel, ", ") + " FROM " + v.rowsSQL(old, nil) + ") AS " + qi(t.Name)
}

// copyAlter is the alter_column that copies column i of the constraint: the same type,
// up (by default the value itself) for the copy, down (likewise) for the old column.
func (o *OpCreateConstraint) copyAlter(before *Table, i int) *OpAlterColumn {
	col := o.Columns[i]
	up, ok := o.Up[col]
	if !ok {
		up = qi(col)
	}
	down, ok := o.Down[col]
	if !ok {
		down = qi(col)
	}
	return &OpAlterColumn{Table: o.Table, Column: col, Type: before.Column(col).Type, Up: up, Down: down}
}

// copiedColumns returns the alter_columns that copy the constraint's columns when
// validation decided to copy several of them (or one, for a primary key or a constraint
// with options alter_column lacks), or nil. Each works under a run of its own (subRun).
func (o *OpCreateConstraint) copiedColumns(r *run) []*OpAlterColumn {
	if o.copied(r) != nil || len(o.Columns) == 0 {
		return nil
	}
	before, after := r.opBefore.Table(o.Table), r.opAfter.Table(o.Table)
	if before == nil || after == nil {
		return nil
	}
	var out []*OpAlterColumn
	for i, c := range o.Columns {
		bc, ac := before.Column(c), after.Column(c)
		if bc == nil || ac == nil || bc.Physical == ac.Physical {
			return nil
		}
		out = append(out, o.copyAlter(before, i))
	}
	return out
}

// subRun is the run under which the copy of column i works: its own trigger, check and
// backfill names and backfill state.
func (o *OpCreateConstraint) subRun(r *run, i int) *run {
	sub := *r
	sub.op = 1_000_000 + r.op*1000 + i
	return &sub
}

func (o *OpCreateConstraint) triggerName(r *run) string { return r.objectName("trg") }
func (o *OpCreateConstraint) uniqueIndex(r *run) string { return r.objectName("uq") }
func (o *OpCreateConstraint) notNullCheck(r *run, i int) string {
	return r.notNullName(o.Columns[i], fmt.Sprint(i))
}

// shape returns the table as the new version sees it after this operation, and the
// physical columns of the constraint.
func (o *OpCreateConstraint) shape(r *run) (*Table, []string) {
	t := r.opAfter.Table(o.Table)
	var cols []string
	for _, c := range o.Columns {
		cols = append(cols, t.Column(c).Physical)
	}
	return t, cols
}

// nullableKeyColumns are the physical primary key columns that are not NOT NULL yet
// (copied columns keep their physical names until complete's final pass).
func (o *OpCreateConstraint) nullableKeyColumns(r *run) []string {
	if o.Type != "primary_key" {
		return nil
	}
	before := r.opBefore.Table(o.Table)
	_, cols := o.shape(r)
	var out []string
	for i, c := range o.Columns {
		if bc := before.Column(c); bc == nil || bc.Nullable {
			out = append(out, cols[i])
		}
	}
	return out
}

func (o *OpCreateConstraint) deferrableSQL() string {
	s := ""
	if o.Deferrable {
		s += " DEFERRABLE"
		if o.InitiallyDeferred {
			s += " INITIALLY DEFERRED"
		}
	}
	return s
}

func (o *OpCreateConstraint) start(ctx context.Context, r *run) error {
	if o.onNewTable(r) {
		return o.startOnNewTable(ctx, r)
	}
	if ac := o.copied(r); ac != nil {
		return ac.start(ctx, r)
	}
	copies := o.copiedColumns(r)
	for i, ac := range copies {
		if err := ac.start(ctx, o.subRun(r, i)); err != nil {
			return err
		}
	}
	t, cols := o.shape(r)
	table := r.table(t.Physical)
	tables := []string{table}
	var stmts []string
	if len(o.Up) > 0 && copies == nil {
		before := r.opBefore.Table(o.Table)
		dw := dualWrite{name: o.triggerName(r), up: mapRule(before, physicalExprs(o.Up, before))}
		trig, err := dw.statements(r, t.Physical)
		if err != nil {
			return err
		}
		stmts = append(stmts, trig...)
	}
	addConstraint := func(name, def string) error { return r.addNotValid(ctx, &stmts, table, name, def) }
	switch o.Type {
	case "check":
		def := "CHECK (" + physicalExpr(o.Check, t) + ")"
		if o.NoInherit {
			def += " NO INHERIT"
		}
		if err := addConstraint(o.Name, def); err != nil {
			return err
		}
	case "foreign_key":
		def, rtable := o.foreignKeySQL(r, t, cols)
		if err := addConstraint(o.Name, def+o.deferrableSQL()); err != nil {
			return err
		}
		if rtable != table {
			tables = append(tables, rtable)
		}
	case "primary_key":
		for i, c := range o.nullableKeyColumns(r) {
			if err := addConstraint(o.notNullCheck(r, i), "CHECK ("+qi(c)+" IS NOT NULL)"); err != nil {
				return err
			}
		}
	}
	// The trigger and the NOT VALID constraints go in one transaction: a row the old
	// version writes in between would otherwise miss the trigger and fail the check.
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, tables, stmts...); err != nil {
			return err
		}
	}
	if o.indexBacked() {
		idx := o.uniqueIndex(r)
		if err := r.m.execConcurrently(ctx, r.schema, idx, o.indexSQL(r, idx, table, t, cols)); err != nil {
			return err
		}
	}
	return nil
}

// foreignKeySQL is the FOREIGN KEY clause of the constraint over the physical columns
// cols of t, and the referenced table, qualified and quoted.
func (o *OpCreateConstraint) foreignKeySQL(r *run, t *Table, cols []string) (def, rtable string) {
	ref := o.References
	rt := r.opAfter.Table(ref.Table)
	var rcols []string
	for _, c := range ref.Columns {
		rcols = append(rcols, rt.Column(c).Physical)
	}
	def = "FOREIGN KEY (" + quoteAll(cols) + ") REFERENCES " + r.table(rt.Physical) + " (" + quoteAll(rcols) + ")"
	if ref.MatchType != "" {
		def += " MATCH " + ref.MatchType
	}
	if ref.OnDelete != "" {
		def += " ON DELETE " + ref.OnDelete
		if len(ref.OnDeleteSetColumns) > 0 {
			var set []string
			for _, c := range ref.OnDeleteSetColumns {
				set = append(set, t.Column(c).Physical)
			}
			def += " (" + quoteAll(set) + ")"
		}
	}
	if ref.OnUpdate != "" {
		def += " ON UPDATE " + ref.OnUpdate
	}
	return def, r.table(rt.Physical)
}

// indexSQL is the CREATE UNIQUE INDEX CONCURRENTLY statement behind a unique or primary
// key constraint.
func (o *OpCreateConstraint) indexSQL(r *run, idx, table string, t *Table, cols []string) string {
	q := "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS " + qi(idx) + " ON " + table + " (" + quoteAll(cols) + ")"
	p := o.IndexParameters
	if p != nil && len(p.IncludeColumns) > 0 {
		var inc []string
		for _, c := range p.IncludeColumns {
			inc = append(inc, t.Column(c).Physical)
		}
		q += " INCLUDE (" + quoteAll(inc) + ")"
	}
	if o.NullsNotDistinct {
		q += " NULLS NOT DISTINCT"
	}
	if p != nil && p.StorageParameters != "" {
		q += " WITH (" + p.StorageParameters + ")"
	}
	if p != nil && p.Tablespace != "" {
		q += " TABLESPACE " + qi(p.Tablespace)
	}
	return q
}

func (o *OpCreateConstraint) complete(ctx context.Context, r *run) error {
	if o.onNewTable(r) {
		return nil // made at start
	}
	if ac := o.copied(r); ac != nil {
		return ac.complete(ctx, r)
	}
	// Copied columns take the old ones' place first.
	copies := o.copiedColumns(r)
	for i, ac := range copies {
		if err := ac.complete(ctx, o.subRun(r, i)); err != nil {
			return err
		}
	}
	t, _ := o.shape(r)
	table := r.table(t.Physical)
	if len(o.Up) > 0 && copies == nil {
		if err := dropTrigger(ctx, r, o.triggerName(r), t.Physical); err != nil {
			return err
		}
	}
	switch o.Type {
	case "check", "foreign_key":
		// VALIDATE takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on meanwhile.
		err := validateConstraint(ctx, r, table, o.Name)
		if isViolation(err) && copies == nil && len(o.Up) > 0 {
			if ferr := o.mapStragglers(ctx, r, t, o.violatingSQL(r, t)); ferr != nil {
				return errors.Join(err, ferr)
			}
			err = validateConstraint(ctx, r, table, o.Name)
		}
		return err
	case "primary_key":
		var stmts []string
		for i, c := range o.nullableKeyColumns(r) {
			name := o.notNullCheck(r, i)
			if ok, err := constraintExists(ctx, r, table, name); err != nil {
				return err
			} else if !ok {
				continue // folded into NOT NULL by an interrupted complete
			}
			err := validateConstraint(ctx, r, table, name)
			if isViolation(err) && copies == nil && len(o.Up) > 0 {
				if ferr := o.mapStragglers(ctx, r, t, "_tandem_t."+qi(c)+" IS NULL"); ferr != nil {
					return errors.Join(err, ferr)
				}
				err = validateConstraint(ctx, r, table, name)
			}
			if err != nil {
				return err
			}
			// With a validated CHECK (col IS NOT NULL), SET NOT NULL skips the scan.
			stmts = append(stmts, "ALTER TABLE "+table+" ALTER COLUMN "+qi(c)+" SET NOT NULL",
				"ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(name))
		}
		if len(stmts) > 0 {
			if err := r.m.execLocked(ctx, []string{table}, stmts...); err != nil {
				return err
			}
		}
	}
	// unique and primary_key: attach the index built at start.
	if ok, err := constraintExists(ctx, r, table, o.Name); err != nil || ok {
		return err
	}
	kind := "UNIQUE"
	if o.Type == "primary_key" {
		kind = "PRIMARY KEY"
	}
	return r.m.execLocked(ctx, []string{table},
		"ALTER TABLE "+table+" ADD CONSTRAINT "+qi(o.Name)+" "+kind+" USING INDEX "+qi(o.uniqueIndex(r))+o.deferrableSQL())
}

// isViolation reports whether err is a check or foreign key violation.
func isViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "23514" || pe.Code == "23503")
}

// violatingSQL is the condition, over the table aliased _tandem_t, of the rows that break
// a check or foreign key made in place.
func (o *OpCreateConstraint) violatingSQL(r *run, t *Table) string {
	_, cols := o.shape(r)
	if o.Type == "check" {
		return "NOT (" + physicalExpr(o.Check, t) + ")"
	}
	ref := o.References
	rt := r.opAfter.Table(ref.Table)
	var notNull, eq []string
	for i, c := range cols {
		notNull = append(notNull, "_tandem_t."+qi(c)+" IS NOT NULL")
		eq = append(eq, "_tandem_ref."+qi(rt.Column(ref.Columns[i]).Physical)+" = _tandem_t."+qi(c))
	}
	missing := "NOT EXISTS (SELECT 1 FROM " + r.table(rt.Physical) + " AS _tandem_ref WHERE " + strings.Join(eq, " AND ") + ")"
	if ref.MatchType == "FULL" {
		return "(" + strings.Join(notNull, " OR ") + ") AND (NOT (" + strings.Join(notNull, " AND ") + ") OR " + missing + ")"
	}
	return strings.Join(notNull, " AND ") + " AND " + missing
}

// mapStragglers applies up to the rows of the table (aliased _tandem_t) that match cond,
// when validating a constraint made in place finds rows that break it. Those can only be
// rows the old version wrote between validation and start installing the trigger and the
// NOT VALID constraint: the trigger would have mapped them, so up maps them now. Once the
// old version is gone, nobody sees the difference.
func (o *OpCreateConstraint) mapStragglers(ctx context.Context, r *run, t *Table, cond string) error {
	before := r.opBefore.Table(o.Table)
	table := r.table(t.Physical)
	var cols, vals, set []string
	for _, c := range before.Columns {
		cols = append(cols, qi(c.Physical)+" AS "+qi(c.Name))
	}
	i := 0
	for _, c := range before.Columns {
		if e, ok := o.Up[c.Name]; ok {
			v := fmt.Sprintf("_tandem_v%d", i)
			vals = append(vals, "("+e+")::"+c.Type+" AS "+v)
			set = append(set, qi(c.Physical)+" = s."+v)
			i++
		}
	}
	q := fmt.Sprintf(`UPDATE %[1]s SET %[2]s
		FROM (SELECT _tandem_ctid, %[3]s
		        FROM (SELECT _tandem_t.ctid AS _tandem_ctid, %[4]s FROM %[1]s AS _tandem_t WHERE %[5]s) AS %[6]s) AS s
		WHERE %[1]s.ctid = s._tandem_ctid`,
		table, strings.Join(set, ", "), strings.Join(vals, ", "), strings.Join(cols, ", "), cond, qi(before.Name))
	if r.m.dry != nil {
		r.m.dry.transaction([]lockCheck{{tables: []string{table}}}, []string{q})
		return nil
	}
	return r.m.lockedTx(ctx, []string{table}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q)
		if err == nil {
			r.m.log.Info("mapped rows written before the trigger through up", "table", t.Name, "constraint", o.Name, "rows", tag.RowsAffected())
		}
		return err
	})
}

func (o *OpCreateConstraint) rollback(ctx context.Context, r *run) error {
	if o.onNewTable(r) {
		return nil // the table's create_table drops it, and the constraint with it
	}
	if ac := o.copied(r); ac != nil {
		return ac.rollback(ctx, r)
	}
	t, _ := o.shape(r)
	table := r.table(t.Physical)
	if err := dropTrigger(ctx, r, o.triggerName(r), t.Physical); err != nil {
		return err
	}
	if o.indexBacked() {
		idx := o.uniqueIndex(r)
		if err := r.m.execConcurrently(ctx, r.schema, idx, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, idx)); err != nil {
			return err
		}
	}
	var stmts []string
	if o.Type == "check" || o.Type == "foreign_key" {
		stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(o.Name))
	}
	for i := range o.nullableKeyColumns(r) {
		stmts = append(stmts, "ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(o.notNullCheck(r, i)))
	}
	if len(stmts) > 0 {
		if err := r.m.execLocked(ctx, []string{table}, stmts...); err != nil {
			return err
		}
	}
	copies := o.copiedColumns(r)
	for i := len(copies) - 1; i >= 0; i-- {
		if err := copies[i].rollback(ctx, o.subRun(r, i)); err != nil {
			return err
		}
	}
	return nil
}
