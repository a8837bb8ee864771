package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "exclude-constraint",
		Summary:  "adding an EXCLUDE constraint to an existing table builds its index under an ACCESS EXCLUSIVE lock; it cannot be built concurrently",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkExcludeConstraint,
	})
}

func checkExcludeConstraint(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AddConstraint) {
		con := cmd.Def.GetConstraint()
		if con == nil || con.Contype != pgtree.ConstrType_CONSTR_EXCLUSION {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.Message = fmt.Sprintf("adding an EXCLUDE constraint builds its index and checks every row of %s%s under an ACCESS EXCLUSIVE lock; PostgreSQL has no concurrent way to add one",
			displayName(key), p.sizeNote(key))
		f.Fix = recipe(
			"-- there is no online way to add an EXCLUDE constraint to a populated table.",
			"-- declare it when the table is created, or create a new table with the constraint,",
			"-- copy the rows in batches and switch over; or run it in a maintenance window with:",
			"SET lock_timeout = '2s';",
			deparse(p.node)+";")
		p.report(r, f)
	}
}
