package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "column-type-semantic-change",
		Summary:  "a column type change that alters what the running version reads or may write",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkColumnTypeSemanticChange,
	})
}

func checkColumnTypeSemanticChange(p *pass, r *Rule) {
	key := p.alterKey()
	if !p.existing(key) {
		return
	}
	for _, tc := range p.typeChanges() {
		if !tc.old.known() || compatibleWidening(tc.old, tc.new) {
			continue
		}
		f := p.finding(key, lockAccessExclusive)
		f.BreaksOldVersion = true
		f.Rewrite = p.rewrites(tc) == "yes"
		f.Message = fmt.Sprintf("%s.%s changes from %s to %s: the version still running reads and writes it as %s and may fail or misread values",
			displayName(key), tc.col, tc.old, tc.newSQL, tc.old)
		if f.Rewrite {
			f.Message += fmt.Sprintf("; the change also rewrites %s%s", displayName(key), p.sizeNote(key))
		}
		f.Fix = p.typeChangeRecipe(key, tc)
		p.report(r, f)
	}
}
