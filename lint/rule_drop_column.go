package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "drop-column",
		Summary:  "DROP COLUMN breaks the application version still running, which reads or writes the column",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkDropColumn,
	})
}

func checkDropColumn(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_DropColumn) {
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Message = fmt.Sprintf("dropping %s.%s breaks the version still running: its queries that name the column (or use SELECT * into a fixed struct) fail",
			displayName(key), cmd.Name)
		f.Fix = recipe(
			"-- 1. release an application version that no longer reads or writes the column;",
			"-- 2. once no instance of the older version runs, drop it in a later migration:",
			"SET lock_timeout = '2s';",
			fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", qname(key), ident(cmd.Name)))
		p.report(r, f)
	}
}
