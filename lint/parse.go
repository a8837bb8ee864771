package lint

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/tandem-pg/tandem/internal/pgtree"
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
	node      *pgtree.Node
	text      string // the statement without leading comments and whitespace
	start     int    // byte offset of text in the file
	end       int    // byte offset just past the statement (before the semicolon)
	line      int
	col       int
	seg       int             // index of the top-level segment that holds it, see parsedFile.ends
	context   string          // the comment right before it, e.g. Django's "-- Add field x to y"
	ignores   map[string]bool // rules ignored by an inline comment ("all" for every rule)
	collapsed string          // words, once computed
}

// words returns the statement's text with its whitespace collapsed (see collapseSpace),
// as excerpts and fingerprints show it.
func (st *statement) words() string {
	if st.collapsed == "" {
		st.collapsed = collapseSpace(st.text)
	}
	return st.collapsed
}

// comment is one SQL comment in a file.
type comment struct {
	start, end int // byte offsets; end is exclusive
	text       string
}

// parsedFile is one migration file ready for analysis. Its statements are parsed chunk by
// chunk while the engine runs (see statements), so that a large file never has all its
// syntax trees in memory at once.
type parsedFile struct {
	name        string
	src         string
	text        string // src with the "down" sections blanked
	mode        txMode
	modeReason  string // the directive that set txNone
	fileIgnores map[string]bool
	lineStarts  []int
	// ends are the offsets of the top-level semicolons of text, then len(text): segment i
	// is text[ends[i-1]+1 : ends[i]]. Segments are statements, except where a
	// BEGIN ATOMIC body holds semicolons.
	ends []int
	// segIgnores are the inline suppressions, by segment.
	segIgnores map[int]map[string]bool
	// explicitTx is true when the file controls its own transactions (BEGIN, COMMIT).
	explicitTx bool
	// views are the views the file creates: key -> segment.
	views map[string]int
	// lean is true when head-only statements may be parsed without their tails (lean.go).
	lean bool
	// headerEnd is where the file's header of atlas file directives ends, or -1 (see
	// atlasHeaderEnd).
	headerEnd int
	// metaCommands are the psql meta-commands of the file (see scanSQL), which are not
	// analysed; psql is those and the COPY data, for runners (FileMode).
	metaCommands []metaCommand
	psql         []PsqlPart
	// openCopies are the lines of COPY ... FROM stdin statements whose data has no
	// closing \. line, so that the rest of the file is data.
	openCopies []int
	// changesets are the changesets of a Liquibase formatted SQL file, in order: each
	// runs in a transaction of its own, or none.
	changesets []changeset
	// flywayMixed says the file, named as a Flyway migration, mixes statements Flyway
	// runs outside a transaction with others, which Flyway refuses unless configured with
	// mixed=true.
	flywayMixed bool
}

// isFlywayName reports whether the file is named as a Flyway SQL migration: versioned
// (V, a version, two underscores, a description) or repeatable (R__description), .sql.
func isFlywayName(path string) bool {
	base := filepath.Base(path)
	if !strings.HasSuffix(strings.ToLower(base), ".sql") {
		return false
	}
	if strings.HasPrefix(base, "R__") {
		return true
	}
	version, _, ok := strings.Cut(strings.TrimPrefix(base, "V"), "__")
	return ok && base[0] == 'V' && version != "" && strings.Trim(version, "0123456789._") == ""
}

// flywayNonTransactional reports whether a statement that begins with words is one that
// Flyway detects as unable to run in a transaction, and so runs its migration without one.
// Flyway decides by the statement's leading words, as this does.
func flywayNonTransactional(words []string) bool {
	w := make([]string, len(words))
	for i := range words {
		w[i] = strings.ToLower(words[i])
	}
	at := func(i int, s ...string) bool { return i < len(w) && slices.Contains(s, w[i]) }
	switch {
	case at(0, "create") && at(1, "index") && at(2, "concurrently"),
		at(0, "create") && at(1, "unique") && at(2, "index") && at(3, "concurrently"),
		at(0, "drop") && at(1, "index") && at(2, "concurrently"),
		at(0, "reindex") && (slices.Contains(w, "concurrently") || at(1, "schema", "database", "system")),
		at(0, "vacuum"),
		at(0, "create", "drop") && at(1, "database", "tablespace", "subscription"),
		at(0, "alter") && at(1, "system"),
		at(0, "discard") && at(1, "all"):
		return true
	}
	return false
}

