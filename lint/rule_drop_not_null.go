package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "drop-not-null",
		Summary:  "DROP NOT NULL lets the new version write NULLs that the running version may not expect",
		Category: CategoryCompatibility,
		Severity: SeverityWarning,
		check:    checkDropNotNull,
	})
}

func checkDropNotNull(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, cmd := range p.alterCmds(pgtree.AlterTableType_AT_DropNotNull) {
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Message = fmt.Sprintf("%s.%s becomes nullable: once the new version writes NULLs, the version still running may fail to read them",
			displayName(key), cmd.Name)
		f.Fix = recipe(
			"-- make sure the running version handles NULL in this column, then:",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;  -- tandem-lint-ignore: drop-not-null", qname(key), ident(cmd.Name)))
		p.report(r, f)
	}
}
