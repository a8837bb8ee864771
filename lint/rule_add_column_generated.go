package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "add-column-generated",
		Summary:  "adding a serial, identity or stored generated column to an existing table rewrites it",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkAddColumnGenerated,
	})
}

func checkAddColumnGenerated(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, c := range p.addedColumns() {
		tbl, col := qname(key), ident(c.def.Colname)
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		switch {
		case c.serial || c.identity:
			kind := "serial"
			if c.identity {
				kind = "identity"
			}
			f.Message = fmt.Sprintf("adding the %s column %s fills every existing row from a sequence: %s%s is rewritten under an ACCESS EXCLUSIVE lock",
				kind, c.def.Colname, displayName(key), p.sizeNote(key))
			seq := ident(displayName(key) + "_" + c.def.Colname + "_seq")
			f.Fix = recipe(
				"CREATE SEQUENCE "+seq+";",
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s bigint;  -- instant", tbl, col),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT nextval('%s');  -- new rows", tbl, col, seq),
				"-- backfill existing rows in batches, each in its own transaction:",
				fmt.Sprintf("UPDATE %s SET %s = nextval('%s') WHERE id IN (SELECT id FROM %s WHERE %s IS NULL LIMIT 10000);", tbl, col, seq, tbl, col),
				fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s;", seq, tbl, col))
		case c.generated:
			f.Message = fmt.Sprintf("adding the stored generated column %s computes it for every existing row: %s%s is rewritten under an ACCESS EXCLUSIVE lock",
				c.def.Colname, displayName(key), p.sizeNote(key))
			f.Fix = recipe(
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;  -- a plain column: instant", tbl, col, typeSQL(c.def.TypeName)),
				"-- keep it up to date with a BEFORE INSERT OR UPDATE trigger, then backfill in batches:",
				fmt.Sprintf("UPDATE %s SET %s = <expression> WHERE id IN (SELECT id FROM %s WHERE %s IS NULL LIMIT 10000);", tbl, col, tbl, col))
		default:
			continue
		}
		p.report(r, f)
	}
}
