package migrate

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rowExpr rewrites expr, written in the column names of shape, into an expression a
// row trigger evaluates directly: every reference to a column of shape becomes a
// reference to the record field <record>.<physical column>, or, for the columns in
// vars, to the PL/pgSQL variable vars names. It also returns the physical columns the
// expression reads. The rewrite works on PostgreSQL's own parse tree (libpg_query),
// so string literals, quoted identifiers and function names are never touched; expr
// must have passed checkExpr.
func rowExpr(expr string, shape *Table, record string, vars map[string]string) (string, []string, error) {
	tree, err := pg_query.Parse("SELECT (" + expr + ")")
	if err != nil {
		return "", nil, fmt.Errorf("expression %q does not parse: %s", expr, parserMessage(err))
	}
	var reads []string
	walkColumnRefs(tree.ProtoReflect(), func(ref *pg_query.ColumnRef) {
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
			ref.Fields = []*pg_query.Node{pg_query.MakeStrNode(v)}
			return
		}
		ref.Fields = []*pg_query.Node{pg_query.MakeStrNode(record), pg_query.MakeStrNode(c.Physical)}
	})
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", nil, fmt.Errorf("expression %q: render it for the trigger: %w", expr, err)
	}
	body, ok := strings.CutPrefix(out, "SELECT ")
	if !ok {
		return "", nil, fmt.Errorf("expression %q: render it for the trigger: unexpected %q", expr, out)
	}
	return body, reads, nil
}

// walkColumnRefs calls fn for every column reference in the message m and below it.
func walkColumnRefs(m protoreflect.Message, fn func(*pg_query.ColumnRef)) {
	if ref, ok := m.Interface().(*pg_query.ColumnRef); ok {
		fn(ref)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() != protoreflect.MessageKind || fd.IsMap():
		case fd.IsList():
			for i, l := 0, v.List(); i < l.Len(); i++ {
				walkColumnRefs(l.Get(i).Message(), fn)
			}
		default:
			walkColumnRefs(v.Message(), fn)
		}
		return true
	})
}
