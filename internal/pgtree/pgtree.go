// Package pgtree is Tandem's syntax tree of PostgreSQL's SQL: it parses SQL with
// libpg_query (PostgreSQL's own parser, through pg_query_go's cgo package parser), walks
// the trees, and deparses them back to SQL.
//
// The types (types_gen.go) are those of pg_query_go's package pg_query, with the same
// names, fields, getters and enum values, as plain Go structs: no protobuf runtime, whose
// descriptors for some 270 message types cost every start of the tandem binary a few
// milliseconds. libpg_query hands trees between C and Go as protobuf bytes; tree_gen.go
// decodes them into these types and encodes them back, with plain generated code. Both
// files are written by `go generate ./internal/pgtree` from pg_query_go's schema
// (gen/main.go), so that they follow the pg_query_go version in go.mod.
//
// The decoder does what protobuf's would with input it does not expect: it skips the
// fields it does not know (a newer libpg_query's), and refuses malformed bytes, text that
// is not UTF-8, and nesting deeper than protobuf's recursion limit, with an error. One
// difference: the limit counts messages and skipped unknown groups together, where
// protobuf counts groups apart; libpg_query writes no groups.
package pgtree

//go:generate go run ./gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"

	"github.com/pganalyze/pg_query_go/v6/parser"
)

