package lint

import (
	"strings"

	"github.com/pganalyze/pg_query_go/v6/parser"
)

// Lean parsing.
//
// pg_query hands a syntax tree over as protobuf: packing it in C and unpacking it in Go
// cost about ten times the parse itself, in proportion to the size of the tree. Some
// statements are read only by their head: an UPDATE, INSERT or DELETE by the table it
// writes (its lock), a CREATE VIEW by the view's name (the catalog). A view's query or an
// UPDATE's SET and WHERE clauses are most of their tree, and no rule reads them.
//
// So the text given to the parser has the tail of such statements replaced by a minimal
// one of the same length (" SET a=1" for an UPDATE, " SELECT" for an INSERT's source and a
// view's query, nothing for a DELETE), padded with blanks, so every offset stays what it
// was. The statements as written are first checked by the raw parser alone, which hands
// no tree over: a syntax error anywhere in them makes the chunk parse as written, so
// errors are found and placed as before. Files with BEGIN ATOMIC bodies, whose
// semicolons do not end statements, are parsed as written.

// leanChunk returns text[from:to], made of segments first..last, with the tails of
// head-only statements replaced (see above), and whether there were any. It returns false
// when a statement so changed does not parse as written.
func (pf *parsedFile) leanChunk(from, to, first, last int) (string, bool) {
	if !pf.lean {
		return "", false
	}
	var b []byte
	var written []string
	for i := first; i <= last; i++ {
		start, end := pf.segmentBounds(i)
		s := pf.text[start:end]
		cut, tail, ok := leanTail(s)
		if !ok {
			continue
		}
		if b == nil {
			b = []byte(pf.text[from:to])
		}
		at := start - from + cut
		n := copy(b[at:], tail)
		for k := at + n; k < end-from; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		written = append(written, s)
	}
	if b == nil {
		return "", false
	}
	// Each segment is one statement; a newline ends a line comment a segment may end in.
	if _, err := parser.IsUtilityStmt(strings.Join(written, "\n;\n")); err != nil {
		return "", false
	}
	return string(b), true
}

// leanTail returns where the part of statement s that no rule reads starts, and the
// minimal text to put there; ok is false when s is not a head-only statement, or when
// its head is not plain enough to be sure where it ends.
func leanTail(s string) (cut int, tail string, ok bool) {
	i := skipSpaceAndComments(s, 0, len(s))
	switch {
	case wordAt(s, i, "update"):
		i = skipWord(s, i+len("update"), "only")
		cut, tail = nameEnd(s, i), " SET a=1"
	case wordAt(s, i, "insert"):
		i = skipSpaceAndComments(s, i+len("insert"), len(s))
		if !wordAt(s, i, "into") {
			return 0, "", false
		}
		i = skipSpaceAndComments(s, i+len("into"), len(s))
		cut, tail = nameEnd(s, i), " SELECT"
	case wordAt(s, i, "delete"):
		i = skipSpaceAndComments(s, i+len("delete"), len(s))
		if !wordAt(s, i, "from") {
			return 0, "", false
		}
		i = skipWord(s, i+len("from"), "only")
		cut, tail = nameEnd(s, i), ""
	case wordAt(s, i, "create"):
		cut, tail = viewQuery(s, i+len("create")), " SELECT"
	default:
		return 0, "", false
	}
	if cut < 0 || len(s)-cut < len(tail) {
		return 0, "", false
	}
	return cut, tail, true
}

// viewQuery returns the offset just after the AS of CREATE [OR REPLACE] [TEMP] VIEW name
// [(columns)] [WITH (options)] AS query, the create keyword ending at i, or -1.
func viewQuery(s string, i int) int {
	i = skipSpaceAndComments(s, i, len(s))
	if wordAt(s, i, "or") {
		i = skipSpaceAndComments(s, i+len("or"), len(s))
		if !wordAt(s, i, "replace") {
			return -1
		}
		i += len("replace")
	}
	i = skipSpaceAndComments(s, i, len(s))
	for _, w := range []string{"temporary", "temp"} {
		if wordAt(s, i, w) {
			i = skipSpaceAndComments(s, i+len(w), len(s))
			break
		}
	}
	if !wordAt(s, i, "view") {
		return -1
	}
	i = nameEnd(s, skipSpaceAndComments(s, i+len("view"), len(s)))
	if i < 0 {
		return -1
	}
	i = skipSpaceAndComments(s, i, len(s))
	if i < len(s) && s[i] == '(' {
		if i = parenEnd(s, i); i < 0 {
			return -1
		}
		i = skipSpaceAndComments(s, i, len(s))
	}
	if wordAt(s, i, "with") {
		i = skipSpaceAndComments(s, i+len("with"), len(s))
		if i >= len(s) || s[i] != '(' {
			return -1
		}
		if i = parenEnd(s, i); i < 0 {
			return -1
		}
		i = skipSpaceAndComments(s, i, len(s))
	}
	if !wordAt(s, i, "as") {
		return -1
	}
	return i + len("as")
}

// wordAt reports whether the keyword w (lower case) is at offset i of s, as a whole word.
func wordAt(s string, i int, w string) bool {
	if i < 0 || i+len(w) > len(s) || !strings.EqualFold(s[i:i+len(w)], w) {
		return false
	}
	return i+len(w) == len(s) || !isIdentByte(s[i+len(w)]) && s[i+len(w)] != '$'
}

// skipWord skips the whitespace and comments from i and then the keyword w if it is there.
func skipWord(s string, i int, w string) int {
	i = skipSpaceAndComments(s, i, len(s))
	if wordAt(s, i, w) {
		i = skipSpaceAndComments(s, i+len(w), len(s))
	}
	return i
}

// nameEnd returns the offset just past the relation name at i, or -1 unless what follows
// it shows that the name is whole: the end of s, or a blank, a comment, "(" or "*" that
// is not followed by a dot.
func nameEnd(s string, i int) int {
	_, end, ok := readQualifiedName(s, i)
	if !ok {
		return -1
	}
	if end < len(s) {
		switch c := s[end]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(' || c == '*':
		case strings.HasPrefix(s[end:], "--") || strings.HasPrefix(s[end:], "/*"):
		default:
			return -1
		}
		if next := skipSpaceAndComments(s, end, len(s)); next < len(s) && s[next] == '.' {
			return -1
		}
	}
	return end
}

// parenEnd returns the offset just past the parenthesised group that opens at i (string
// literals, quoted names and comments inside skipped), or -1 if it is not closed.
func parenEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			i++
			if depth == 0 {
				return i
			}
		case c == '\'':
			i = quotedEnd(s, i, c, i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i < 2 || !isIdentByte(s[i-2])))
		case c == '"':
			i = quotedEnd(s, i, c, false)
		case c == '$':
			tag, ok := dollarTag(s, i)
			if !ok {
				i++
				continue
			}
			j := strings.Index(s[i+len(tag):], tag)
			if j < 0 {
				return -1
			}
			i += 2*len(tag) + j
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return -1
			}
			i += j + 1
		case strings.HasPrefix(s[i:], "/*"):
			i = blockCommentEnd(s, i)
		default:
			i++
		}
	}
	return -1
}

// containsAtomic reports whether s holds the word ATOMIC in any case, as in a
// BEGIN ATOMIC body.
func containsAtomic(s string) bool {
	for i := 0; i+len("atomic") <= len(s); i++ {
		if s[i]|0x20 == 'a' && strings.EqualFold(s[i:i+len("atomic")], "atomic") {
			return true
		}
	}
	return false
}
