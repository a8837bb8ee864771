package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// OpCreateTable creates a table. The old version does not see it; rollback drops it.
type OpCreateTable struct {
	Name        string            `json:"name"`
	Columns     []ColumnDef       `json:"columns"`
	Constraints []TableConstraint `json:"constraints,omitempty"`
	Comment     *string           `json:"comment,omitempty"`
}

// TableConstraint is a table-level constraint of create_table.
type TableConstraint struct {
	Name              string               `json:"name"`
	Type              string               `json:"type"` // unique, check, primary_key, foreign_key, exclude
	Columns           []string             `json:"columns,omitempty"`
	Check             string               `json:"check,omitempty"`
	References        *ConstraintReference `json:"references,omitempty"`
	NullsNotDistinct  bool                 `json:"nulls_not_distinct,omitempty"`
	Deferrable        bool                 `json:"deferrable,omitempty"`
	InitiallyDeferred bool                 `json:"initially_deferred,omitempty"`
	NoInherit         bool                 `json:"no_inherit,omitempty"`
	IndexParameters   *IndexParameters     `json:"index_parameters,omitempty"`
	Exclude           *ExcludeDef          `json:"exclude,omitempty"`
}

// ExcludeDef is an exclusion constraint: EXCLUDE USING index_method (elements) WHERE
// (predicate).
type ExcludeDef struct {
	IndexMethod string `json:"index_method,omitempty"`
	Elements    string `json:"elements"`
	Predicate   string `json:"predicate,omitempty"`
}

// Kind implements Operation.
func (o *OpCreateTable) Kind() string { return "create_table" }

func (o *OpCreateTable) checkFields() error {
	if err := required("name", o.Name); err != nil {
		return err
	}
	if len(o.Columns) == 0 {
		return fieldErr("columns", "a table needs at least one column")
	}
	seen := map[string]bool{}
	for i := range o.Columns {
		c := &o.Columns[i]
		if err := c.checkFields(fmt.Sprintf("columns[%d].", i)); err != nil {
			return err
		}
		if seen[c.Name] {
			return fieldErr(fmt.Sprintf("columns[%d].name", i), "column %q is defined twice", c.Name)
		}
		seen[c.Name] = true
	}
	for i, k := range o.Constraints {
		f := fmt.Sprintf("constraints[%d].", i)
		if err := required(f+"name", k.Name); err != nil {
			return err
		}
		switch k.Type {
		case "unique", "primary_key":
			if len(k.Columns) == 0 {
				return fieldErr(f+"columns", "required for a %s constraint", k.Type)
			}
		case "check":
			if err := required(f+"check", k.Check); err != nil {
				return err
			}
		case "foreign_key":
			if len(k.Columns) == 0 || k.References == nil || k.References.Table == "" || len(k.References.Columns) != len(k.Columns) {
				return fieldErr(f+"references", "a foreign_key constraint needs columns and references {table, columns} of the same length")
			}
			for _, a := range []string{k.References.OnDelete, k.References.OnUpdate} {
				if !fkActions[strings.ToUpper(a)] {
					return fieldErr(f+"references", "on_delete/on_update must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT")
				}
			}
			k.References.MatchType = strings.ToUpper(strings.TrimSpace(k.References.MatchType))
			if !matchTypes[k.References.MatchType] {
				return fieldErr(f+"references.match_type", "must be one of SIMPLE, FULL, PARTIAL")
			}
			for _, c := range k.References.OnDeleteSetColumns {
				if !slices.Contains(k.Columns, c) {
					return fieldErr(f+"references.on_delete_set_columns", "column %q is not one of the constraint's columns", c)
				}
			}
		case "exclude":
			if k.Exclude == nil || strings.TrimSpace(k.Exclude.Elements) == "" {
				return fieldErr(f+"exclude.elements", "required for an exclude constraint")
			}
			if err := checkExcludeElements(k.Exclude.Elements); err != nil {
				return fieldErr(f+"exclude.elements", "%q: %v", k.Exclude.Elements, err)
			}
			if m := k.Exclude.IndexMethod; m != "" && !indexMethods[strings.ToLower(m)] {
				return fieldErr(f+"exclude.index_method", "%q is not an index method", m)
			}
			if k.Exclude.Predicate != "" {
				if err := checkExpr(k.Exclude.Predicate); err != nil {
					return fieldErr(f+"exclude.predicate", "%v", err)
				}
			}
		default:
			return fieldErr(f+"type", "must be one of unique, check, primary_key, foreign_key, exclude")
		}
		if k.InitiallyDeferred && !k.Deferrable {
			return fieldErr(f+"initially_deferred", "needs deferrable: true")
		}
		if p := k.IndexParameters; p != nil {
			if k.Type != "unique" && k.Type != "primary_key" && k.Type != "exclude" {
				return fieldErr(f+"index_parameters", "only a unique, primary key or exclude constraint has an index")
			}
			if p.StorageParameters != "" {
				if err := checkStorageParameters(p.StorageParameters); err != nil {
					return fieldErr(f+"index_parameters.storage_parameters", "%v", err)
				}
			}
			for _, c := range p.IncludeColumns {
				if !seen[c] {
					return fieldErr(f+"index_parameters.include_columns", "column %q is not a column of the table", c)
				}
			}
		}
		for _, c := range k.Columns {
			if !seen[c] {
				return fieldErr(f+"columns", "column %q is not a column of the table", c)
			}
		}
	}
	return nil
}

