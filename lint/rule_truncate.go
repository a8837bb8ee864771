package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "truncate",
		Summary:  "TRUNCATE takes an ACCESS EXCLUSIVE lock and removes every row the running version relies on",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkTruncate,
	})
}

func checkTruncate(p *pass, r *Rule) {
	s := p.node.GetTruncateStmt()
	if s == nil {
		return
	}
	for _, rel := range s.Relations {
		key := relKey(rel.GetRangeVar())
		if !p.existing(key) {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Message = fmt.Sprintf("TRUNCATE %s%s takes an ACCESS EXCLUSIVE lock and empties the table under the running version", displayName(key), p.sizeNote(key))
		tbl := qname(key)
		f.Fix = recipe(
			"-- delete in batches, each in its own transaction, so reads and writes continue:",
			fmt.Sprintf("DELETE FROM %s WHERE ctid IN (SELECT ctid FROM %s LIMIT 10000);", tbl, tbl))
		p.report(r, f)
	}
}
