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
	Generated  *GeneratedDef `json:"generated,omitempty"`
}

// GeneratedDef makes a column generated: a stored generated column computed by
// expression, or an identity column.
type GeneratedDef struct {
	Expression string       `json:"expression,omitempty"`
	Identity   *IdentityDef `json:"identity,omitempty"`
}

// IdentityDef makes an identity column.
type IdentityDef struct {
	// SequenceOptions are options of CREATE SEQUENCE, e.g. "START 100 INCREMENT 10".
	SequenceOptions string `json:"sequence_options,omitempty"`
	// UserSpecifiedValues is ALWAYS (the default) or BY DEFAULT.
	UserSpecifiedValues string `json:"user_specified_values,omitempty"`
}

// sql is the column's GENERATED clause.
func (g *GeneratedDef) sql() string {
	if g.Expression != "" {
		return " GENERATED ALWAYS AS (" + g.Expression + ") STORED"
	}
	s := " GENERATED " + g.Identity.UserSpecifiedValues + " AS IDENTITY"
	if g.Identity.SequenceOptions != "" {
		s += " (" + g.Identity.SequenceOptions + ")"
	}
	return s
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
	// MatchType is SIMPLE (the default), FULL or PARTIAL.
	MatchType         string `json:"match_type,omitempty"`
	Deferrable        bool   `json:"deferrable,omitempty"`
	InitiallyDeferred bool   `json:"initially_deferred,omitempty"`
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
	if g := c.Generated; g != nil {
		switch {
		case (g.Expression == "") == (g.Identity == nil):
			return fieldErr(prefix+"generated", "give either expression (a stored generated column) or identity")
		case c.Default != nil:
			return fieldErr(prefix+"default", "a generated column has no default")
		case g.Expression != "":
			if err := checkExpr(g.Expression); err != nil {
				return fieldErr(prefix+"generated.expression", "%v", err)
			}
		default:
			id := g.Identity
			id.UserSpecifiedValues = strings.ToUpper(strings.Join(strings.Fields(id.UserSpecifiedValues), " "))
			if id.UserSpecifiedValues == "" {
				id.UserSpecifiedValues = "ALWAYS"
			}
			if id.UserSpecifiedValues != "ALWAYS" && id.UserSpecifiedValues != "BY DEFAULT" {
				return fieldErr(prefix+"generated.identity.user_specified_values", "must be ALWAYS or BY DEFAULT")
			}
			if id.SequenceOptions != "" {
				if err := checkSequenceOptions(id.SequenceOptions); err != nil {
					return fieldErr(prefix+"generated.identity.sequence_options", "%q: %v", id.SequenceOptions, err)
				}
			}
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
		r.MatchType = strings.ToUpper(strings.TrimSpace(r.MatchType))
		if !matchTypes[r.MatchType] {
			return fieldErr(prefix+"references.match_type", "must be one of SIMPLE, FULL, PARTIAL")
		}
		if r.InitiallyDeferred && !r.Deferrable {
			return fieldErr(prefix+"references.initially_deferred", "needs deferrable: true")
		}
	}
	return nil
}

var matchTypes = map[string]bool{"": true, "SIMPLE": true, "FULL": true, "PARTIAL": true}

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
	if g := c.Generated; g != nil && g.Expression != "" {
		if err := v.checkExpr(ctx, prefix+"generated.expression", g.Expression, t, c.Type); err != nil {
			return err
		}
	}
	if g := c.Generated; g != nil && g.Identity != nil {
		var ok bool
		if err := v.tx.QueryRow(ctx, "SELECT $1::regtype IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)", c.Type).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fieldErr(prefix+"type", "an identity column must be smallint, integer or bigint, not %s", c.Type)
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
	if r.MatchType != "" {
		s += " MATCH " + r.MatchType
	}
	if r.OnDelete != "" {
		s += " ON DELETE " + r.OnDelete
	}
	if r.OnUpdate != "" {
		s += " ON UPDATE " + r.OnUpdate
	}
	if r.Deferrable {
		s += " DEFERRABLE"
		if r.InitiallyDeferred {
			s += " INITIALLY DEFERRED"
		}
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
		Default: c.Default, ViewDefault: c.Default, Generated: c.Generated != nil && c.Generated.Expression != ""}
}
