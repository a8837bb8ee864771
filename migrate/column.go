package migrate

import (
	"context"
	"strings"
)

// ColumnDef is a column in a create_table or add_column operation (pgroll's format).
// As in pgroll, a column is NOT NULL unless nullable is true.
type ColumnDef struct {
	Name       string        `json:"name"`
	Type       string        `json:"type"`
	PK         bool          `json:"pk,omitempty"`
	Unique     bool          `json:"unique,omitempty"`
	Nullable   bool          `json:"nullable,omitempty"`
	Default    *string       `json:"default,omitempty"`
	Check      *CheckDef     `json:"check,omitempty"`
	References *ReferenceDef `json:"references,omitempty"`
	Comment    *string       `json:"comment,omitempty"`
}

// CheckDef is a named CHECK constraint.
type CheckDef struct {
	Name       string `json:"name"`
	Constraint string `json:"constraint"`
	NoInherit  bool   `json:"no_inherit,omitempty"`
}

// ReferenceDef is a single-column foreign key.
type ReferenceDef struct {
	Name     string `json:"name"`
	Table    string `json:"table"`
	Column   string `json:"column"`
	OnDelete string `json:"on_delete,omitempty"`
	OnUpdate string `json:"on_update,omitempty"`
}

var fkActions = map[string]bool{"": true, "NO ACTION": true, "RESTRICT": true, "CASCADE": true, "SET NULL": true, "SET DEFAULT": true}

func (c *ColumnDef) checkFields(prefix string) error {
	if err := required(prefix+"name", c.Name); err != nil {
		return err
	}
	if err := required(prefix+"type", c.Type); err != nil {
		return err
	}
	if c.Check != nil {
		if err := required(prefix+"check.name", c.Check.Name); err != nil {
			return err
		}
		if err := required(prefix+"check.constraint", c.Check.Constraint); err != nil {
			return err
		}
	}
	if r := c.References; r != nil {
		if err := required(prefix+"references.name", r.Name); err != nil {
			return err
		}
		if err := required(prefix+"references.table", r.Table); err != nil {
			return err
		}
		if err := required(prefix+"references.column", r.Column); err != nil {
			return err
		}
		r.OnDelete = strings.ToUpper(strings.TrimSpace(r.OnDelete))
		r.OnUpdate = strings.ToUpper(strings.TrimSpace(r.OnUpdate))
		if !fkActions[r.OnDelete] {
			return fieldErr(prefix+"references.on_delete", "must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT")
		}
		if !fkActions[r.OnUpdate] {
			return fieldErr(prefix+"references.on_update", "must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT")
		}
	}
	return nil
}

// validate checks the column's type, default, check and reference against the database.
// t is the table as the new version sees it, with the column already in it.
func (c *ColumnDef) validate(ctx context.Context, v *validator, prefix string, t *Table) error {
	if _, err := v.checkType(ctx, prefix+"type", c.Type); err != nil {
		return err
	}
	if c.Default != nil {
		if err := v.checkValueExpr(ctx, prefix+"default", *c.Default, c.Type); err != nil {
			return err
		}
	}
	if c.Check != nil {
		if err := v.checkExpr(ctx, prefix+"check.constraint", c.Check.Constraint, t, "boolean"); err != nil {
			return err
		}
	}
	if r := c.References; r != nil {
		rt, err := v.table(prefix+"references.table", r.Table)
		if err != nil {
			return err
		}
		if _, err := v.column(prefix+"references.column", rt, r.Column); err != nil {
			return err
		}
	}
	return nil
}

// referencesSQL is the REFERENCES clause of a foreign key to the new version's table.
func (r *ReferenceDef) referencesSQL(schema string, after *Schema) string {
	t := after.Table(r.Table)
	col := t.Column(r.Column)
	s := "REFERENCES " + qi(schema, t.Physical) + " (" + qi(col.Physical) + ")"
	if r.OnDelete != "" {
		s += " ON DELETE " + r.OnDelete
	}
	if r.OnUpdate != "" {
		s += " ON UPDATE " + r.OnUpdate
	}
	return s
}

// columnShape is the Column the new version sees for c, stored physically as physical.
func (c *ColumnDef) columnShape(physical string) *Column {
	typ := c.Type
	if base := serialBase(typ); base != "" {
		typ = base
	}
	return &Column{Name: c.Name, Physical: physical, Type: typ, Nullable: c.Nullable && !c.PK,
		Default: c.Default, ViewDefault: c.Default}
}