func (o *OpCreateTable) validate(ctx context.Context, v *validator) error {
	if v.after.Table(o.Name) != nil {
		return fieldErr("name", "table %q already exists", o.Name)
	}
	if v.after.physicalTableTaken(o.Name) {
		return fieldErr("name", "a table named %q still exists physically (renamed in this migration) until it completes; choose another name", o.Name)
	}
	physical := o.Name
	if v.before.physicalTableTaken(o.Name) {
		// Dropped earlier in this migration: the old version still uses it until complete.
		// The new table lives under a name of its own until complete's renames.
		physical = tempTableName(o.Name)
	}
	t := &Table{Name: o.Name, Physical: physical}
	for _, c := range o.Columns {
		t.Columns = append(t.Columns, c.columnShape(c.Name))
		if c.PK {
			t.PrimaryKey = append(t.PrimaryKey, c.Name)
		}
	}
	for _, c := range o.Columns {
		if c.Check != nil {
			t.addConstraint(c.Check.Name, c.Name)
		}
	}
	o.addDefaultNames(t)
	for _, k := range o.Constraints {
		t.addConstraint(k.Name, k.Columns...)
		if k.Type == "unique" || k.Type == "primary_key" || k.Type == "exclude" {
			t.Indexes = append(t.Indexes, k.Name)
		}
		if k.Type == "primary_key" {
			if len(t.PrimaryKey) > 0 {
				return fieldErr("constraints", "the table has a primary key from its columns (pk: true) already")
			}
			t.PrimaryKey = k.Columns
		}
	}
	v.after.Tables[o.Name] = t
	for i := range o.Columns {
		if err := o.Columns[i].validate(ctx, v, fmt.Sprintf("columns[%d].", i), t); err != nil {
			return err
		}
	}
	for i, k := range o.Constraints {
		f := fmt.Sprintf("constraints[%d].", i)
		if k.Type == "check" {
			if err := v.checkExpr(ctx, f+"check", k.Check, t, "boolean"); err != nil {
				return err
			}
		}
		if k.Type == "foreign_key" {
			rt, err := v.table(f+"references.table", k.References.Table)
			if err != nil {
				return err
			}
			for _, c := range k.References.Columns {
				if _, err := v.column(f+"references.columns", rt, c); err != nil {
					return err
				}
			}
		}
	}
	// Serial columns get their defaults from the catalog once created.
	for _, c := range t.Columns {
		if base := serialBase(c.Type); base != "" {
			c.Type, c.Default, c.ViewDefault = base, nil, nil
		}
	}
	return nil
}

