package lint

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

// txMode is how the runner executes a file.
type txMode int

const (
	// txFile: the runner wraps the whole file in one transaction (the common default).
	txFile txMode = iota
	// txNone: the runner executes statements one by one, outside a transaction.
	txNone
)

// statement is one parsed SQL statement and where it is.
type statement struct {
	node    *pg_query.Node
	text    string // the statement without leading comments and whitespace
	start   int    // byte offset of text in the file
	end     int    // byte offset just past the statement (before the semicolon)
	line    int
	col     int
	ignores map[string]bool // rules ignored by an inline comment ("all" for every rule)
}

// comment is one SQL comment in a file.
type comment struct {
	start, end int // byte offsets; end is exclusive
	text       string
}

// parsedFile is one migration file ready for analysis.
type parsedFile struct {
	name        string
	src         string
	stmts       []*statement
	mode        txMode
	modeReason  string // the directive that set txNone
	fileIgnores map[string]bool
	lineStarts  []int
}

const (
	ignoreDirective     = "tandem-lint-ignore:"
	ignoreFileDirective = "tandem-lint-ignore-file:"
)

// parseFile parses src and collects statements, comments and directives. foreign says
// whether other tools' suppression comments count (see parseDirective).
func parseFile(name, src string, foreign bool) (*parsedFile, error) {
	pf := &parsedFile{name: name, src: src, fileIgnores: map[string]bool{}}
	pf.lineStarts = lineStarts(src)
	comments := scanComments(src)
	text := blankDownSections(src, comments)

	for _, c := range comments {
		body := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(c.text, "--"), "/*"))
		body = strings.TrimSpace(strings.TrimSuffix(body, "*/"))
		lower := strings.ToLower(body)
		switch {
		case strings.HasPrefix(lower, "+goose no transaction"):
			pf.mode, pf.modeReason = txNone, "-- +goose NO TRANSACTION"
		case strings.HasPrefix(lower, "atlas:txmode none"):
			pf.mode, pf.modeReason = txNone, "-- atlas:txmode none"
		case strings.HasPrefix(lower, "morph:nontransactional"):
			pf.mode, pf.modeReason = txNone, "-- morph:nontransactional"
		case lower == "no-transaction" || lower == "no transaction":
			pf.mode, pf.modeReason = txNone, "-- no-transaction"
		case strings.HasPrefix(lower, "migrate:up") && strings.Contains(lower, "transaction:false"):
			pf.mode, pf.modeReason = txNone, "-- migrate:up transaction:false"
		}
		if d, ok := parseDirective(c.text, foreign); ok && d.file {
			for _, r := range d.rules {
				pf.fileIgnores[r] = true
			}
		}
	}

	tree, err := pg_query.Parse(text)
	if err != nil {
		return nil, pf.parseError(err)
	}
	for _, raw := range tree.Stmts {
		loc := int(raw.StmtLocation)
		end := len(text)
		if raw.StmtLen > 0 {
			end = loc + int(raw.StmtLen)
		}
		if loc < 0 || loc > len(text) || end > len(text) || end < loc {
			loc, end = clamp(loc, len(text)), clamp(end, len(text))
		}
		start := skipSpaceAndComments(text, loc, end)
		st := &statement{node: raw.Stmt, start: start, end: end, text: strings.TrimSpace(text[start:end])}
		st.line, st.col = pf.position(start)
		pf.stmts = append(pf.stmts, st)
	}
	pf.attachIgnores(comments, foreign)
	return pf, nil
}

func clamp(v, n int) int {
	if v < 0 {
		return 0
	}
	if v > n {
		return n
	}
	return v
}

// parseError converts pg_query's error into a *ParseError with a line and column.
func (pf *parsedFile) parseError(err error) error {
	pe := &ParseError{File: pf.name, Line: 1, Column: 1, Message: err.Error()}
	var perr *parser.Error
	if errors.As(err, &perr) && perr.Cursorpos > 0 {
		pe.Line, pe.Column = pf.position(clamp(perr.Cursorpos-1, len(pf.src)))
	}
	return fmt.Errorf("parse %s: %w", pf.name, pe)
}

// attachIgnores assigns each statement-level suppression comment to a statement: the
// statement that ends on the same line before the comment, else the statement that
// contains or follows the comment.
func (pf *parsedFile) attachIgnores(comments []comment, foreign bool) {
	for _, c := range comments {
		d, ok := parseDirective(c.text, foreign)
		if !ok || d.file {
			continue
		}
		rules := d.rules
		target := pf.statementFor(c)
		if target == nil {
			continue
		}
		if target.ignores == nil {
			target.ignores = map[string]bool{}
		}
		for _, r := range rules {
			target.ignores[r] = true
		}
	}
}