// changeset is where a Liquibase changeset begins ("--changeset author:id"), and whether
// it runs outside a transaction (runInTransaction:false).
type changeset struct {
	start int
	noTx  bool
}

// isLiquibaseHeader reports whether comment is Liquibase's "--liquibase formatted sql".
func isLiquibaseHeader(comment string) bool {
	body, ok := strings.CutPrefix(comment, "--")
	if !ok {
		return false
	}
	words := strings.Fields(strings.ToLower(body))
	return len(words) > 0 && strings.HasPrefix(strings.Join(words, ""), "liquibaseformatted")
}

// isWordThenSpace reports whether s begins with word followed by white space.
func isWordThenSpace(s, word string) bool {
	rest, ok := strings.CutPrefix(s, word)
	return ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t')
}

// runsInTransaction reads a changeset line's runInTransaction attribute (lower-cased):
// Liquibase runs the changeset in a transaction unless the attribute has a value other
// than true.
func runsInTransaction(line string) bool {
	_, v, ok := strings.Cut(line, "runintransaction:")
	if !ok {
		return true
	}
	end := 0
	for end < len(v) && isIdentByte(v[end]) {
		end++
	}
	return end == 0 || v[:end] == "true"
}

// skipSpace returns the offset of the first byte at or after i in s that is not white
// space.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f') {
		i++
	}
	return i
}

// changesetAt returns the index of the changeset that holds offset off, or -1.
func (pf *parsedFile) changesetAt(off int) int {
	return sort.Search(len(pf.changesets), func(i int) bool { return pf.changesets[i].start > off }) - 1
}

// metaCommand is a psql meta-command line of a file: \set, \connect, \i and the like.
type metaCommand struct {
	line int
	text string
}

const (
	ignoreDirective     = "tandem-lint-ignore:"
	ignoreFileDirective = "tandem-lint-ignore-file:"
)

// parseFile reads the comments, directives and statement boundaries of src. foreign says
// whether other tools' suppression comments count (see parseDirective). The statements
// themselves are parsed by statements, leanly (lean.go) unless full.
func parseFile(name, src string, foreign, full bool) (*parsedFile, error) {
	pf := &parsedFile{name: name, src: src, fileIgnores: map[string]bool{}, views: map[string]int{}, headerEnd: atlasHeaderEnd(src)}
	pf.lineStarts = lineStarts(src)
	comments, ends, psql := scanSQL(src)
	pf.text = blankDownSections(src, comments)
	if pf.text != src {
		_, ends, psql = scanSQL(pf.text)
	}
	pf.text = pf.blankPsql(psql)
	pf.ends = append(ends, len(pf.text))

	// Liquibase reads a file as formatted SQL when its first line says so.
	liquibase := len(comments) > 0 && skipSpace(src, 0) == comments[0].start && isLiquibaseHeader(comments[0].text)
	for _, c := range comments {
		body := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(c.text, "--"), "/*"))
		body = strings.TrimSpace(strings.TrimSuffix(body, "*/"))
		lower := strings.ToLower(body)
		switch {
		case liquibase && strings.HasPrefix(c.text, "--") && isWordThenSpace(lower, "changeset"):
			pf.changesets = append(pf.changesets, changeset{start: c.start, noTx: !runsInTransaction(lower)})
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
		if d, ok := pf.directive(c, foreign); ok && d.file {
			for _, r := range d.rules {
				pf.fileIgnores[r] = true
			}
		}
	}
	pf.attachIgnores(comments, foreign)
	pf.scanSegments()
	pf.lean = !full && !containsAtomic(pf.text)
	return pf, nil
}

// segment returns the text of segment i.
func (pf *parsedFile) segment(i int) string {
	from, to := pf.segmentBounds(i)
	return pf.text[from:to]
}

// segmentBounds returns the offsets in text where segment i starts and ends.
func (pf *parsedFile) segmentBounds(i int) (from, to int) {
	if i > 0 {
		from = pf.ends[i-1] + 1
	}
	return clamp(from, pf.ends[i]), pf.ends[i]
}

