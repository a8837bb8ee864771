// Package pgtree parses SQL with pg_query into pg_query's Go syntax trees, and walks them,
// without the protobuf runtime's reflection.
//
// pg_query.Parse hands the tree over from C as protobuf and decodes it with the protobuf
// runtime, which builds its tables for each message type the first time it meets it: in a
// short `tandem lint` run, that set-up cost more than the decoding itself. This package
// decodes the same bytes with generated code (tree_gen.go, written by `go generate` from
// pg_query's own descriptors), into the same Go types. Input it does not expect (a field
// it does not know, malformed data, a string that is not UTF-8) makes it hand the bytes to
// proto.Unmarshal instead, so the result and the errors are always pg_query.Parse's.
package pgtree

//go:generate go run ./gen

import (
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Parse parses sql as pg_query.Parse does, with the same result and errors.
func Parse(sql string) (*pg_query.ParseResult, error) {
	b, err := parser.ParseToProtobuf(sql)
	if err != nil {
		return nil, err
	}
	if tree, ok := Decode(b); ok {
		return tree, nil
	}
	tree := &pg_query.ParseResult{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// Decode decodes a protobuf-encoded pg_query.ParseResult with the generated decoder. It
// returns false for input the decoder does not expect; proto.Unmarshal then decides.
func Decode(b []byte) (*pg_query.ParseResult, bool) {
	d := decoder{ok: true}
	tree := d.decParseResult(b)
	return tree, d.ok
}

// Walk calls fn for n and, while fn returns true, for every node below it, in the order
// of the fields of each message (the order of protoreflect's Range).
func Walk(n *pg_query.Node, fn func(*pg_query.Node) bool) {
	walkNode(n, fn)
}

func walkNode(n *pg_query.Node, fn func(*pg_query.Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	walkNodeChildren(n, fn)
}

// maxDepth is the protobuf runtime's default recursion limit: deeper input goes to
// proto.Unmarshal, which reports it.
const maxDepth = protowire.DefaultRecursionLimit

// decoder is the state of one decoding: whether all went as expected so far, and how deep
// in nested messages it is.
type decoder struct {
	ok    bool
	depth int
}

func (d *decoder) fail() { d.ok = false }

// check fails the decoding unless cond holds.
func (d *decoder) check(cond bool) {
	if !cond {
		d.ok = false
	}
}

// enter counts one more level of nesting and reports whether that is allowed.
func (d *decoder) enter() bool {
	d.depth++
	if d.depth > maxDepth {
		d.ok = false
	}
	return d.ok
}

func (d *decoder) leave() { d.depth-- }

// field consumes one field from *b and returns its key (number<<3 | wire type) and value:
// v for a length-delimited field, x for a varint or a fixed64. Other wire types fail.
func (d *decoder) field(b *[]byte) (key uint64, v []byte, x uint64) {
	tag, n := protowire.ConsumeVarint(*b)
	if n < 0 {
		d.fail()
		return 0, nil, 0
	}
	*b = (*b)[n:]
	switch protowire.Type(tag & 7) {
	case protowire.VarintType:
		x, n = protowire.ConsumeVarint(*b)
	case protowire.BytesType:
		v, n = protowire.ConsumeBytes(*b)
	case protowire.Fixed64Type:
		x, n = protowire.ConsumeFixed64(*b)
	default:
		n = -1
	}
	if n < 0 || tag>>3 == 0 {
		d.fail()
		return 0, nil, 0
	}
	*b = (*b)[n:]
	return tag, v, x
}

// packedVarint consumes one varint of a packed list.
func (d *decoder) packedVarint(p *[]byte) uint64 {
	x, n := protowire.ConsumeVarint(*p)
	if n < 0 {
		d.fail()
		*p = nil
		return 0
	}
	*p = (*p)[n:]
	return x
}

// packedFixed64 consumes one fixed64 of a packed list.
func (d *decoder) packedFixed64(p *[]byte) uint64 {
	x, n := protowire.ConsumeFixed64(*p)
	if n < 0 {
		d.fail()
		*p = nil
		return 0
	}
	*p = (*p)[n:]
	return x
}

// str returns v as a string; proto3 strings must be UTF-8.
func (d *decoder) str(v []byte) string {
	if !utf8.Valid(v) {
		d.fail()
		return ""
	}
	return string(v)
}
