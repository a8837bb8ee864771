package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "rename-column",
		Summary:  "RENAME COLUMN breaks the application version still running, which uses the old name",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkRenameColumn,
	})
}

func checkRenameColumn(p *pass, r *Rule) {
	s := p.node.GetRenameStmt()
	if s == nil || s.RenameType != pgtree.ObjectType_OBJECT_COLUMN || s.RelationType != pgtree.ObjectType_OBJECT_TABLE {
		return
	}
	key := relKey(s.Relation)
	if !p.existing(key) {
		return
	}
	tbl, oldc, newc := qname(key), ident(s.Subname), ident(s.Newname)
	typ := "<type>"
	if t := p.table(key); t != nil {
		if c := t.columns[s.Subname]; c != nil && c.typ.known() {
			typ = c.typ.String()
		}
	}
	f := p.finding(key, lockAccessExclusive)
	f.BreaksOldVersion = true
	f.Message = fmt.Sprintf("renaming %s.%s to %s breaks the version still running, whose queries use the old name",
		displayName(key), s.Subname, s.Newname)
	f.Fix = recipe(
		"-- expand: add the new column and keep both in sync while both versions run",
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tbl, newc, typ),
		"-- (a BEFORE INSERT OR UPDATE trigger copies old -> new and new -> old), backfill in batches:",
		p.batchUpdate(key, newc+" = "+oldc, newc+" IS NULL AND "+oldc+" IS NOT NULL"),
		"-- contract, once no instance of the old version runs:",
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", tbl, oldc),
		"-- (tandem start/complete with a rename_column operation does all of this through versioned views)")
	p.report(r, f)
}