// scanSegments finds, without parsing the whole file, what the engine must know before
// the first statement runs: whether the file uses BEGIN/COMMIT itself (told by the first
// word of a segment), and the views it creates (only CREATE VIEW segments are parsed).
func (pf *parsedFile) scanSegments() {
	flyway, nonTx, tx := isFlywayName(pf.name), 0, 0
	defer func() {
		// Flyway runs a migration of only such statements outside a transaction.
		if flyway && nonTx > 0 && pf.mode == txFile && !pf.explicitTx {
			if tx == 0 {
				pf.mode, pf.modeReason = txNone, "Flyway (every statement is one it runs outside a transaction)"
			} else {
				pf.flywayMixed = true
			}
		}
	}()
	for i := range pf.ends {
		seg := pf.segment(i)
		var buf [5]string
		words := leadingWords(buf[:0], seg)
		if len(words) == 0 {
			continue
		}
		switch {
		case !flyway:
		case flywayNonTransactional(words):
			nonTx++
		default:
			tx++
		}
		switch strings.ToLower(words[0]) {
		case "begin", "commit":
			pf.explicitTx = true
			continue
		case "end":
			// A BEGIN ATOMIC body's segments end with one: not a transaction's.
			if !containsAtomic(pf.text) {
				pf.explicitTx = true
			}
			continue
		case "start":
			if len(words) > 1 && strings.EqualFold(words[1], "transaction") {
				pf.explicitTx = true
			}
			continue
		case "create":
		default:
			continue
		}
		isView := false
		for _, w := range words[1:] {
			switch strings.ToLower(w) {
			case "or", "replace", "temp", "temporary", "recursive":
				continue
			case "view":
				isView = true
			}
			break
		}
		if !isView {
			continue
		}
		off := indexFold(seg, "view") + len("view")
		if key, _, ok := readQualifiedName(seg, skipSpaceAndComments(seg, off, len(seg))); ok {
			if _, seen := pf.views[key]; !seen {
				pf.views[key] = i
			}
		}
	}
}

// readQualifiedName reads a relation name ([schema.]name, each part plain or
// double-quoted) at offset i of s and returns its catalog key and the offset just past
// it. Plain names are folded to lower case, as PostgreSQL does.
func readQualifiedName(s string, i int) (string, int, bool) {
	var parts []string
	for {
		if i >= len(s) {
			return "", i, false
		}
		if s[i] == '"' {
			end := quotedEnd(s, i, '"', false)
			if end > len(s) || end-i < 2 {
				return "", i, false
			}
			parts = append(parts, strings.ReplaceAll(s[i+1:end-1], `""`, `"`))
			i = end
		} else {
			j := i
			for j < len(s) && (isIdentByte(s[j]) || s[j] == '$') {
				j++
			}
			if j == i {
				return "", i, false
			}
			parts = append(parts, strings.ToLower(s[i:j]))
			i = j
		}
		if i >= len(s) || s[i] != '.' {
			break
		}
		i++
	}
	return qualifiedKey(parts), i, len(parts) > 0 && len(parts) <= 3
}

// leadingWords appends to words, up to its capacity, the words at the start of s, after
// whitespace and comments, and returns it.
func leadingWords(words []string, s string) []string {
	i := skipSpaceAndComments(s, 0, len(s))
	for len(words) < cap(words) && i < len(s) {
		j := i
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
			j++
		}
		if j == i {
			break
		}
		words = append(words, s[i:j])
		i = skipSpaceAndComments(s, j, len(s))
	}
	return words
}

// leadingComment returns the text of the line comments that end right before a statement
// (the last block of them, without the dashes and blank lines), or "".
func leadingComment(s string) string {
	if !strings.Contains(s, "--") {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, " \t\r\n"), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "--") {
			break
		}
		if l = strings.TrimSpace(strings.TrimLeft(l, "-")); l != "" {
			out = append(out, l)
		}
	}
	slices.Reverse(out)
	return strings.Join(out, " ")
}

// chunkSize is how much SQL statements parses at a time.
const chunkSize = 64 << 10

