package lint

import (
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// deparse renders a statement node back to SQL, or "" if that fails.
func deparse(n *pg_query.Node) string {
	out, err := pg_query.Deparse(&pg_query.ParseResult{Version: treeVersion(), Stmts: []*pg_query.RawStmt{{Stmt: n}}})
	if err != nil {
		return ""
	}
	return out
}

// deparseExpr renders an expression as SQL, or fallback if that fails.
func deparseExpr(n *pg_query.Node, fallback string) string {
	if n == nil {
		return fallback
	}
	sel := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: n}}}},
	}}}
	s := deparse(sel)
	if !strings.HasPrefix(s, "SELECT ") {
		return fallback
	}
	return strings.TrimPrefix(s, "SELECT ")
}

// rewritten clones the statement, lets change modify the clone and deparses it.
func rewritten(n *pg_query.Node, change func(*pg_query.Node)) string {
	c := proto.Clone(n).(*pg_query.Node)
	change(c)
	return deparse(c)
}

// typeSQL renders a type name as SQL.
func typeSQL(tn *pg_query.TypeName) string {
	if tn == nil {
		return "?"
	}
	cd := &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg:      &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true}}},
		TypeName: tn,
	}}}
	s := deparseExpr(cd, "?")
	s = strings.TrimPrefix(s, "NULL::")
	return s
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
		if t, err := pg_query.Parse("SELECT 1"); err == nil {
			version = t.Version
		}
	})
	return version
}
