package lint

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walk calls fn for n and, while fn returns true, for every node below it.
func walk(n *pg_query.Node, fn func(*pg_query.Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	walkMessage(n.ProtoReflect(), fn)
}

func walkMessage(m protoreflect.Message, fn func(*pg_query.Node) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitMessage(l.Get(i).Message(), fn)
			}
			return true
		}
		if !fd.IsMap() {
			visitMessage(v.Message(), fn)
		}
		return true
	})
}

func visitMessage(m protoreflect.Message, fn func(*pg_query.Node) bool) {
	if n, ok := m.Interface().(*pg_query.Node); ok {
		walk(n, fn)
		return
	}
	walkMessage(m, fn)
}
