package lint

import (
	"strconv"
	"strings"
	"sync"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// deparse renders a statement node back to SQL, or "" if that fails.
func deparse(n *pgtree.Node) string {
	out, err := pgtree.Deparse(&pgtree.ParseResult{Version: treeVersion(), Stmts: []*pgtree.RawStmt{{Stmt: n}}})
	if err != nil {
		return ""
	}
	return out
}

// deparseExpr renders an expression as SQL, or fallback if that fails.
func deparseExpr(n *pgtree.Node, fallback string) string {
	if n == nil {
		return fallback
	}
	sel := &pgtree.Node{Node: &pgtree.Node_SelectStmt{SelectStmt: &pgtree.SelectStmt{
		TargetList: []*pgtree.Node{{Node: &pgtree.Node_ResTarget{ResTarget: &pgtree.ResTarget{Val: n}}}},
	}}}
	s := deparse(sel)
	if !strings.HasPrefix(s, "SELECT ") {
		return fallback
	}
	return strings.TrimPrefix(s, "SELECT ")
}

// rewritten lets change modify the statement, deparses it, and undoes the change with the
// function change returns: cheaper than deparsing a clone, which a deep copy of the tree
// would cost.
func rewritten(n *pgtree.Node, change func(*pgtree.Node) (undo func())) string {
	undo := change(n)
	defer undo()
	return deparse(n)
}

// typeSQL renders a type name as SQL, without a round trip through the deparser.
func typeSQL(tn *pgtree.TypeName) string {
	if tn == nil {
		return "?"
	}
	names := nameList(tn.Names)
	builtin := len(names) == 2 && names[0] == "pg_catalog"
	if builtin {
		names = []string{sqlTypeName(names[1])}
	}
	if len(names) == 0 {
		return "?"
	}
	var b strings.Builder
	if builtin {
		b.WriteString(names[0]) // "double precision" must stay unquoted
	} else {
		for i, n := range names {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(ident(n))
		}
	}
	var mods []string
	for _, m := range tn.Typmods {
		if c := m.GetAConst(); c != nil && c.GetIval() != nil {
			mods = append(mods, strconv.Itoa(int(c.GetIval().Ival)))
		}
	}
	if len(mods) > 0 && len(mods) == len(tn.Typmods) && names[len(names)-1] != "interval" {
		b.WriteString("(" + strings.Join(mods, ",") + ")")
	}
	for range tn.ArrayBounds {
		b.WriteString("[]")
	}
	return b.String()
}

// recipe joins lines of a SQL recipe.
func recipe(lines ...string) string { return strings.Join(lines, "\n") }

var (
	versionOnce sync.Once
	version     int32
)

// treeVersion returns the parse tree version the deparser expects.
func treeVersion() int32 {
	versionOnce.Do(func() {
		if t, err := pgtree.Parse("SELECT 1"); err == nil {
			version = t.Version
		}
	})
	return version
}
