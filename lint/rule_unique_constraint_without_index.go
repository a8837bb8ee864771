package lint

import (
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "unique-constraint-without-index",
		Summary:  "adding a UNIQUE or PRIMARY KEY constraint builds its index under an ACCESS EXCLUSIVE lock unless it is added USING INDEX",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkUniqueWithoutIndex,
	})
}

func checkUniqueWithoutIndex(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	var cons []*pgtree.Constraint
	var cols [][]string
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AddConstraint) {
		if con := cmd.Def.GetConstraint(); con != nil {
			cons = append(cons, con)
			cols = append(cols, nameList(con.Keys))
		}
	}
	for _, c := range p.addedColumns() {
		for _, con := range c.constraints {
			cons = append(cons, con)
			cols = append(cols, []string{c.def.Colname})
		}
	}
	for i, con := range cons {
		if con.Indexname != "" {
			continue
		}
		kind := ""
		switch con.Contype {
		case pgtree.ConstrType_CONSTR_UNIQUE:
			kind = "UNIQUE"
		case pgtree.ConstrType_CONSTR_PRIMARY:
			kind = "PRIMARY KEY"
		default:
			continue
		}
		tbl := qname(key)
		name := con.Conname
		if name == "" {
			k := conUnique
			if kind == "PRIMARY KEY" {
				k = conPrimary
			}
			name = defaultConstraintName(displayName(key), k, cols[i], con)
		}
		quoted := make([]string, len(cols[i]))
		for j, c := range cols[i] {
			quoted[j] = ident(c)
		}
		f := p.finding(key, lockAccessExclusive)
		f.Message = fmt.Sprintf("adding a %s constraint builds its index on %s%s while holding an ACCESS EXCLUSIVE lock",
			kind, displayName(key), p.sizeNote(key))
		lines := []string{
			"-- in a file the runner does not wrap in a transaction:",
			fmt.Sprintf("CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s);", ident(name), tbl, strings.Join(quoted, ", ")),
		}
		if kind == "PRIMARY KEY" {
			lines = append(lines, "-- the key columns must already be NOT NULL (see set-not-null-scan)")
		}
		lines = append(lines, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s;", tbl, ident(name), kind, ident(name)))
		f.Fix = recipe(lines...)
		p.report(r, f)
	}
}
