package lint

import (
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

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
			typ := serialColumnType(c.def.TypeName)
			seq := qname(key + "_" + c.def.Colname + "_seq")
			steps := []string{
				fmt.Sprintf("CREATE SEQUENCE %s AS %s;", seq, typ),
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;  -- instant", tbl, col, typ),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT nextval('%s');  -- new rows", tbl, col, strings.ReplaceAll(seq, "'", "''")),
				"-- backfill existing rows in batches, each in its own transaction, until none is left:",
				p.batchUpdate(key, fmt.Sprintf("%s = nextval('%s')", col, strings.ReplaceAll(seq, "'", "''")), col+" IS NULL"),
				fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s;", seq, tbl, col),
				"-- then NOT NULL, as " + kind + " declares it, without a long lock:",
			}
			f.Fix = recipe(append(steps, setNotNullSteps(key, c.def.Colname)...)...)
		case c.generated:
			f.Message = fmt.Sprintf("adding the stored generated column %s computes it for every existing row: %s%s is rewritten under an ACCESS EXCLUSIVE lock",
				c.def.Colname, displayName(key), p.sizeNote(key))
			f.Fix = recipe(
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;  -- a plain column: instant", tbl, col, typeSQL(c.def.TypeName)),
				"-- keep it up to date with a BEFORE INSERT OR UPDATE trigger, then backfill in batches:",
				p.batchUpdate(key, col+" = "+deparseExpr(generatedExpr(c.def), "<expression>"), col+" IS NULL"))
		default:
			continue
		}
		p.report(r, f)
	}
}

// serialColumnType is the type a serial column has (serial is integer, bigserial bigint,
// smallserial smallint); for other columns, the declared type.
func serialColumnType(tn *pgtree.TypeName) string {
	names := nameList(tn.GetNames())
	if len(names) > 0 {
		switch strings.ToLower(names[len(names)-1]) {
		case "serial", "serial4":
			return "integer"
		case "bigserial", "serial8":
			return "bigint"
		case "smallserial", "serial2":
			return "smallint"
		}
	}
	return typeSQL(tn)
}

// generatedExpr returns the expression of a stored generated column, or nil.
func generatedExpr(cd *pgtree.ColumnDef) *pgtree.Node {
	for _, n := range cd.Constraints {
		if c := n.GetConstraint(); c != nil && c.Contype == pgtree.ConstrType_CONSTR_GENERATED {
			return c.RawExpr
		}
	}
	return nil
}
