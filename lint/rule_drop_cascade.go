package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "drop-cascade",
		Summary:  "DROP ... CASCADE also drops the views, foreign keys, columns or triggers that depend on the object, locking their tables",
		Category: CategoryCompatibility,
		Severity: SeverityError,
		check:    checkDropCascade,
	})
}

func checkDropCascade(p *pass, r *Rule) {
	var deps []dependent
	for _, d := range p.cascade {
		if p.existing(d.table) {
			deps = append(deps, d)
		}
	}
	if len(deps) == 0 {
		return
	}
	names := make([]string, len(deps))
	var tables []string
	steps := []string{"-- drop what depends on it explicitly (or re-create it), so that the migration says what it removes:"}
	for i, d := range deps {
		names[i] = d.String()
		if t := displayName(d.table); !slices.Contains(tables, t) {
			tables = append(tables, t)
		}
		steps = append(steps, d.dropSQL())
	}
	f := p.finding(deps[0].table, lockAccessExclusive)
	f.BreaksOldVersion = true
	f.Message = fmt.Sprintf("CASCADE also drops %s: it takes ACCESS EXCLUSIVE locks on %s, and the version still running uses what it drops",
		strings.Join(names, ", "), strings.Join(tables, ", "))
	f.Fix = recipe(append(steps,
		"-- then the statement without CASCADE, which fails if anything else still depends on it:",
		withoutCascade(p.node)+";")...)
	p.report(r, f)
}

// withoutCascade returns the statement as SQL without its CASCADE.
func withoutCascade(n *pgtree.Node) string {
	return rewritten(n, func(n *pgtree.Node) func() {
		var undo []func()
		if s := n.GetDropStmt(); s != nil {
			b := s.Behavior
			s.Behavior = pgtree.DropBehavior_DROP_RESTRICT
			undo = append(undo, func() { s.Behavior = b })
		}
		for _, x := range n.GetAlterTableStmt().GetCmds() {
			if cmd := x.GetAlterTableCmd(); cmd != nil && cmd.Behavior == pgtree.DropBehavior_DROP_CASCADE {
				cmd.Behavior = pgtree.DropBehavior_DROP_RESTRICT
				undo = append(undo, func() { cmd.Behavior = pgtree.DropBehavior_DROP_CASCADE })
			}
		}
		return func() {
			for _, u := range undo {
				u()
			}
		}
	})
}
