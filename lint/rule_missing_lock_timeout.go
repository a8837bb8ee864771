package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "missing-lock-timeout",
		Summary:  "a statement that takes a lock blocking reads or writes on an existing table runs without lock_timeout",
		Category: CategoryTransactions,
		Severity: SeverityError,
		check:    checkMissingLockTimeout,
		late:     true,
	})
}

// blockingLock returns the first lock of the statement that blocks traffic on a table the
// application already uses.
func (p *pass) blockingLock() (lockTake, bool) {
	refresh := p.node.GetRefreshMatViewStmt() != nil
	for _, l := range p.locks {
		if refresh && l.mode < lockAccessExclusive {
			continue // a materialized view is not written to: EXCLUSIVE leaves its reads alone
		}
		if l.mode.blocksTraffic() && p.existing(l.table) {
			return l, true
		}
	}
	return lockTake{}, false
}

func checkMissingLockTimeout(p *pass, r *Rule) {
	if p.e.cfg.TimeoutsSetByRunner || p.e.lockTimeout().set {
		return
	}
	l, ok := p.blockingLock()
	if !ok || p.buildsIndexBlocking() {
		return
	}
	p.reportGrouped(r, "file", l.mode.String()+" on "+displayName(l.table), func() Finding {
		f := p.finding(l.table, l.mode)
		f.Message = fmt.Sprintf("no lock_timeout is set: while this statement waits for its %s lock on %s behind any long-running transaction, new %s on the table queue behind it",
			l.mode, displayName(l.table), l.mode.blocks())
		set := "SET lock_timeout = '2s';"
		if p.inTx() {
			set = "SET LOCAL lock_timeout = '2s';"
		}
		f.Fix = recipe(
			"-- at the top of the file; the runner (or you) retries when it times out:",
			set)
		return f
	})
}