// Parse parses sql, one or more statements, into its syntax tree. A syntax error is
// libpg_query's *parser.Error, with the position of the error in sql.
func Parse(sql string) (*ParseResult, error) {
	b, err := parser.ParseToProtobuf(sql)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// Decode decodes a protobuf-encoded parse result, as libpg_query writes it.
func Decode(b []byte) (*ParseResult, error) {
	var d decoder
	tree := d.decParseResult(b, nil)
	if d.err != nil {
		return nil, fmt.Errorf("decode the parse tree: %w", d.err)
	}
	return tree, nil
}

// Deparse renders tree as SQL, with libpg_query's deparser. It refuses a string that is
// not UTF-8.
func Deparse(tree *ParseResult) (string, error) {
	e := encoder{buf: make([]byte, 0, 256)}
	e.encParseResult(tree)
	if e.err != nil {
		return "", e.err
	}
	return parser.DeparseFromProtobuf(e.buf)
}

// Walk calls fn for n and, while fn returns true, for every node below it: depth first,
// each message's fields in the order pg_query declares them.
func Walk(n *Node, fn func(*Node) bool) {
	walkNode(n, fn)
}

func walkNode(n *Node, fn func(*Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	walkNodeChildren(n, fn)
}

// MakeStrNode returns a Node holding the String s, as in a list of names.
func MakeStrNode(s string) *Node {
	return &Node{Node: &Node_String_{String_: &String{Sval: s}}}
}

// maxDepth is the protobuf runtime's default recursion limit: messages nested deeper are
// refused, as proto.Unmarshal refuses them.
const maxDepth = 10000

// maxFieldNumber is the largest field number protobuf allows.
const maxFieldNumber = 1<<29 - 1

// The wire types of protobuf's encoding.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// decoder is the state of one decoding: its first error, and how deep in nested messages
// it is.
type decoder struct {
	err   error
	depth int
}

// fail records the decoding's first error.
func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// enter counts one more level of nesting and reports whether that is allowed.
func (d *decoder) enter() bool {
	d.depth++
	if d.depth > maxDepth && d.err == nil {
		d.err = fmt.Errorf("the tree nests deeper than %d levels; split the statement or its expression", maxDepth)
	}
	return d.err == nil
}

func (d *decoder) leave() { d.depth-- }

// uvarint decodes a varint from the start of b and returns it and its length: 0 when b
// ends before it does, negative when it overflows 64 bits.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

var errTruncated = errors.New("the data is cut short or malformed")

// field consumes one field from *b and returns its key (number<<3 | wire type) and value:
// v for a length-delimited field, x for a varint, a fixed64 or a fixed32. A group is
// skipped. Malformed data fails the decoding.
func (d *decoder) field(b *[]byte) (key uint64, v []byte, x uint64) {
	tag, n := uvarint(*b)
	if n <= 0 {
		d.fail("a field's tag: %w", errTruncated)
		return 0, nil, 0
	}
	num := tag >> 3
	if num == 0 || num > maxFieldNumber {
		d.fail("field number %d is not a valid protobuf field number", num)
		return 0, nil, 0
	}
	rest := (*b)[n:]
	switch tag & 7 {
	case wireVarint:
		x, n = uvarint(rest)
	case wireFixed64:
		if n = 8; len(rest) < 8 {
			n = 0
		} else {
			x = binary.LittleEndian.Uint64(rest)
		}
	case wireFixed32:
		if n = 4; len(rest) < 4 {
			n = 0
		} else {
			x = uint64(binary.LittleEndian.Uint32(rest))
		}
	case wireBytes:
		var l uint64
		l, n = uvarint(rest)
		if n > 0 && l <= uint64(len(rest)-n) {
			v = rest[n : n+int(l)]
			n += int(l)
		} else {
			n = 0
		}
	case wireStartGroup:
		n = d.skipGroup(rest, num)
	default:
		d.fail("field %d has wire type %d, which is not valid here", num, tag&7)
		return 0, nil, 0
	}
	if n <= 0 {
		d.fail("field %d: %w", num, errTruncated)
		return 0, nil, 0
	}
	*b = rest[n:]
	return tag, v, x
}

// skipGroup consumes the fields of group num, which no field of the tree is, up to its end
// tag, and returns how many bytes that took; 0 when the group does not end well.
func (d *decoder) skipGroup(b []byte, num uint64) int {
	if !d.enter() {
		return 0
	}
	defer d.leave()
	for rest := b; d.err == nil && len(rest) > 0; {
		if tag, n := uvarint(rest); n > 0 && tag&7 == wireEndGroup {
			if tag>>3 != num {
				d.fail("group %d ends with the end of group %d", num, tag>>3)
				return 0
			}
			return len(b) - len(rest) + n
		}
		d.field(&rest)
	}
	return 0
}

// packedVarint consumes one varint of a packed list.
func (d *decoder) packedVarint(p *[]byte) uint64 {
	x, n := uvarint(*p)
	if n <= 0 {
		d.fail("a packed list of varints: %w", errTruncated)
		*p = nil
		return 0
	}
	*p = (*p)[n:]
	return x
}

// packedFixed64 consumes one fixed64 of a packed list.
func (d *decoder) packedFixed64(p *[]byte) uint64 {
	if len(*p) < 8 {
		d.fail("a packed list of fixed64: %w", errTruncated)
		*p = nil
		return 0
	}
	x := binary.LittleEndian.Uint64(*p)
	*p = (*p)[8:]
	return x
}

// str returns v, the value of string field name, as a string; protobuf's strings must be
// UTF-8.
func (d *decoder) str(v []byte, name string) string {
	if !utf8.Valid(v) {
		d.fail("%s holds text that is not valid UTF-8; save the SQL as UTF-8", name)
		return ""
	}
	return string(v)
}

// encoder appends a message in protobuf's wire format to buf, as proto.Marshal would.
type encoder struct {
	buf []byte
	err error
}

func (e *encoder) tag(num, wire int) {
	e.buf = binary.AppendUvarint(e.buf, uint64(num)<<3|uint64(wire))
}

func (e *encoder) varint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }

func (e *encoder) fixed64(x uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, x) }

// begin starts length-delimited field num, one byte kept for its length; end(p) ends it.
func (e *encoder) begin(num int) int {
	e.tag(num, wireBytes)
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
	k := (bits.Len64(uint64(n)) + 6) / 7 // the length's size as a varint
	e.buf = append(e.buf, make([]byte, k-1)...)
	copy(e.buf[p+k:], e.buf[p+1:p+1+n])
	binary.AppendUvarint(e.buf[:p], uint64(n))
}

// str writes string field num; protobuf's strings must be UTF-8, as proto.Marshal checks.
func (e *encoder) str(num int, s, name string) {
	if !utf8.ValidString(s) && e.err == nil {
		e.err = fmt.Errorf("deparse: %s holds text that is not valid UTF-8", name)
	}
	e.tag(num, wireBytes)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) bytes(num int, v []byte) {
	e.tag(num, wireBytes)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(v)))
	e.buf = append(e.buf, v...)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
