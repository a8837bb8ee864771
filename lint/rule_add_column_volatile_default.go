package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "add-column-volatile-default",
		Summary:  "ADD COLUMN with a volatile default (or any default before PostgreSQL 11) rewrites the table",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkAddColumnVolatileDefault,
	})
}

func checkAddColumnVolatileDefault(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, c := range p.addedColumns() {
		if c.dflt == nil || !c.hasDefault() || c.serial || c.identity || c.generated {
			continue
		}
		col, tbl := c.def.Colname, qname(key)
		if p.pgVersion() >= 11 {
			if v, _ := p.e.cat.exprVolatility(c.dflt); v < volUnknown {
				continue
			}
		}
		expr := deparseExpr(c.dflt, "<default>")
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		fix := recipe(
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;  -- no default: instant", tbl, ident(col), typeSQL(c.def.TypeName)),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;  -- applies to new rows only", tbl, ident(col), expr),
			"-- backfill existing rows in batches, each in its own transaction:",
			p.batchUpdate(key, ident(col)+" = "+expr, ident(col)+" IS NULL"))
		if p.pgVersion() < 11 {
			f.Message = fmt.Sprintf("before PostgreSQL 11, ADD COLUMN %s with a default rewrites %s%s under an ACCESS EXCLUSIVE lock",
				col, displayName(key), p.sizeNote(key))
			f.Fix = fix
			p.report(r, f)
			continue
		}
		v, culprit := p.e.cat.exprVolatility(c.dflt)
		switch v {
		case volVolatile:
			f.Message = fmt.Sprintf("the default of %s calls the volatile %s: every existing row gets its own value, so %s%s is rewritten under an ACCESS EXCLUSIVE lock",
				col, culprit, displayName(key), p.sizeNote(key))
		case volUnknown:
			f.Severity = SeverityWarning
			f.Message = fmt.Sprintf("cannot tell whether %s in the default of %s is volatile; if it is, %s is rewritten under an ACCESS EXCLUSIVE lock (pass --database-url to look it up)",
				culprit, col, displayName(key))
		default:
			continue
		}
		f.Fix = fix
		p.report(r, f)
	}
}
