package lint

import (
	"github.com/tandem-pg/tandem/internal/pgtree"
)

// addedColumn describes one ADD COLUMN subcommand.
type addedColumn struct {
	def         *pgtree.ColumnDef
	dflt        *pgtree.Node // the DEFAULT expression, nil when none
	notNull     bool
	identity    bool
	generated   bool // GENERATED ALWAYS AS (...) STORED
	serial      bool
	constraints []*pgtree.Constraint // CHECK, REFERENCES, UNIQUE, PRIMARY KEY, ...
}

// hasDefault reports whether the column gets a non-NULL value for existing rows.
func (c addedColumn) hasDefault() bool {
	if c.dflt != nil {
		if k := c.dflt.GetAConst(); k != nil && k.Isnull {
			return false
		}
		return true
	}
	return c.identity || c.generated || c.serial
}

// addedColumns returns the ADD COLUMN subcommands of an ALTER TABLE.
func (p *pass) addedColumns() []addedColumn {
	var out []addedColumn
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AddColumn) {
		cd := cmd.Def.GetColumnDef()
		if cd == nil {
			continue
		}
		ac := addedColumn{def: cd, notNull: cd.IsNotNull, dflt: cd.RawDefault, serial: isSerial(cd.TypeName)}
		if cd.Identity != "" {
			ac.identity = true
		}
		if cd.Generated != "" {
			ac.generated = true
		}
		for _, x := range cd.Constraints {
			con := x.GetConstraint()
			if con == nil {
				continue
			}
			switch con.Contype {
			case pgtree.ConstrType_CONSTR_NOTNULL:
				ac.notNull = true
			case pgtree.ConstrType_CONSTR_DEFAULT:
				ac.dflt = con.RawExpr
			case pgtree.ConstrType_CONSTR_IDENTITY:
				ac.identity = true
			case pgtree.ConstrType_CONSTR_GENERATED:
				ac.generated = true
			case pgtree.ConstrType_CONSTR_PRIMARY:
				ac.notNull = true
				ac.constraints = append(ac.constraints, con)
			case pgtree.ConstrType_CONSTR_NULL:
			default:
				ac.constraints = append(ac.constraints, con)
			}
		}
		out = append(out, ac)
	}
	return out
}

// alterKey returns the catalog key of the ALTER TABLE's table, or "".
func (p *pass) alterKey() string {
	if !p.alterKeyDone {
		if a := p.alter(); a != nil {
			p.alterKeyMemo = relKey(a.Relation)
		}
		p.alterKeyDone = true
	}
	return p.alterKeyMemo
}

// existing reports whether the statement's table is one the application already uses
// (not created earlier in this file).
func (p *pass) existing(key string) bool { return key != "" && !p.isNew(key) }
