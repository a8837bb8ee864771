package lint

import (
	"fmt"
	"strings"
)

func init() {
	register(&Rule{
		ID:       "enum-rename-value",
		Summary:  "ALTER TYPE ... RENAME VALUE breaks the running version, which reads and writes the old label",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkEnumRenameValue,
	})
}

func checkEnumRenameValue(p *pass, r *Rule) {
	s := p.node.GetAlterEnumStmt()
	if s == nil || s.OldVal == "" {
		return
	}
	names := nameList(s.TypeName)
	typ := strings.Join(names, ".")
	if len(names) > 0 {
		if idx, ok := p.e.cat.enums[names[len(names)-1]]; ok && idx == p.e.fileIdx {
			return // the type was created in this file: nothing uses it yet
		}
	}
	f := p.finding("", lockNone)
	f.BreaksOldVersion = true
	f.Message = fmt.Sprintf("renaming the label '%s' of %s to '%s' breaks the version still running: its writes of '%s' fail and its comparisons stop matching",
		s.OldVal, typ, s.NewVal, s.OldVal)
	f.Fix = recipe(
		fmt.Sprintf("ALTER TYPE %s ADD VALUE IF NOT EXISTS '%s';  -- the old label stays valid", typ, strings.ReplaceAll(s.NewVal, "'", "''")),
		"-- release a version that writes the new label and accepts both, then migrate rows in batches:",
		fmt.Sprintf("UPDATE <table> SET <column> = '%s' WHERE <column> = '%s';", strings.ReplaceAll(s.NewVal, "'", "''"), strings.ReplaceAll(s.OldVal, "'", "''")))
	p.report(r, f)
}
