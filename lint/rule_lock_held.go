package lint

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "lock-held-across-statements",
		Summary:  "a strong lock taken earlier in the transaction stays held while a later slow or locking statement runs",
		Category: CategoryTransactions,
		Severity: SeverityError,
		check:    checkLockHeld,
		late:     true,
	})
}

// slowWork describes why the statement may take long (it scans, rewrites, builds or
// changes many rows), or returns "".
func (p *pass) slowWork() string {
	n := p.node
	switch {
	case len(p.alterCmds(pgtree.AlterTableType_AT_ValidateConstraint)) > 0:
		return "VALIDATE CONSTRAINT scans the table"
	case n.GetIndexStmt() != nil && !n.GetIndexStmt().Concurrent && p.existing(relKey(n.GetIndexStmt().Relation)):
		return "CREATE INDEX builds an index"
	case n.GetInsertStmt() != nil || n.GetUpdateStmt() != nil || n.GetDeleteStmt() != nil || n.GetMergeStmt() != nil:
		for _, l := range p.locks {
			if p.existing(l.table) {
				return "this data change may touch many rows"
			}
		}
	case n.GetVacuumStmt() != nil || n.GetClusterStmt() != nil || n.GetRefreshMatViewStmt() != nil || n.GetReindexStmt() != nil:
		return "this maintenance statement processes the whole table"
	case n.GetSelectStmt() != nil && len(n.GetSelectStmt().FromClause) > 0:
		return "this query may scan a table"
	}
	key := p.alterKey()
	if !p.existing(key) {
		return ""
	}
	for _, tc := range p.typeChanges() {
		if p.rewrites(tc) != "no" {
			return "ALTER COLUMN TYPE may rewrite the table"
		}
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AddConstraint) {
		if con := cmd.Def.GetConstraint(); con != nil && !con.SkipValidation && con.Indexname == "" {
			return "adding a validated constraint scans the table"
		}
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_SetNotNull) {
		if !hasValidatedNotNullCheck(p.table(key), cmd.Name) {
			return "SET NOT NULL scans the table"
		}
	}
	return ""
}

func checkLockHeld(p *pass, r *Rule) {
	tx := p.e.tx
	if tx == nil || len(tx.held) == 0 {
		return
	}
	// Queueing for another lock without lock_timeout also extends the hold, but that cause
	// is missing-lock-timeout's: one finding per cause.
	reason := p.slowWork()
	if reason == "" || p.buildsIndexBlocking() {
		return
	}
	p.reportGrouped(r, "tx"+strconv.Itoa(tx.id), reason, func() Finding {
		var held []string
		seen := map[string]bool{}
		for _, h := range tx.held {
			if seen[h.table] {
				continue
			}
			seen[h.table] = true
			held = append(held, fmt.Sprintf("%s on %s (line %d, blocks %s)", h.mode, displayName(h.table), h.line, h.mode.blocks()))
		}
		f := p.finding(tx.held[0].table, tx.held[0].mode)
		f.Message = fmt.Sprintf("%s while this transaction still holds %s: that traffic waits until COMMIT", reason, strings.Join(held, ", "))
		if tx.explicit {
			f.Fix = recipe(
				"COMMIT;  -- release the lock right after the statement that needs it",
				"BEGIN;",
				p.st.text+";")
		} else {
			f.Fix = recipe(
				"-- move this statement to the next migration file, so that it runs in a new transaction:",
				p.st.text+";")
		}
		return f
	})
}
