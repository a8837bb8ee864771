package pgtree

import (
	"fmt"
	"reflect"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The tests hold this package's trees against pg_query_go's, which the protobuf runtime
// decodes and encodes: toPgQuery converts a tree of ours into pg_query's types, field by
// field by name, so proto.Equal and proto.Marshal can judge it.

// toPgQuery converts tree into pg_query's types. It fails on a field or a oneof member of
// ours that pg_query does not have; a field of pg_query's that ours lacks stays zero, which
// proto.Equal then finds.
func toPgQuery(tree *ParseResult) (*pg_query.ParseResult, error) {
	v, err := convert(reflect.ValueOf(tree), reflect.TypeOf(&pg_query.ParseResult{}))
	if err != nil {
		return nil, err
	}
	return v.Interface().(*pg_query.ParseResult), nil
}

func convert(v reflect.Value, to reflect.Type) (reflect.Value, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if to.Kind() != reflect.Pointer || v.Type().Elem().Name() != to.Elem().Name() {
			return reflect.Value{}, fmt.Errorf("%s is not pg_query's %s", v.Type(), to)
		}
		if v.IsNil() {
			return reflect.Zero(to), nil
		}
		out := reflect.New(to.Elem())
		if err := convertStruct(v.Elem(), out.Elem()); err != nil {
			return reflect.Value{}, err
		}
		return out, nil
	case reflect.Slice:
		if to.Kind() != reflect.Slice {
			return reflect.Value{}, fmt.Errorf("%s is not pg_query's %s", v.Type(), to)
		}
		if v.IsNil() {
			return reflect.Zero(to), nil
		}
		out := reflect.MakeSlice(to, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			e, err := convert(v.Index(i), to.Elem())
			if err != nil {
				return reflect.Value{}, err
			}
			out.Index(i).Set(e)
		}
		return out, nil
	}
	if v.Kind() != to.Kind() || v.Type().Name() != to.Name() {
		return reflect.Value{}, fmt.Errorf("%s is not pg_query's %s", v.Type(), to)
	}
	return v.Convert(to), nil
}

// convertStruct sets the fields of out, a pg_query message struct, from ours, v.
func convertStruct(v, out reflect.Value) error {
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		sf, ok := out.Type().FieldByName(name)
		if !ok || !sf.IsExported() {
			return fmt.Errorf("pg_query's %s has no field %s", out.Type().Name(), name)
		}
		f := out.FieldByIndex(sf.Index)
		src := v.Field(i)
		if src.Kind() != reflect.Interface {
			c, err := convert(src, f.Type())
			if err != nil {
				return fmt.Errorf("%s.%s: %w", v.Type().Name(), name, err)
			}
			f.Set(c)
			continue
		}
		if src.IsNil() {
			continue
		}
		// A oneof: its wrapper, by name, and the wrapper's one field.
		w := src.Elem().Elem()
		wt, ok := pgWrappers()[w.Type().Name()]
		if !ok {
			return fmt.Errorf("%s.%s: pg_query has no oneof member %s", v.Type().Name(), name, w.Type().Name())
		}
		pw := reflect.New(wt.Elem())
		c, err := convert(w.Field(0), pw.Elem().Field(0).Type())
		if err != nil {
			return fmt.Errorf("%s.%s: %w", v.Type().Name(), name, err)
		}
		pw.Elem().Field(0).Set(c)
		f.Set(pw)
	}
	return nil
}

// pgWrappers maps the name of each of pg_query's oneof wrapper types to the type, found by
// setting each oneof member of each message on a new one.
var pgWrappers = sync.OnceValue(func() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	msgs := pg_query.File_pg_query_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			panic(err)
		}
		for j := 0; j < md.Oneofs().Len(); j++ {
			od := md.Oneofs().Get(j)
			for k := 0; k < od.Fields().Len(); k++ {
				m := mt.New()
				fd := od.Fields().Get(k)
				m.Set(fd, m.NewField(fd))
				st := reflect.ValueOf(m.Interface()).Elem()
				for f := 0; f < st.NumField(); f++ {
					if st.Type().Field(f).Tag.Get("protobuf_oneof") == string(od.Name()) {
						w := st.Field(f).Elem().Type()
						out[w.Elem().Name()] = w
					}
				}
			}
		}
	}
	return out
})
