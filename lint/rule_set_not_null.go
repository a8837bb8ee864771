package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "set-not-null-scan",
		Summary:  "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock unless a validated CHECK (col IS NOT NULL) exists (PostgreSQL 12+)",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkSetNotNull,
	})
}

// hasValidatedNotNullCheck reports whether t has a validated constraint proving col NOT NULL.
func hasValidatedNotNullCheck(t *table, col string) bool {
	if t == nil {
		return false
	}
	for _, c := range t.constraints {
		if !c.validated || (c.kind != conCheck && c.kind != conNotNull) {
			continue
		}
		for _, n := range c.notNullCols {
			if n == col {
				return true
			}
		}
	}
	return false
}

func checkSetNotNull(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	t := p.table(key)
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_SetNotNull) {
		if t != nil {
			if c := t.columns[cmd.Name]; c != nil && c.notNull {
				continue // already NOT NULL: nothing to check
			}
		}
		hasCheck := hasValidatedNotNullCheck(t, cmd.Name)
		if hasCheck && p.pgVersion() >= 12 {
			continue
		}
		tbl, col := qname(key), ident(cmd.Name)
		con := ident(displayName(key) + "_" + cmd.Name + "_not_null")
		f := p.finding(key, lockAccessExclusive)
		if p.pgVersion() < 12 {
			f.Message = fmt.Sprintf("before PostgreSQL 12, SET NOT NULL on %s always scans %s%s under an ACCESS EXCLUSIVE lock, even with a validated CHECK",
				cmd.Name, displayName(key), p.sizeNote(key))
			f.Fix = recipe(
				"-- before PostgreSQL 12 there is no scan-free SET NOT NULL; enforce it with a constraint instead:",
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;", tbl, con, col),
				"-- in a later transaction:",
				fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s;", tbl, con))
		} else {
			f.Message = fmt.Sprintf("SET NOT NULL on %s scans all of %s%s under an ACCESS EXCLUSIVE lock: no validated CHECK (%s IS NOT NULL) exists",
				cmd.Name, displayName(key), p.sizeNote(key), cmd.Name)
			f.Fix = recipe(
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;", tbl, con, col),
				"-- in the next migration file (a later transaction); VALIDATE holds only SHARE UPDATE EXCLUSIVE:",
				fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s;", tbl, con),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;  -- uses the validated check: no scan", tbl, col),
				fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", tbl, con))
		}
		p.report(r, f)
	}
}
