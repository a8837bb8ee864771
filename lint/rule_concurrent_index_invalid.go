package lint

import (
	"fmt"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "concurrent-index-invalid-risk",
		Summary:  "a concurrent index build with IF NOT EXISTS or a lock_timeout can leave an INVALID index that a retry silently accepts",
		Category: CategoryTransactions,
		Severity: SeverityError,
		check:    checkConcurrentIndexInvalid,
	})
}

func checkConcurrentIndexInvalid(p *pass, r *Rule) {
	if d := p.node.GetDropStmt(); d != nil && d.RemoveType == pgtree.ObjectType_OBJECT_INDEX && d.MissingOk {
		for _, k := range dropKeys(d) {
			p.e.once["dropped-index:"+k] = true
		}
		return
	}
	s := p.node.GetIndexStmt()
	if s == nil || !s.Concurrent {
		return
	}
	key := qualify(s.Relation.GetSchemaname(), s.Idxname)
	if s.Idxname != "" && p.e.once["dropped-index:"+key] {
		return // a leftover INVALID index is dropped first
	}
	lt := p.e.lockTimeout()
	if !s.IfNotExists && !lt.set {
		return
	}
	f := p.finding(relKey(s.Relation), lockShareUpdateExclusive)
	name := s.Idxname
	if name == "" {
		name = "<name>"
	}
	switch {
	case s.IfNotExists:
		f.Message = fmt.Sprintf("if an earlier attempt of this concurrent build failed, it left an INVALID index %s; IF NOT EXISTS then skips the build and the migration \"succeeds\" without a usable index", name)
	default:
		f.Severity = SeverityWarning
		f.Message = fmt.Sprintf("lock_timeout is set during a concurrent index build: a timeout in any of its waits leaves an INVALID index %s behind, and the next attempt fails on it", name)
	}
	f.Fix = recipe(
		"RESET lock_timeout;  -- a concurrent build does not block reads or writes while it waits",
		fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s;  -- removes an INVALID leftover of a failed attempt", qname(key)),
		rewritten(p.node, func(n *pgtree.Node) func() {
			s := n.GetIndexStmt()
			ifNotExists := s.IfNotExists
			s.IfNotExists = false
			return func() { s.IfNotExists = ifNotExists }
		})+";")
	p.report(r, f)
}
