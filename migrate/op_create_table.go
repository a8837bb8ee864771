package migrate

import (
	"context"
	"fmt"
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
	Name       string   `json:"name"`
	Type       string   `json:"type"` // unique, check, primary_key, foreign_key
	Columns    []string `json:"columns,omitempty"`
	Check      string   `json:"check,omitempty"`
	References *struct {
		Table    string   `json:"table"`
		Columns  []string `json:"columns"`
		OnDelete string   `json:"on_delete,omitempty"`
		OnUpdate string   `json:"on_update,omitempty"`
	} `json:"references,omitempty"`
	NullsNotDistinct bool `json:"nulls_not_distinct,omitempty"`
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
		default:
			return fieldErr(f+"type", "must be one of unique, check, primary_key, foreign_key")
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
	if v.after.physicalTableTaken(o.Name) || v.before.physicalTableTaken(o.Name) {
		return fieldErr("name", "a table named %q still exists physically (renamed or dropped in this migration); choose another name", o.Name)
	}
	t := &Table{Name: o.Name, Physical: o.Name}
	for _, c := range o.Columns {
		t.Columns = append(t.Columns, c.columnShape(c.Name))
		if c.PK {
			t.PrimaryKey = append(t.PrimaryKey, c.Name)
		}
	}
	for _, k := range o.Constraints {
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
		cols := quoteAll(k.Columns)
		switch k.Type {
		case "unique":
			nnd := ""
			if k.NullsNotDistinct {
				nnd = " NULLS NOT DISTINCT"
			}
			defs = append(defs, "CONSTRAINT "+qi(k.Name)+" UNIQUE"+nnd+" ("+cols+")")
		case "primary_key":
			defs = append(defs, "CONSTRAINT "+qi(k.Name)+" PRIMARY KEY ("+cols+")")
		case "check":
			defs = append(defs, "CONSTRAINT "+qi(k.Name)+" CHECK ("+k.Check+")")
		case "foreign_key":
			rt := r.opAfter.Table(k.References.Table)
			var rcols []string
			for _, c := range k.References.Columns {
				rcols = append(rcols, rt.Column(c).Physical)
			}
			fk := "CONSTRAINT " + qi(k.Name) + " FOREIGN KEY (" + cols + ") REFERENCES " + r.table(rt.Physical) + " (" + quoteAll(rcols) + ")"
			if a := strings.ToUpper(k.References.OnDelete); a != "" {
				fk += " ON DELETE " + a
			}
			if a := strings.ToUpper(k.References.OnUpdate); a != "" {
				fk += " ON UPDATE " + a
			}
			defs = append(defs, fk)
			refTables = append(refTables, r.table(rt.Physical))
		}
	}
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + r.table(o.Name) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"}
	if o.Comment != nil {
		stmts = append(stmts, "COMMENT ON TABLE "+r.table(o.Name)+" IS "+ql(*o.Comment))
	}
	for _, c := range o.Columns {
		if c.Comment != nil {
			stmts = append(stmts, "COMMENT ON COLUMN "+r.table(o.Name)+"."+qi(c.Name)+" IS "+ql(*c.Comment))
		}
	}
	if err := r.m.execLocked(ctx, refTables, stmts...); err != nil {
		return err
	}
	// Serial and identity columns: the view needs the default the catalog now has.
	created, err := readSchema(ctx, r.m.conn, r.schema)
	if err != nil {
		return err
	}
	if ct, nt := created.Table(o.Name), r.final(o.Name); ct != nil && nt != nil {
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
	return r.m.execLocked(ctx, nil, "DROP TABLE IF EXISTS "+r.table(o.Name))
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = qi(n)
	}
	return strings.Join(q, ", ")
}
