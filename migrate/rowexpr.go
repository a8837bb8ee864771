package migrate

import (
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// rowExpr rewrites expr, written in the column names of shape, into an expression a
// row trigger evaluates directly: every reference to a column of shape becomes a
// reference to the record field <record>.<physical column>, or, for the columns in
// vars, to the PL/pgSQL variable vars names. It also returns the physical columns the
// expression reads. The rewrite works on PostgreSQL's own parse tree (libpg_query),
// so string literals, quoted identifiers and function names are never touched; expr
// must have passed checkExpr.
func rowExpr(expr string, shape *Table, record string, vars map[string]string) (string, []string, error) {
	tree, err := pgtree.Parse("SELECT (" + expr + ")")
	if err != nil {
		return "", nil, fmt.Errorf("expression %q does not parse: %s", expr, parserMessage(err))
	}
	var reads []string
	walkColumnRefs(tree, func(ref *pgtree.ColumnRef) {
		if len(ref.Fields) != 1 {
			return
		}
		name := ref.Fields[0].GetString_()
		if name == nil {
			return
		}
		c := shape.Column(name.Sval)
		if c == nil {
			return
		}
		reads = append(reads, c.Physical)
		if v, ok := vars[c.Physical]; ok {
			ref.Fields = []*pgtree.Node{pgtree.MakeStrNode(v)}
			return
		}
		ref.Fields = []*pgtree.Node{pgtree.MakeStrNode(record), pgtree.MakeStrNode(c.Physical)}
	})
	out, err := pgtree.Deparse(tree)
	if err != nil {
		return "", nil, fmt.Errorf("expression %q: render it for the trigger: %w", expr, err)
	}
	body, ok := strings.CutPrefix(out, "SELECT ")
	if !ok {
		return "", nil, fmt.Errorf("expression %q: render it for the trigger: unexpected %q", expr, out)
	}
	return body, reads, nil
}

// walkColumnRefs calls fn for every column reference in tree.
func walkColumnRefs(tree *pgtree.ParseResult, fn func(*pgtree.ColumnRef)) {
	for _, raw := range tree.Stmts {
		pgtree.Walk(raw.Stmt, func(n *pgtree.Node) bool {
			if ref := n.GetColumnRef(); ref != nil {
				fn(ref)
				return false
			}
			return true
		})
	}
}
