// Package pgtree parses SQL with pg_query into pg_query's Go syntax trees, deparses them,
// and walks them, without the protobuf runtime's reflection.
//
// pg_query hands trees between C and Go as protobuf, and pg_query.Parse and
// pg_query.Deparse code them with the protobuf runtime, which builds its tables for each
// message type the first time it meets it: in a short `tandem lint` run, that set-up cost
// more than the coding itself. This package codes the same bytes with generated code
// (tree_gen.go, written by `go generate` from pg_query's own descriptors and Go types),
// from and into the same Go types. Input the decoder does not expect (a field it does not
// know, malformed data, a string that is not UTF-8, nesting deeper than the runtime's
// limit) makes it hand the bytes to proto.Unmarshal instead, so the result and the errors
// are always pg_query.Parse's.
package pgtree

//go:generate go run ./gen

import (
	"fmt"
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

// Deparse renders tree as SQL, as pg_query.Deparse does; like it, it refuses a string that
// is not UTF-8.
func Deparse(tree *pg_query.ParseResult) (string, error) {
	e := encoder{buf: make([]byte, 0, 256)}
	e.encParseResult(tree)
	if e.err != nil {
		return "", e.err
	}
	return parser.DeparseFromProtobuf(e.buf)
}

// Walk calls fn for n and, while fn returns true, for every node below it: depth first,
// each message's fields in the order pg_query declares them. (protoreflect's Range, which
// the walk used before, varies that order from binary to binary on purpose.)
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

// encoder appends a message in protobuf's wire format to buf, as proto.Marshal would.
type encoder struct {
	buf []byte
	err error
}

func (e *encoder) tag(num int, wire protowire.Type) {
	e.buf = protowire.AppendTag(e.buf, protowire.Number(num), wire)
}

func (e *encoder) varint(x uint64) { e.buf = protowire.AppendVarint(e.buf, x) }

func (e *encoder) fixed64(x uint64) { e.buf = protowire.AppendFixed64(e.buf, x) }

// begin starts length-delimited field num, one byte kept for its length; end(p) ends it.
func (e *encoder) begin(num int) int {
	e.tag(num, protowire.BytesType)
	e.buf = append(e.buf, 0)
	return len(e.buf) - 1
}

// end writes the length of the field begin started at p, moving its content when the
// length takes more than the byte kept for it.
func (e *encoder) end(p int) {
	n := len(e.buf) - p - 1
	if n < 0x80 {
		e.buf[p] = byte(n)
		return
	}
	k := protowire.SizeVarint(uint64(n))
	e.buf = append(e.buf, make([]byte, k-1)...)
	copy(e.buf[p+k:], e.buf[p+1:p+1+n])
	protowire.AppendVarint(e.buf[:p], uint64(n))
}

// str writes string field num; proto3 strings must be UTF-8, as proto.Marshal checks.
func (e *encoder) str(num int, s, name string) {
	if !utf8.ValidString(s) && e.err == nil {
		e.err = fmt.Errorf("pgtree: field %s is not valid UTF-8", name)
	}
	e.tag(num, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, s)
}

func (e *encoder) bytes(num int, v []byte) {
	e.tag(num, protowire.BytesType)
	e.buf = protowire.AppendBytes(e.buf, v)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