func isSerial(typ string) bool { return serialBase(typ) != "" }

// serialBase is the integer type behind a serial pseudo-type, or "".
func serialBase(typ string) string {
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "serial", "serial4":
		return "integer"
	case "bigserial", "serial8":
		return "bigint"
	case "smallserial", "serial2":
		return "smallint"
	}
	return ""
}

func (o *OpCreateTable) start(ctx context.Context, r *run) error {
	var defs, refTables []string
	var pk []string
	for _, c := range o.Columns {
		d := qi(c.Name) + " " + c.Type
		if !c.Nullable || c.PK {
			d += " NOT NULL"
		}
		if c.Default != nil {
			d += " DEFAULT " + *c.Default
		}
		if c.Generated != nil {
			d += c.Generated.sql()
		}
		if c.Unique {
			d += " UNIQUE"
		}
		if c.Check != nil {
			d += " CONSTRAINT " + qi(c.Check.Name) + " CHECK (" + c.Check.Constraint + ")"
			if c.Check.NoInherit {
				d += " NO INHERIT"
			}
		}
		if ref := c.References; ref != nil {
			d += " CONSTRAINT " + qi(ref.Name) + " " + ref.referencesSQL(r.schema, r.opAfter)
			refTables = append(refTables, r.table(r.opAfter.Table(ref.Table).Physical))
		}
		if c.PK {
			pk = append(pk, qi(c.Name))
		}
		defs = append(defs, d)
	}
	if len(pk) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(pk, ", ")+")")
	}
	for _, k := range o.Constraints {
		def, ref := k.sql(r)
		defs = append(defs, def)
		if ref != "" {
			refTables = append(refTables, ref)
		}
	}
	table := r.table(r.opAfter.Table(o.Name).Physical)
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + table + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"}
	if o.Comment != nil {
		stmts = append(stmts, "COMMENT ON TABLE "+table+" IS "+ql(*o.Comment))
	}
	for _, c := range o.Columns {
		if c.Comment != nil {
			stmts = append(stmts, "COMMENT ON COLUMN "+table+"."+qi(c.Name)+" IS "+ql(*c.Comment))
		}
	}
	if err := r.m.execLocked(ctx, refTables, stmts...); err != nil {
		return err
	}
	if r.m.dry != nil {
		return nil // planned, not made: there is no catalog to read
	}
	// Serial and identity columns: the view needs the default the catalog now has.
	created, err := readSchema(ctx, r.m.conn, r.schema)
	if err != nil {
		return err
	}
	physical := r.opAfter.Table(o.Name).Physical
	if ct, nt := created.Table(physical), r.final(physical); ct != nil && nt != nil {
		for _, c := range nt.Columns {
			if cc := ct.Column(c.Physical); cc != nil {
				c.Default, c.ViewDefault = cc.Default, cc.ViewDefault
			}
		}
		nt.Indexes, nt.Constraints = ct.Indexes, ct.Constraints
	}
	return r.m.st.setAfter(ctx, r.m.conn, r.rec.Name, r.after)
}

func (o *OpCreateTable) complete(ctx context.Context, r *run) error { return nil }

func (o *OpCreateTable) rollback(ctx context.Context, r *run) error {
	return r.m.execLocked(ctx, nil, "DROP TABLE IF EXISTS "+r.table(r.opAfter.Table(o.Name).Physical))
}

