package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "add-column-not-null-no-default",
		Summary:  "ADD COLUMN ... NOT NULL without a default fails on a non-empty table and breaks the running version's inserts",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkAddColumnNotNull,
	})
}

func checkAddColumnNotNull(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, c := range p.addedColumns() {
		if !c.notNull || c.hasDefault() {
			continue
		}
		tbl, col, typ := qname(key), ident(c.def.Colname), typeSQL(c.def.TypeName)
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Message = fmt.Sprintf("adding %s NOT NULL without a default fails if %s has rows, and the version still running does not set it, so its INSERTs fail",
			c.def.Colname, displayName(key))
		f.Fix = recipe(
			"-- a constant default is metadata-only since PostgreSQL 11, and old INSERTs keep working:",
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s NOT NULL DEFAULT <constant>;", tbl, col, typ),
			"-- or add it nullable, backfill in batches, then follow the set-not-null-scan recipe:",
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tbl, col, typ))
		p.report(r, f)
	}
}
