package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "statement-timeout",
		Summary:  "statement_timeout policy: unset before locking DDL, or short enough to cancel a long online operation",
		Category: CategoryTransactions,
		Severity: SeverityWarning,
		check:    checkStatementTimeout,
		late:     true,
	})
}

// longOnline reports whether the statement is a long operation that is safe to run online
// (it does not block traffic) and must not be cancelled midway.
func (p *pass) longOnline() string {
	switch {
	case p.node.GetIndexStmt() != nil && p.node.GetIndexStmt().Concurrent:
		return "CREATE INDEX CONCURRENTLY"
	case p.node.GetReindexStmt() != nil && hasOption(p.node.GetReindexStmt().Params, "concurrently"):
		return "REINDEX CONCURRENTLY"
	case p.node.GetRefreshMatViewStmt() != nil && p.node.GetRefreshMatViewStmt().Concurrent:
		return "REFRESH MATERIALIZED VIEW CONCURRENTLY"
	case len(p.alterCmds(pgtree.AlterTableType_AT_ValidateConstraint)) > 0:
		return "VALIDATE CONSTRAINT"
	}
	return ""
}

func checkStatementTimeout(p *pass, r *Rule) {
	if p.e.cfg.TimeoutsSetByRunner {
		return
	}
	st := p.e.statementTimeout()
	if op := p.longOnline(); op != "" && st.set {
		f := p.finding("", lockNone)
		value := "a statement_timeout"
		if st.ms > 0 {
			value = fmt.Sprintf("statement_timeout (%d ms)", st.ms)
		}
		f.Message = fmt.Sprintf("%s is in effect for %s, which can run for a long time; if it is cancelled the work is lost (and an index build leaves an INVALID index)", value, op)
		f.Fix = recipe(
			"SET statement_timeout = 0;  -- just for this statement; it does not block reads or writes",
			p.st.text+";",
			"RESET statement_timeout;")
		p.report(r, f)
		return
	}
	if st.set {
		return
	}
	l, ok := p.blockingLock()
	if !ok || p.buildsIndexBlocking() {
		return
	}
	p.reportGrouped(r, "file", l.mode.String()+" on "+displayName(l.table), func() Finding {
		f := p.finding(l.table, l.mode)
		f.Message = fmt.Sprintf("no statement_timeout is set: once this statement holds its %s lock on %s, nothing bounds how long traffic is blocked",
			l.mode, displayName(l.table))
		f.Fix = recipe(
			"-- at the top of the file, next to lock_timeout:",
			"SET statement_timeout = '5s';")
		return f
	})
}
