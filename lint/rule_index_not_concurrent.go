package lint

import (
	"slices"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

func init() {
	register(&Rule{
		ID:       "index-not-concurrent",
		Summary:  "CREATE INDEX, DROP INDEX or REINDEX without CONCURRENTLY on an existing table",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkIndexNotConcurrent,
	})
}

func checkIndexNotConcurrent(p *pass, r *Rule) {
	switch {
	case p.node.GetIndexStmt() != nil:
		s := p.node.GetIndexStmt()
		key := relKey(s.Relation)
		if s.Concurrent || !p.existing(key) {
			return
		}
		t := p.table(key)
		if t != nil && t.partitioned {
			if !s.Relation.Inh {
				return // ON ONLY a partitioned table: an empty, invalid parent index, built instantly
			}
			f := p.finding(key, lockShare)
			f.Message = "CREATE INDEX on the partitioned table " + displayName(key) + " builds the index on every partition while blocking writes; CONCURRENTLY is not supported on a partitioned table"
			name := s.Idxname
			if name == "" {
				name = "<index>"
			}
			f.Fix = recipe(
				rewritten(p.node, func(n *pgtree.Node) func() {
					rv := n.GetIndexStmt().Relation
					inh := rv.Inh
					rv.Inh = false
					return func() { rv.Inh = inh }
				})+";  -- parent only: instant, INVALID for now",
				"-- for each partition, in a file the runner does not wrap in a transaction:",
				"CREATE INDEX CONCURRENTLY <partition_index> ON <partition> (...);",
				"ALTER INDEX "+ident(name)+" ATTACH PARTITION <partition_index>;  -- the parent index becomes valid after the last one")
			p.report(r, f)
			return
		}
		f := p.finding(key, lockShare)
		f.Message = "CREATE INDEX without CONCURRENTLY blocks writes to " + displayName(key) + p.sizeNote(key) +
			" for the whole index build"
		f.Fix = recipe(
			"-- in a file the runner does not wrap in a transaction:",
			rewritten(p.node, func(n *pgtree.Node) func() {
				s := n.GetIndexStmt()
				concurrent := s.Concurrent
				s.Concurrent = true
				return func() { s.Concurrent = concurrent }
			})+";")
		p.report(r, f)
	case p.node.GetDropStmt() != nil:
		s := p.node.GetDropStmt()
		if s.RemoveType != pgtree.ObjectType_OBJECT_INDEX || s.Concurrent {
			return
		}
		for _, key := range dropKeys(s) {
			tbl := ""
			if ix := p.e.cat.indexes[key]; ix != nil {
				tbl = ix.table
				if p.isNew(tbl) {
					continue
				}
			}
			f := p.finding(tbl, lockAccessExclusive)
			f.Message = "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table of " + displayName(key)
			f.Fix = recipe(
				"-- in a file the runner does not wrap in a transaction:",
				"DROP INDEX CONCURRENTLY IF EXISTS "+qname(key)+";")
			p.report(r, f)
		}
	case p.node.GetReindexStmt() != nil:
		s := p.node.GetReindexStmt()
		if hasOption(s.Params, "concurrently") {
			return
		}
		key := relKey(s.Relation)
		tbl := key
		if s.Kind == pgtree.ReindexObjectType_REINDEX_OBJECT_INDEX {
			if ix := p.e.cat.indexes[key]; ix != nil {
				tbl = ix.table
			}
		}
		if s.Relation != nil && p.isNew(tbl) {
			return
		}
		f := p.finding(tbl, lockAccessExclusive)
		f.Lock = "SHARE on the table, ACCESS EXCLUSIVE on the index"
		f.Message = "REINDEX without CONCURRENTLY blocks writes, and every query that would use the index, until it finishes"
		if p.pgVersion() >= 12 {
			f.Fix = recipe(
				"-- in a file the runner does not wrap in a transaction:",
				rewritten(p.node, func(n *pgtree.Node) func() {
					rs := n.GetReindexStmt()
					params := rs.Params
					rs.Params = append(slices.Clip(params), &pgtree.Node{Node: &pgtree.Node_DefElem{DefElem: &pgtree.DefElem{Defname: "concurrently"}}})
					return func() { rs.Params = params }
				})+";")
		} else {
			f.Fix = recipe(
				"-- before PostgreSQL 12: build a replacement, then swap",
				"CREATE INDEX CONCURRENTLY new_index ON t (...);",
				"DROP INDEX CONCURRENTLY old_index;",
				"ALTER INDEX new_index RENAME TO old_index;")
		}
		p.report(r, f)
	}
}
