package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "constraint-without-not-valid",
		Summary:  "adding a CHECK or FOREIGN KEY constraint without NOT VALID scans the table under a lock that blocks writes",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkConstraintWithoutNotValid,
	})
}

func checkConstraintWithoutNotValid(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	tbl := qname(key)
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AddConstraint) {
		con := cmd.Def.GetConstraint()
		if con == nil || con.SkipValidation {
			continue
		}
		var f Finding
		switch con.Contype {
		case pgtree.ConstrType_CONSTR_CHECK:
			f = p.finding(key, lockAccessExclusive)
			f.Message = fmt.Sprintf("adding a CHECK constraint without NOT VALID scans all of %s%s while holding an ACCESS EXCLUSIVE lock",
				displayName(key), p.sizeNote(key))
		case pgtree.ConstrType_CONSTR_FOREIGN:
			f = p.finding(key, lockShareRowExclusive)
			f.Message = fmt.Sprintf("adding a FOREIGN KEY without NOT VALID scans all of %s%s while holding SHARE ROW EXCLUSIVE locks on it and on %s, blocking writes to both",
				displayName(key), p.sizeNote(key), displayName(relKey(con.Pktable)))
		default:
			continue
		}
		name := con.Conname
		if name == "" {
			name = defaultConstraintName(displayName(key), map[pgtree.ConstrType]conKind{
				pgtree.ConstrType_CONSTR_CHECK: conCheck, pgtree.ConstrType_CONSTR_FOREIGN: conForeign}[con.Contype], nil, con)
		}
		notValid := rewritten(p.node, func(n *pgtree.Node) func() {
			a := n.GetAlterTableStmt()
			cmds := a.Cmds
			var keep []*pgtree.Node
			var undo []func()
			for _, c := range a.Cmds {
				if c.GetAlterTableCmd().GetDef().GetConstraint() != nil && c.GetAlterTableCmd().Subtype == cmd.Subtype &&
					c.GetAlterTableCmd().Def.GetConstraint().Location == con.Location {
					cc := c.GetAlterTableCmd().Def.GetConstraint()
					skip, valid, name0 := cc.SkipValidation, cc.InitiallyValid, cc.Conname
					undo = append(undo, func() { cc.SkipValidation, cc.InitiallyValid, cc.Conname = skip, valid, name0 })
					cc.SkipValidation = true
					cc.InitiallyValid = false
					if cc.Conname == "" {
						cc.Conname = name
					}
					keep = append(keep, c)
				}
			}
			a.Cmds = keep
			return func() {
				a.Cmds = cmds
				for _, u := range undo {
					u()
				}
			}
		})
		f.Fix = recipe(
			notValid+";  -- brief lock, no scan",
			"-- in the next migration file (a later transaction):",
			fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- SHARE UPDATE EXCLUSIVE: reads and writes continue", tbl, ident(name)))
		p.report(r, f)
	}
	for _, c := range p.addedColumns() {
		for _, con := range c.constraints {
			if con.Contype != pgtree.ConstrType_CONSTR_CHECK && con.Contype != pgtree.ConstrType_CONSTR_FOREIGN {
				continue
			}
			kind, suffix := "CHECK", "check"
			if con.Contype == pgtree.ConstrType_CONSTR_FOREIGN {
				kind, suffix = "REFERENCES", "fkey"
			}
			name := ident(displayName(key) + "_" + c.def.Colname + "_" + suffix)
			f := p.finding(key, lockAccessExclusive)
			f.Message = fmt.Sprintf("ADD COLUMN %s with an inline %s constraint checks every existing row of %s%s under an ACCESS EXCLUSIVE lock",
				c.def.Colname, kind, displayName(key), p.sizeNote(key))
			f.Fix = recipe(
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tbl, ident(c.def.Colname), typeSQL(c.def.TypeName)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID;", tbl, name, constraintBody(con, c.def.Colname)),
				"-- in the next migration file (a later transaction):",
				fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s;", tbl, name))
			p.report(r, f)
		}
	}
}

// constraintBody renders an inline column constraint as a table constraint body.
func constraintBody(con *pgtree.Constraint, col string) string {
	if con.Contype == pgtree.ConstrType_CONSTR_CHECK {
		return "CHECK (" + deparseExpr(con.RawExpr, "...") + ")"
	}
	target := qname(relKey(con.Pktable))
	if cols := nameList(con.PkAttrs); len(cols) > 0 {
		target += " (" + cols[0] + ")"
	}
	return fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s", ident(col), target)
}
