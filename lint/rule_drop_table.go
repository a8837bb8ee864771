package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "drop-table",
		Summary:  "DROP TABLE breaks the application version still running, which uses the table",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkDropTable,
	})
}

func checkDropTable(p *pass, r *Rule) {
	s := p.node.GetDropStmt()
	if s == nil || s.RemoveType != pgtree.ObjectType_OBJECT_TABLE {
		return
	}
	for _, key := range dropKeys(s) {
		if !p.existing(key) {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Message = fmt.Sprintf("dropping %s breaks the version still running, whose queries on it fail", displayName(key))
		f.Fix = recipe(
			"-- 1. release an application version that no longer uses the table;",
			"-- 2. once no instance of the older version runs, drop it in a later migration:",
			"SET lock_timeout = '2s';",
			fmt.Sprintf("DROP TABLE %s;", qname(key)))
		p.report(r, f)
	}
}
