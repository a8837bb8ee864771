package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "refresh-matview-not-concurrent",
		Summary:  "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view until it finishes",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkRefreshMatview,
	})
}

func checkRefreshMatview(p *pass, r *Rule) {
	s := p.node.GetRefreshMatViewStmt()
	if s == nil || s.Concurrent || s.SkipData {
		return
	}
	key := relKey(s.Relation)
	if !p.existing(key) {
		return
	}
	f := p.finding(key, lockAccessExclusive)
	f.Message = fmt.Sprintf("REFRESH MATERIALIZED VIEW %s takes an ACCESS EXCLUSIVE lock: every read of the view waits for the whole refresh", displayName(key))
	f.Fix = recipe(
		"-- needs a unique index on the view (once, concurrently):",
		fmt.Sprintf("CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (<key columns>);", ident(displayName(key)+"_key"), qname(key)),
		fmt.Sprintf("REFRESH MATERIALIZED VIEW CONCURRENTLY %s;  -- reads continue", qname(key)))
	p.report(r, f)
}