// statements parses the file a chunk of whole segments at a time and calls fn for each
// statement in order. It stops at the first syntax error and returns it as a
// *ParseError (wrapped).
func (pf *parsedFile) statements(fn func(*statement)) error {
	text := pf.text
	seg := 0
	for from := 0; seg < len(pf.ends); {
		last := seg
		for last < len(pf.ends)-1 && pf.ends[last]-from < chunkSize {
			last++
		}
		to := min(pf.ends[last]+1, len(text))
		tree, err := pf.parse(from, to, seg, last)
		var perr *parser.Error
		if err != nil && errors.As(err, &perr) && perr.Cursorpos > 0 {
			// Parse the segments before the one with the error, then come back to it.
			if k := sort.SearchInts(pf.ends, pf.cursorOffset(from, perr.Cursorpos)); k > seg && k <= last {
				last = k - 1
				to = min(pf.ends[last]+1, len(text))
				tree, err = pf.parse(from, to, seg, last)
			}
		}
		if err != nil && to < len(text) {
			// The first segment fails: a BEGIN ATOMIC body whose semicolons split it, or a
			// real error. Parse the rest at once.
			to, last = len(text), len(pf.ends)-1
			tree, err = pf.parse(from, to, seg, last)
		}
		if err != nil {
			return pf.parseError(err, from)
		}
		for _, raw := range tree.Stmts {
			loc := from + int(raw.StmtLocation)
			end := to
			if raw.StmtLen > 0 {
				end = loc + int(raw.StmtLen)
			}
			loc, end = clamp(loc, to), clamp(end, to)
			if end < loc {
				end = loc
			}
			start := skipSpaceAndComments(text, loc, end)
			st := &statement{node: raw.Stmt, start: start, end: end, text: stripComments(strings.TrimSpace(text[start:end]))}
			st.line, st.col = pf.position(start)
			st.seg = sort.SearchInts(pf.ends, start)
			st.context = leadingComment(text[loc:start])
			st.ignores = pf.segIgnores[st.seg]
			fn(st)
		}
		from, seg = to, last+1
	}
	return nil
}

