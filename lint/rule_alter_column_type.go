package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
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
	cmd      *pgtree.AlterTableCmd
	col      string
	old, new colType
	newSQL   string
	using    bool
}

func (p *pass) typeChanges() []typeChange {
	key := p.alterKey()
	var out []typeChange
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_AlterColumnType) {
		cd := cmd.Def.GetColumnDef()
		if cd == nil {
			continue
		}
		tc := typeChange{cmd: cmd, col: cmd.Name, new: typeOf(cd.TypeName), newSQL: typeSQL(cd.TypeName),
			using: cd.RawDefault != nil && !isColumnRef(cd.RawDefault, cmd.Name)}
		if t := p.table(key); t != nil {
			if c := t.columns[cmd.Name]; c != nil {
				tc.old = c.typ
			}
		}
		out = append(out, tc)
	}
	return out
}

// isColumnRef reports whether expr is just the column col itself (USING col), which
// PostgreSQL treats like no USING clause.
func isColumnRef(expr *pgtree.Node, col string) bool {
	f := nameList(expr.GetColumnRef().GetFields())
	return len(f) == 1 && f[0] == col
}

// isTimestampZoneChange reports whether tc is timestamp to timestamptz or back, which
// PostgreSQL 12 and later do without a rewrite when the session's TimeZone is UTC.
func (tc typeChange) isTimestampZoneChange() bool {
	a, b := tc.old.name, tc.new.name
	if tc.old.array || tc.new.array || !(a == "timestamp" && b == "timestamptz" || a == "timestamptz" && b == "timestamp") {
		return false
	}
	// The precision must not shrink: that rounds every value.
	return len(tc.new.mods) == 0 || len(tc.old.mods) == 1 && tc.new.mods[0] >= tc.old.mods[0]
}

// rewrites reports whether the type change rewrites the table: "yes", "no", or "unknown"
// (the old type is unknown, or the outcome depends on a TimeZone the file does not set).
// Every rule asks this one place, so that two findings never disagree.
func (p *pass) rewrites(tc typeChange) string {
	switch {
	case tc.using:
		return "yes"
	case !tc.old.known():
		return "unknown"
	case binaryCoercible(tc.old, tc.new):
		return "no"
	case tc.isTimestampZoneChange() && p.pgVersion() >= 12:
		switch p.e.timeZoneUTC() {
		case tzUTC:
			return "no"
		case tzUnknown:
			return "unknown"
		}
	}
	return "yes"
}

func checkAlterColumnTypeRewrite(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, tc := range p.typeChanges() {
		rw := p.rewrites(tc)
		if rw == "no" {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		switch {
		case tc.using:
			f.Message = fmt.Sprintf("changing the type of %s with USING rewrites %s%s and rebuilds its indexes under an ACCESS EXCLUSIVE lock",
				tc.col, displayName(key), p.sizeNote(key))
		case tc.isTimestampZoneChange() && rw == "unknown":
			f.Message = fmt.Sprintf("changing %s from %s to %s rewrites %s%s and rebuilds its indexes under an ACCESS EXCLUSIVE lock, unless the session's TimeZone is UTC (PostgreSQL 12 and later then keep the data as is); this file does not set it",
				tc.col, tc.old, tc.newSQL, displayName(key), p.sizeNote(key))
			f.Fix = recipe(
				"-- in the same transaction, before the change: no rewrite then",
				"SET LOCAL timezone = 'UTC';",
				p.st.text+";")
			p.report(r, f)
			continue
		case !tc.old.known():
			f.Severity = SeverityWarning
			f.Rewrite = false
			f.Message = fmt.Sprintf("the type of %s.%s before this change is unknown; unless %s is binary-coercible from it (varchar widening, varchar to text, numeric precision increase), the table is rewritten under an ACCESS EXCLUSIVE lock",
				displayName(key), tc.col, tc.newSQL)
		default:
			f.Message = fmt.Sprintf("changing %s from %s to %s is not binary-coercible: %s%s is rewritten and its indexes rebuilt under an ACCESS EXCLUSIVE lock",
				tc.col, tc.old, tc.newSQL, displayName(key), p.sizeNote(key))
		}
		f.Fix = p.typeChangeRecipe(key, tc)
		p.report(r, f)
	}
}

// typeChangeRecipe is the expand/contract alternative to an ALTER COLUMN ... TYPE that
// rewrites: a new column of the declared type, backfilled in batches by the table's key,
// NOT NULL again when the old column was, then swapped in.
func (p *pass) typeChangeRecipe(key string, tc typeChange) string {
	tbl, col, newCol := qname(key), ident(tc.col), ident(tc.col+"_new")
	conv := col + "::" + tc.newSQL
	if cd := tc.cmd.Def.GetColumnDef(); tc.using && cd != nil {
		conv = deparseExpr(cd.RawDefault, conv)
	}
	steps := []string{
		"-- expand: a new column next to the old one (instant)",
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tbl, newCol, tc.newSQL),
		"-- a trigger copies writes of the old version into the new column; backfill in batches until none is left:",
		p.batchUpdate(key, newCol+" = "+conv, newCol+" IS NULL AND "+col+" IS NOT NULL"),
	}
	if t := p.table(key); t != nil {
		if c := t.columns[tc.col]; c != nil && c.notNull {
			steps = append(steps, "-- "+tc.col+" is NOT NULL; so is the new column:")
			steps = append(steps, setNotNullSteps(key, tc.col+"_new")...)
		}
	}
	return recipe(append(steps,
		"-- contract, once no instance of the old version runs (recreate its default and indexes on the new column first):",
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", tbl, col),
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s;", tbl, newCol, col))...)
}
