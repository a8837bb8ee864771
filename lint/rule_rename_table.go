package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "rename-table",
		Summary:  "RENAME TABLE breaks the application version still running, which uses the old name",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkRenameTable,
	})
}

func checkRenameTable(p *pass, r *Rule) {
	s := p.node.GetRenameStmt()
	if s == nil || s.RenameType != pgtree.ObjectType_OBJECT_TABLE {
		return
	}
	key := relKey(s.Relation)
	if !p.existing(key) {
		return
	}
	if i, ok := p.e.views[key]; ok && i > p.e.stmtIdx && p.inTx() {
		return // the old name lives on as a view created in the same transaction
	}
	f := p.finding(key, lockAccessExclusive)
	f.BreaksOldVersion = true
	f.Message = fmt.Sprintf("renaming %s to %s breaks the version still running, whose queries use the old name", displayName(key), s.Newname)
	newKey := qualify(s.Relation.Schemaname, s.Newname)
	f.Fix = recipe(
		"-- rename, and keep the old name working as a simple (updatable) view in the same transaction:",
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s;", qname(key), ident(s.Newname)),
		fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s;", qname(key), qname(newKey)),
		"-- once no instance of the old version runs:",
		fmt.Sprintf("DROP VIEW %s;", qname(key)))
	p.report(r, f)
}