// parse parses text[from:to], segments first..last, leanly when it can (lean.go).
func (pf *parsedFile) parse(from, to, first, last int) (*pgtree.ParseResult, error) {
	if lean, ok := pf.leanChunk(from, to, first, last); ok {
		if tree, err := pgtree.Parse(lean); err == nil {
			return tree, nil
		}
	}
	return pgtree.Parse(pf.text[from:to])
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

// parseError converts pg_query's error, for text parsed from offset from, into a
// *ParseError with a line and column.
func (pf *parsedFile) parseError(err error, from int) error {
	pe := &ParseError{File: pf.name, Line: 1, Column: 1, Message: err.Error()}
	var perr *parser.Error
	if errors.As(err, &perr) && perr.Cursorpos > 0 {
		pe.Line, pe.Column = pf.position(pf.cursorOffset(from, perr.Cursorpos))
	} else {
		pe.Line, pe.Column = pf.position(from)
	}
	pe.Near = pf.lineText(pe.Line)
	if strings.HasPrefix(pf.src, utf8BOM) && pe.Line == 1 {
		pe.Message += "; the file begins with a UTF-8 byte-order mark, which PostgreSQL reads as part of the first word: save the file without it"
	}
	return fmt.Errorf("parse %s: %w", pf.name, pe)
}

// attachIgnores assigns each statement-level suppression comment to a segment: the one
// that ends on the same line before the comment, else the one that contains or follows
// the comment.
func (pf *parsedFile) attachIgnores(comments []comment, foreign bool) {
	pf.segIgnores = map[int]map[string]bool{}
	for _, c := range comments {
		d, ok := pf.directive(c, foreign)
		if !ok || d.file {
			continue
		}
		i := pf.segmentFor(c)
		if i < 0 {
			continue
		}
		if pf.segIgnores[i] == nil {
			pf.segIgnores[i] = map[string]bool{}
		}
		for _, r := range d.rules {
			pf.segIgnores[i][r] = true
		}
	}
}

// directive reads the suppression comment c, if it is one (see parseDirective).
func (pf *parsedFile) directive(c comment, foreign bool) (directive, bool) {
	return parseDirective(c.text, foreign, c.end <= pf.headerEnd)
}

func (pf *parsedFile) segmentFor(c comment) int {
	// A trailing comment after a statement's semicolon, on its last line.
	if k := sort.SearchInts(pf.ends, c.start) - 1; k >= 0 && k < len(pf.ends)-1 && !strings.Contains(pf.src[pf.ends[k]:c.start], "\n") {
		return k
	}
	i := sort.SearchInts(pf.ends, c.end)
	if i < len(pf.ends) {
		return i
	}
	return -1
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

// cursorOffset turns the parser's error position for text parsed from offset from (1 for
// its first character: PostgreSQL counts characters, not bytes) into an offset in the
// file.
func (pf *parsedFile) cursorOffset(from, cursorpos int) int {
	i := clamp(from, len(pf.text))
	for n := 1; n < cursorpos && i < len(pf.text); n++ {
		_, size := utf8.DecodeRuneInString(pf.text[i:])
		i += size
	}
	return i
}

// utf8BOM is the byte-order mark some editors write at the start of a UTF-8 file.
const utf8BOM = "\ufeff"

// lineText returns line n (from 1) of the file, trimmed, and shortened to about 120
// characters, for a report.
func (pf *parsedFile) lineText(n int) string {
	if n < 1 || n > len(pf.lineStarts) {
		return ""
	}
	end := len(pf.src)
	if n < len(pf.lineStarts) {
		end = pf.lineStarts[n]
	}
	line := strings.TrimSpace(strings.TrimPrefix(pf.src[pf.lineStarts[n-1]:end], utf8BOM))
	// Control characters and invalid bytes (a file that is not text) are not printed as
	// they are: they could move a terminal's cursor or break a report.
	r := []rune(strings.Map(func(c rune) rune {
		if c == utf8.RuneError || c != '\t' && unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) {
			return '\ufffd'
		}
		return c
	}, line))
	const max = 120
	if len(r) > max {
		return string(r[:max]) + " …"
	}
	return string(r)
}

// lineStarts returns the offsets where the lines of s start.
func lineStarts(s string) []int {
	starts := make([]int, 1, strings.Count(s, "\n")+1)
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

// psqlSpan is a part of a file that psql reads itself rather than sending to the server:
// a meta-command line, or the data lines that follow a COPY ... FROM stdin (or a \copy
// ... from stdin), up to and including the closing \. line.
type psqlSpan struct {
	start, end int
	kind       psqlKind
	// at is where the COPY statement or the meta-command begins.
	at int
	// semi says the meta-command ends the SQL before it, as a semicolon would (\g,
	// \gexec, ...): the blanked text gets one at start.
	semi bool
	// open says the COPY data has no closing \. line: it runs to the end of the file.
	open bool
}

type psqlKind int

const (
	psqlMeta psqlKind = iota
	psqlCopyData
)

// psqlSendsQuery are the meta-commands that send the query buffer to the server, as a
// semicolon does.
var psqlSendsQuery = map[string]bool{`\g`: true, `\gx`: true, `\gset`: true, `\gexec`: true,
	`\gdesc`: true, `\crosstabview`: true, `\watch`: true}

// scanSQL finds the comments and the top-level semicolons in s, skipping string
// literals, quoted identifiers and dollar-quoted bodies, and the parts of a psql script
// that are psql's: meta-commands (a backslash outside a literal or comment, to the end of
// its line; no SQL token holds one) and the data lines that follow a COPY ... FROM stdin
// statement (pg_dump's output, scripts run with psql -f).
func scanSQL(s string) (out []comment, semis []int, psql []psqlSpan) {
	semis = make([]int, 0, strings.Count(s, ";")+1) // an upper bound; +1 for the end of the text
	stmt := 0                                       // where the current statement began
	copyAt := -1                                    // a COPY ... FROM stdin statement, ended, whose data begins on the next line
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ';':
			semis = append(semis, i)
			if copyAt < 0 && copyFromStdin(s[stmt:i]) {
				copyAt = skipSpaceAndComments(s, stmt, i)
			}
			i++
			stmt = i
		case c == '\n' && copyAt >= 0:
			// psql runs the rest of the COPY's line first, then reads the data.
			span := copyData(s, i+1, copyAt)
			psql = append(psql, span)
			i, stmt, copyAt = span.end, span.end, -1
		case c == '\\':
			end := len(s)
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				end = i + j
			}
			line := s[i:end]
			name := line
			if k := strings.IndexAny(line, " \t\r"); k > 0 {
				name = line[:k]
			}
			span := psqlSpan{start: i, end: end, kind: psqlMeta, at: i}
			sqlBefore := skipSpaceAndComments(s, stmt, i) < i
			if sqlBefore && psqlSendsQuery[name] {
				span.semi = true
				semis = append(semis, i)
			}
			psql = append(psql, span)
			if !sqlBefore || span.semi {
				stmt = end // the next statement begins after it
			}
			i = end
			if name == `\copy` && copyFromStdin(line[1:]) && end < len(s) {
				data := copyData(s, end+1, span.at)
				psql = append(psql, data)
				i, stmt = data.end, data.end
			}
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
					return out, semis, psql
				}
				i += len(tag) + j + len(tag)
			} else {
				i++
			}
		default:
			i++
		}
	}
	if copyAt >= 0 { // a COPY ... FROM stdin at the end of the file, without data
		psql = append(psql, psqlSpan{start: len(s), end: len(s), kind: psqlCopyData, at: copyAt, open: true})
	}
	return out, semis, psql
}

