package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "concurrently-in-transaction",
		Summary:  "a CONCURRENTLY operation inside a transaction fails: it cannot run in a transaction block",
		Category: CategoryTransactions,
		Severity: SeverityError,
		check:    checkConcurrentlyInTransaction,
	})
}

// concurrentOp names the statement's CONCURRENTLY operation that cannot run in a
// transaction block, or "".
func (p *pass) concurrentOp() string {
	switch {
	case p.node.GetIndexStmt() != nil && p.node.GetIndexStmt().Concurrent:
		return "CREATE INDEX CONCURRENTLY"
	case p.node.GetDropStmt() != nil && p.node.GetDropStmt().Concurrent:
		return "DROP INDEX CONCURRENTLY"
	case p.node.GetReindexStmt() != nil && hasOption(p.node.GetReindexStmt().Params, "concurrently"):
		return "REINDEX CONCURRENTLY"
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_DetachPartition) {
		if pc := cmd.Def.GetPartitionCmd(); pc != nil && pc.Concurrent {
			return "DETACH PARTITION CONCURRENTLY"
		}
	}
	return ""
}

// txDescription says why the statement runs in a transaction.
func (p *pass) txDescription() string {
	if p.e.tx == nil {
		return ""
	}
	if p.e.tx.explicit {
		return fmt.Sprintf("inside the transaction begun at line %d", p.e.tx.line)
	}
	if len(p.e.file.changesets) > 0 {
		return "in the transaction Liquibase runs this changeset in (add runInTransaction:false to its --changeset line)"
	}
	return "in the single transaction the migration runner wraps this file in"
}

func checkConcurrentlyInTransaction(p *pass, r *Rule) {
	op := p.concurrentOp()
	if op == "" || !p.inTx() {
		return
	}
	f := p.finding("", lockNone)
	f.Message = fmt.Sprintf("%s runs %s and fails with \"cannot run inside a transaction block\"", op, p.txDescription())
	if p.e.file.flywayMixed && !p.e.tx.explicit {
		f.Message = fmt.Sprintf("%s is in a Flyway migration with other statements: Flyway runs a migration without "+
			"a transaction only when every statement in it needs that, and refuses this one unless configured with "+
			"mixed=true (which then runs all of it without a transaction)", op)
		f.Fix = recipe(
			"-- a migration of its own, with no other statement; Flyway runs it without a transaction:",
			p.st.text+";")
		p.report(r, f)
		return
	}
	if p.e.tx.explicit {
		f.Fix = recipe(
			"COMMIT;  -- end the transaction first",
			p.st.text+";")
	} else {
		f.Fix = recipe(
			"-- put the statement in a file of its own and tell the runner not to wrap it, e.g.:",
			"-- +goose NO TRANSACTION      (goose)",
			"-- atlas:txmode none          (atlas)",
			"-- no-transaction             (sqlx)",
			"-- migrate:up transaction:false (dbmate)",
			p.st.text+";")
	}
	p.report(r, f)
}
