package lint

import (
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func init() {
	register(&Rule{
		ID:       "alter-column-type-rewrite",
		Summary:  "ALTER COLUMN ... TYPE that is not binary-coercible rewrites the table and its indexes",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkAlterColumnTypeRewrite,
	})
}

// typeChange is one ALTER COLUMN ... TYPE with the column's type before it.
type typeChange struct {
	cmd      *pg_query.AlterTableCmd
	col      string
	old, new colType
	newSQL   string
	using    bool
}

func (p *pass) typeChanges() []typeChange {
	key := p.alterKey()
	var out []typeChange
	for _, cmd := range p.alterCmds(pg_query.AlterTableType_AT_AlterColumnType) {
		cd := cmd.Def.GetColumnDef()
		if cd == nil {
			continue
		}
		tc := typeChange{cmd: cmd, col: cmd.Name, new: typeOf(cd.TypeName), newSQL: typeSQL(cd.TypeName), using: cd.RawDefault != nil}
		if t := p.table(key); t != nil {
			if c := t.columns[cmd.Name]; c != nil {
				tc.old = c.typ
			}
		}
		out = append(out, tc)
	}
	return out
}

func checkAlterColumnTypeRewrite(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, tc := range p.typeChanges() {
		if tc.old.known() && !tc.using && binaryCoercible(tc.old, tc.new) {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		switch {
		case tc.using:
			f.Message = fmt.Sprintf("changing the type of %s with USING rewrites %s%s and rebuilds its indexes under an ACCESS EXCLUSIVE lock",
				tc.col, displayName(key), p.sizeNote(key))
		case !tc.old.known():
			f.Severity = SeverityWarning
			f.Rewrite = false
			f.Message = fmt.Sprintf("the type of %s.%s before this change is unknown; unless %s is binary-coercible from it (varchar widening, varchar to text, numeric precision increase), the table is rewritten under an ACCESS EXCLUSIVE lock",
				displayName(key), tc.col, tc.newSQL)
		default:
			f.Message = fmt.Sprintf("changing %s from %s to %s is not binary-coercible: %s%s is rewritten and its indexes rebuilt under an ACCESS EXCLUSIVE lock",
				tc.col, tc.old, tc.newSQL, displayName(key), p.sizeNote(key))
		}
		f.Fix = typeChangeRecipe(key, tc)
		p.report(r, f)
	}
}

func typeChangeRecipe(key string, tc typeChange) string {
	tbl, col, newCol := qname(key), ident(tc.col), ident(tc.col+"_new")
	return recipe(
		"-- expand: a new column next to the old one (instant)",
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tbl, newCol, tc.newSQL),
		"-- a trigger copies writes of the old version into the new column; backfill in batches:",
		fmt.Sprintf("UPDATE %s SET %s = %s::%s WHERE id IN (SELECT id FROM %s WHERE %s IS NULL LIMIT 10000);", tbl, newCol, col, tc.newSQL, tbl, newCol),
		"-- contract, once no instance of the old version runs:",
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", tbl, col),
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s;", tbl, newCol, col))
}
