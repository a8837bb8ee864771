package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "detach-partition-not-concurrent",
		Summary:  "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the partitioned table",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkDetachPartition,
	})
}

func checkDetachPartition(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_DetachPartition) {
		pc := cmd.Def.GetPartitionCmd()
		if pc == nil || pc.Concurrent {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.Message = fmt.Sprintf("DETACH PARTITION %s takes an ACCESS EXCLUSIVE lock on %s: every query on the partitioned table waits",
			displayName(relKey(pc.Name)), displayName(key))
		if p.pgVersion() >= 14 {
			f.Fix = recipe(
				"-- in a file the runner does not wrap in a transaction:",
				fmt.Sprintf("ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY;", qname(key), qname(relKey(pc.Name))))
		} else {
			f.Fix = recipe(
				"-- CONCURRENTLY needs PostgreSQL 14; before that, keep the lock wait short:",
				"SET lock_timeout = '2s';",
				deparse(p.node)+";")
		}
		p.report(r, f)
	}
}