func (pf *parsedFile) statementFor(c comment) *statement {
	cline, _ := pf.position(c.start)
	// A trailing comment after the statement's semicolon, on its last line.
	for _, st := range pf.stmts {
		if st.end <= c.start {
			if l, _ := pf.position(st.end); l == cline && !strings.Contains(pf.src[st.end:c.start], "\n") {
				return st
			}
		}
	}
	i := sort.Search(len(pf.stmts), func(i int) bool { return pf.stmts[i].end >= c.end })
	if i < len(pf.stmts) {
		return pf.stmts[i]
	}
	return nil
}

// splitRules splits "a, b c" into rule IDs, stopping at the end of a block comment.
func splitRules(s string) []string {
	s = strings.TrimSuffix(strings.TrimSpace(s), "*/")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		f = strings.ToLower(strings.TrimSpace(f))
		if f != "" && f != "*/" {
			out = append(out, f)
		}
	}
	return out
}

// position returns the 1-based line and column (in characters) of byte offset off.
func (pf *parsedFile) position(off int) (line, col int) {
	off = clamp(off, len(pf.src))
	i := sort.Search(len(pf.lineStarts), func(i int) bool { return pf.lineStarts[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, utf8.RuneCountInString(pf.src[pf.lineStarts[i]:off]) + 1
}

func lineStarts(s string) []int {
	starts := []int{0}
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// skipSpaceAndComments returns the offset of the first byte of s[from:to] that is neither
// whitespace nor part of a comment.
func skipSpaceAndComments(s string, from, to int) int {
	i := from
	for i < to {
		switch {
		case s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == ';':
			i++
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return to
			}
			i += j + 1
		case strings.HasPrefix(s[i:], "/*"):
			i = blockCommentEnd(s, i)
		default:
			return i
		}
	}
	return clamp(i, to)
}

// blockCommentEnd returns the offset after the (possibly nested) block comment at i.
func blockCommentEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// scanComments finds the comments in s, skipping string literals, quoted identifiers and
// dollar-quoted bodies.
func scanComments(s string) []comment {
	var out []comment
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			end := len(s)
			if j >= 0 {
				end = i + j
			}
			out = append(out, comment{start: i, end: end, text: s[i:end]})
			i = end
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			end := blockCommentEnd(s, i)
			out = append(out, comment{start: i, end: end, text: s[i:end]})
			i = end
		case c == '\'':
			backslash := i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i < 2 || !isIdentByte(s[i-2]))
			i = quotedEnd(s, i, '\'', backslash)
		case c == '"':
			i = quotedEnd(s, i, '"', false)
		case c == '$':
			if tag, ok := dollarTag(s, i); ok {
				j := strings.Index(s[i+len(tag):], tag)
				if j < 0 {
					return out
				}
				i += len(tag) + j + len(tag)
			} else {
				i++
			}
		default:
			i++
		}
	}
	return out
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= 0x80
}

// quotedEnd returns the offset after the quoted token starting at i.
func quotedEnd(s string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(s); j++ {
		switch {
		case backslash && s[j] == '\\':
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// dollarTag returns the dollar-quote opening tag ($$ or $name$) at i, if there is one.
func dollarTag(s string, i int) (string, bool) {
	if i > 0 && isIdentByte(s[i-1]) {
		return "", false // part of an identifier like a$b, or a parameter $1
	}
	for j := i + 1; j < len(s); j++ {
		switch b := s[j]; {
		case b == '$':
			return s[i : j+1], true
		case b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= 0x80 || (j > i+1 && b >= '0' && b <= '9'):
		default:
			return "", false
		}
	}
	return "", false
}

// blankDownSections replaces the "down" parts of files that hold both directions (goose's
// "-- +goose Down", dbmate's "-- migrate:down") with spaces, keeping offsets and lines.
func blankDownSections(src string, comments []comment) string {
	var b []byte
	down := -1
	flush := func(to int) {
		if down < 0 {
			return
		}
		if b == nil {
			b = []byte(src)
		}
		for k := down; k < to; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		down = -1
	}
	for _, c := range comments {
		body := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(c.text, "--")))
		switch {
		case strings.HasPrefix(body, "+goose down") || strings.HasPrefix(body, "migrate:down"):
			if down < 0 {
				down = c.start
			}
		case strings.HasPrefix(body, "+goose up") || strings.HasPrefix(body, "migrate:up"):
			flush(c.start)
		}
	}
	flush(len(src))
	if b == nil {
		return src
	}
	return string(b)
}

// indexFold is a case-insensitive strings.Index for an ASCII needle that, unlike searching
// a lowered copy, returns offsets valid in s even when s holds invalid UTF-8.
func indexFold(s, sub string) int {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], sub) {
			return i
		}
	}
	return -1
}