// copyFromStdin reports whether stmt is a COPY whose data follows it in the script: its
// first word is COPY, and FROM STDIN comes outside parentheses, literals and comments.
func copyFromStdin(stmt string) bool {
	depth, prev, first := 0, "", true
	for i := 0; i < len(stmt); {
		c := stmt[i]
		switch {
		case c == '-' && strings.HasPrefix(stmt[i:], "--"):
			j := strings.IndexByte(stmt[i:], '\n')
			if j < 0 {
				return false
			}
			i += j
		case c == '/' && strings.HasPrefix(stmt[i:], "/*"):
			i = blockCommentEnd(stmt, i)
		case c == '\'' || c == '"':
			i, prev = quotedEnd(stmt, i, c, c == '\'' && i > 0 && (stmt[i-1] == 'e' || stmt[i-1] == 'E')), "literal"
		case c == '(' || c == ')':
			if c == '(' {
				depth++
			} else {
				depth--
			}
			i, prev = i+1, ""
		case isIdentByte(c):
			j := i
			for j < len(stmt) && isIdentByte(stmt[j]) {
				j++
			}
			w := stmt[i:j]
			switch {
			case first && !strings.EqualFold(w, "copy"):
				return false
			case depth == 0 && prev == "from" && strings.EqualFold(w, "stdin"):
				return true
			}
			first, prev, i = false, strings.ToLower(w), j
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		default:
			i, prev = i+1, ""
		}
	}
	return false
}

// copyData returns the data lines that begin at start, for the COPY at at: up to and
// including a line that is \. (the span is open when there is none).
func copyData(s string, start, at int) psqlSpan {
	span := psqlSpan{start: start, end: len(s), kind: psqlCopyData, at: at, open: true}
	for line := start; line < len(s); {
		end := len(s)
		if j := strings.IndexByte(s[line:], '\n'); j >= 0 {
			end = line + j
		}
		if strings.TrimRight(s[line:end], "\r") == `\.` {
			span.end, span.open = end, false
			break
		}
		line = end + 1
	}
	return span
}

// blankPsql replaces the psql spans of pf.text with spaces, keeping offsets and lines
// (and a semicolon where a meta-command sends the query), records what they were, and
// returns the text.
func (pf *parsedFile) blankPsql(spans []psqlSpan) string {
	if len(spans) == 0 {
		return pf.text
	}
	b := []byte(pf.text)
	for _, sp := range spans {
		line, _ := pf.position(sp.at)
		switch sp.kind {
		case psqlMeta:
			mc := metaCommand{line: line, text: strings.TrimSpace(pf.text[sp.start:sp.end])}
			pf.metaCommands = append(pf.metaCommands, mc)
			pf.psql = append(pf.psql, PsqlPart{Line: line, What: "psql meta-command " + metaName(mc.text)})
		case psqlCopyData:
			pf.psql = append(pf.psql, PsqlPart{Line: line, What: "COPY ... FROM stdin"})
			if sp.open {
				pf.openCopies = append(pf.openCopies, line)
			}
		}
		for k := sp.start; k < sp.end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		if sp.semi {
			b[sp.start] = ';'
		}
	}
	return string(b)
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