// sql is the constraint's clause in CREATE TABLE, and the table it references (qualified
// and quoted), if any.
func (k *TableConstraint) sql(r *run) (def, refTable string) {
	cols := quoteAll(k.Columns)
	def = "CONSTRAINT " + qi(k.Name) + " "
	switch k.Type {
	case "unique":
		def += "UNIQUE"
		if k.NullsNotDistinct {
			def += " NULLS NOT DISTINCT"
		}
		def += " (" + cols + ")" + k.IndexParameters.sql()
	case "primary_key":
		def += "PRIMARY KEY (" + cols + ")" + k.IndexParameters.sql()
	case "check":
		def += "CHECK (" + k.Check + ")"
		if k.NoInherit {
			def += " NO INHERIT"
		}
	case "exclude":
		def += "EXCLUDE"
		if k.Exclude.IndexMethod != "" {
			def += " USING " + strings.ToLower(k.Exclude.IndexMethod)
		}
		def += " (" + k.Exclude.Elements + ")" + k.IndexParameters.sql()
		if k.Exclude.Predicate != "" {
			def += " WHERE (" + k.Exclude.Predicate + ")"
		}
	case "foreign_key":
		ref := k.References
		rt := r.opAfter.Table(ref.Table)
		var rcols []string
		for _, c := range ref.Columns {
			rcols = append(rcols, rt.Column(c).Physical)
		}
		refTable = r.table(rt.Physical)
		def += "FOREIGN KEY (" + cols + ") REFERENCES " + refTable + " (" + quoteAll(rcols) + ")"
		if ref.MatchType != "" {
			def += " MATCH " + ref.MatchType
		}
		if a := strings.ToUpper(ref.OnDelete); a != "" {
			def += " ON DELETE " + a
			if len(ref.OnDeleteSetColumns) > 0 {
				def += " (" + quoteAll(ref.OnDeleteSetColumns) + ")"
			}
		}
		if a := strings.ToUpper(ref.OnUpdate); a != "" {
			def += " ON UPDATE " + a
		}
	}
	if k.Deferrable {
		def += " DEFERRABLE"
		if k.InitiallyDeferred {
			def += " INITIALLY DEFERRED"
		}
	}
	return def, refTable
}

// sql is the index clause of a unique, primary key or exclude constraint: INCLUDE, WITH
// and USING INDEX TABLESPACE; "" for nil.
func (p *IndexParameters) sql() string {
	if p == nil {
		return ""
	}
	s := ""
	if len(p.IncludeColumns) > 0 {
		s += " INCLUDE (" + quoteAll(p.IncludeColumns) + ")"
	}
	if p.StorageParameters != "" {
		s += " WITH (" + p.StorageParameters + ")"
	}
	if p.Tablespace != "" {
		s += " USING INDEX TABLESPACE " + qi(p.Tablespace)
	}
	return s
}

// tempTablePrefix starts the physical name of a table created while a dropped table of
// its name still exists; complete renames it and the objects named after it.
const tempTablePrefix = "_tandem_tbl_"

// tempTableName is the physical name of a new table called name while a table of that
// name still exists.
// addDefaultNames records in t the names PostgreSQL gives the primary key and the
// unique constraints that the columns declare without a name (table_pkey,
// table_column_key), so that later operations of the migration can refer to them. A name
// PostgreSQL would shorten or number is left out: the catalog decides it.
func (o *OpCreateTable) addDefaultNames(t *Table) {
	if t.Physical != o.Name {
		return // created under a temporary name until complete
	}
	add := func(name string, cols ...string) {
		if len(name) <= maxIdentifier && !t.hasConstraint(name) && !t.hasIndex(name) {
			t.addConstraint(name, cols...)
			t.Indexes = append(t.Indexes, name)
		}
	}
	if len(t.PrimaryKey) > 0 {
		add(o.Name+"_pkey", t.PrimaryKey...)
	}
	for _, c := range o.Columns {
		if c.Unique && !c.PK {
			add(o.Name+"_"+c.Name+"_key", c.Name)
		}
	}
}

func tempTableName(name string) string { return shortName(tempTablePrefix, name) }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = qi(n)
	}
	return strings.Join(q, ", ")
}
