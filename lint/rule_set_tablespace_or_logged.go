package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "set-tablespace-or-logged",
		Summary:  "SET TABLESPACE, SET LOGGED, SET UNLOGGED and SET ACCESS METHOD rewrite the table under an ACCESS EXCLUSIVE lock",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkSetTablespaceOrLogged,
	})
}

func checkSetTablespaceOrLogged(p *pass, r *Rule) {
	a := p.node.GetAlterTableStmt()
	if a == nil {
		return
	}
	key := relKey(a.Relation)
	if a.Objtype == pgtree.ObjectType_OBJECT_INDEX {
		if ix := p.e.cat.indexes[key]; ix != nil {
			key = ix.table
		}
	}
	if !p.existing(key) {
		return
	}
	for _, c := range a.Cmds {
		cmd := c.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		var what string
		switch cmd.Subtype {
		case pgtree.AlterTableType_AT_SetTableSpace:
			what = "SET TABLESPACE copies every block of " + displayName(relKey(a.Relation))
		case pgtree.AlterTableType_AT_SetLogged:
			what = "SET LOGGED writes all of " + displayName(key) + " to the WAL"
		case pgtree.AlterTableType_AT_SetUnLogged:
			what = "SET UNLOGGED rewrites " + displayName(key)
		case pgtree.AlterTableType_AT_SetAccessMethod:
			what = "SET ACCESS METHOD rewrites " + displayName(key)
		default:
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		f.Message = fmt.Sprintf("%s%s under an ACCESS EXCLUSIVE lock: reads and writes wait until it finishes", what, p.sizeNote(key))
		f.Fix = recipe(
			"-- no online form exists: create a new table with the wanted storage, copy rows in batches",
			"-- (or use pg_repack --tablespace), then switch over in a maintenance window:",
			"SET lock_timeout = '2s';",
			deparse(p.node)+";")
		p.report(r, f)
	}
}
