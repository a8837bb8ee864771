package lint

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// Category groups rules by the kind of harm they prevent.
type Category string

// Rule categories.
const (
	// CategoryLocks: statements that take strong locks for long or rewrite tables.
	CategoryLocks Category = "locks"
	// CategoryTransactions: how locks, timeouts and transactions combine.
	CategoryTransactions Category = "transactions"
	// CategoryCompatibility: changes that break the application version still running.
	CategoryCompatibility Category = "compatibility"
)

// Rule is one check. IDs are stable: configuration and inline ignores refer to them.
type Rule struct {
	// ID is the stable identifier, e.g. "index-not-concurrent".
	ID string
	// Summary is a one-line description.
	Summary string
	// Category is the kind of harm the rule prevents.
	Category Category
	// Severity is the default severity.
	Severity Severity

	check func(p *pass, r *Rule)
	// late rules run after the others on each statement, so that they can leave out a
	// statement another rule already reported for the same cause.
	late bool
}

var registry []*Rule

// register adds a rule to the registry; rule files call it from init.
func register(r *Rule) {
	registry = append(registry, r)
	sort.Slice(registry, func(i, j int) bool {
		if registry[i].late != registry[j].late {
			return !registry[i].late
		}
		return registry[i].ID < registry[j].ID
	})
}

// Rules returns every rule, sorted by ID.
func Rules() []Rule {
	out := make([]Rule, len(registry))
	for i, r := range registry {
		out[i] = *r
		out[i].check = nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LookupRule returns the rule with the given ID.
func LookupRule(id string) (Rule, bool) {
	for _, r := range registry {
		if r.ID == id {
			rr := *r
			rr.check = nil
			return rr, true
		}
	}
	return Rule{}, false
}

// pass is the context a rule sees for one statement: the catalog as it is before the
// statement runs, the transaction and session state, and the locks the statement takes.
type pass struct {
	e     *engine
	st    *statement
	node  *pgtree.Node
	locks []lockTake
	// cascade is what the statement drops through CASCADE (cascade.go).
	cascade []dependent
	// reported holds the rules that reported a finding on this statement so far.
	reported []string
	// alterKeyMemo is alterKey's result, once alterKeyDone.
	alterKeyMemo string
	alterKeyDone bool
}

// buildsIndexBlocking reports whether index-not-concurrent reported this statement. Its
// fix (CONCURRENTLY, outside the transaction) also removes the blocking lock, so the
// timeout and held-lock rules leave the statement to it: one finding per cause.
func (p *pass) buildsIndexBlocking() bool { return slices.Contains(p.reported, "index-not-concurrent") }

func (p *pass) pgVersion() int { return p.e.opts.PGVersion }

// inTx reports whether the statement runs inside a transaction.
func (p *pass) inTx() bool { return p.e.tx != nil }

// isNew reports whether the table was created earlier in the same file: nobody else uses
// it yet, so locking or rewriting it is harmless.
func (p *pass) isNew(key string) bool {
	t := p.e.cat.tables[key]
	return t != nil && t.createdFile == p.e.fileIdx && !t.maybeExisting
}

// table returns the catalog entry for key, or nil.
func (p *pass) table(key string) *table { return p.e.cat.tables[key] }

// alter returns the statement as an ALTER TABLE on a table, or nil.
func (p *pass) alter() *pgtree.AlterTableStmt {
	a := p.node.GetAlterTableStmt()
	if a == nil || a.Objtype != pgtree.ObjectType_OBJECT_TABLE {
		return nil
	}
	return a
}

// alterCmds returns the subcommands of an ALTER TABLE with the given subtype.
func (p *pass) alterCmds(sub pgtree.AlterTableType) []*pgtree.AlterTableCmd {
	a := p.alter()
	if a == nil {
		return nil
	}
	var out []*pgtree.AlterTableCmd
	for _, c := range a.Cmds {
		if cmd := c.GetAlterTableCmd(); cmd != nil && cmd.Subtype == sub {
			out = append(out, cmd)
		}
	}
	return out
}

// lockOn returns the lock the statement takes on table key.
func (p *pass) lockOn(key string) lockMode {
	for _, l := range p.locks {
		if l.table == key {
			return l.mode
		}
	}
	return lockNone
}

// sizeNote describes the table's size when a live catalog provided it.
func (p *pass) sizeNote(key string) string {
	t := p.table(key)
	if t == nil || !t.sizeKnown {
		return ""
	}
	return fmt.Sprintf(" (about %s rows, %s)", humanCount(t.rows), humanBytes(t.bytes))
}

// finding starts a finding for this statement about table key with lock mode m.
func (p *pass) finding(key string, m lockMode) Finding {
	f := Finding{
		File:      p.e.file.name,
		Line:      p.st.line,
		Column:    p.st.col,
		Statement: excerpt(p.st.words()),
		Context:   snippet(p.st.context),
	}
	if key != "" {
		f.Table = displayName(key)
		f.key = key
	}
	if m != lockNone {
		f.Lock = m.String()
		f.Blocks = m.blocks()
	}
	return f
}

// report records f for rule r unless an inline or file-wide ignore suppresses it, and
// returns it (or nil).
func (p *pass) report(r *Rule, f Finding) *Finding {
	if p.ignored(r) {
		return nil
	}
	f.Rule = r.ID
	f.Fingerprint = fingerprint(r.ID, f.Table, p.st.words())
	if t := p.e.cat.tables[f.key]; t != nil && t.maybeExisting {
		f.Message += " (" + displayName(f.key) + " is created with IF NOT EXISTS at " + t.createdAt +
			", but on an installation being upgraded it may exist already, with data; --database-url decides)"
	}
	// A rule may lower its severity for a finding it is unsure of (a warning instead of an
	// error); it never raises it above the configured one.
	sev := p.e.severity[r.ID]
	if f.Severity != SeverityOff && f.Severity < sev {
		sev = f.Severity
	}
	f.Severity = sev
	p.e.findings = append(p.e.findings, &f)
	p.reported = append(p.reported, r.ID)
	return &f
}

// groupKey names a group of findings: the rule and its scope.
type groupKey struct{ rule, scope string }

// reportGrouped reports the finding build makes for rule r once per scope (for example
// once per file, or once per transaction). Later calls with the same scope do not build a
// finding: they add this statement's line, and note when it is not empty, to the first
// one. The engine completes the first finding's message when the file ends.
func (p *pass) reportGrouped(r *Rule, scope, note string, build func() Finding) {
	if p.ignored(r) {
		return
	}
	key := groupKey{r.ID, scope}
	if g, ok := p.e.groups[key]; ok {
		g.Also = append(g.Also, p.st.line)
		g.notes = append(g.notes, note)
		return
	}
	p.e.groups[key] = p.report(r, build())
}

// closeGroups completes the messages of the grouped findings of the current file.
func (e *engine) closeGroups() {
	const also, line = "; the same applies to ", "line "
	for _, f := range e.groups {
		if len(f.Also) == 0 {
			continue
		}
		var num [20]byte
		n := len(f.Message) + len(also)
		for j, l := range f.Also {
			n += len(", ") + len(line) + len(strconv.AppendInt(num[:0], int64(l), 10)) + len(" ()") + len(f.notes[j])
		}
		var b strings.Builder
		b.Grow(n)
		b.WriteString(f.Message)
		b.WriteString(also)
		for j, l := range f.Also {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(line)
			b.Write(strconv.AppendInt(num[:0], int64(l), 10))
			if f.notes[j] != "" {
				b.WriteString(" (")
				b.WriteString(f.notes[j])
				b.WriteByte(')')
			}
		}
		f.Message = b.String()
		f.notes = nil
	}
	clear(e.groups)
}

// sortedFindings returns the findings in the order of the files, then by line and column.
func (e *engine) sortedFindings() []Finding {
	slices.SortStableFunc(e.findings, func(a, b *Finding) int {
		if a.File != b.File {
			return cmp.Compare(e.fileOrder[a.File], e.fileOrder[b.File])
		}
		if a.Line != b.Line {
			return cmp.Compare(a.Line, b.Line)
		}
		return cmp.Compare(a.Column, b.Column)
	})
	out := make([]Finding, len(e.findings))
	for i, f := range e.findings {
		out[i] = *f
	}
	return out
}

// ignored reports whether an inline or file-wide ignore suppresses rule r here.
func (p *pass) ignored(r *Rule) bool {
	ign := p.st.ignores
	return ign["all"] || ign[r.ID] || p.e.file.fileIgnores["all"] || p.e.file.fileIgnores[r.ID]
}

// once returns true the first time it is called with key in the current file.
func (p *pass) once(key string) bool {
	if p.e.once[key] {
		return false
	}
	p.e.once[key] = true
	return true
}

// snippet collapses whitespace and shortens a statement for display.
func snippet(s string) string { return excerpt(collapseSpace(s)) }

// excerpt shortens words (text whose whitespace is collapsed) to about 100 bytes, cut on a
// character boundary, for display.
func excerpt(words string) string {
	const max = 100
	if len(words) <= max {
		return words
	}
	cut := max
	for cut > 0 && words[cut]&0xC0 == 0x80 {
		cut--
	}
	return words[:cut] + "…"
}

// collapseSpace returns the words of s (as strings.Fields splits it) joined by single
// blanks; s itself when it is already so.
func collapseSpace(s string) string {
	b := make([]byte, 0, len(s))
	for w := range strings.FieldsSeq(s) {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, w...)
	}
	if string(b) == s {
		return s
	}
	return string(b)
}

// ident quotes an identifier for the SQL recipes when needed.
func ident(s string) string {
	if s == "" {
		return `"?"`
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || (i > 0 && r >= '0' && r <= '9')) {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
	}
	if reservedWords[s] {
		return `"` + s + `"`
	}
	return s
}

var reservedWords = map[string]bool{
	"user": true, "order": true, "group": true, "table": true, "select": true, "from": true,
	"where": true, "check": true, "default": true, "primary": true, "references": true,
	"column": true, "constraint": true, "index": true, "limit": true, "offset": true,
	"to": true, "end": true, "desc": true, "asc": true, "all": true, "and": true, "or": true,
}

// qname renders a catalog key as SQL, leaving public unqualified.
func qname(key string) string {
	schema, name, ok := strings.Cut(key, ".")
	if !ok {
		return ident(key)
	}
	if schema == "public" {
		return ident(name)
	}
	return ident(schema) + "." + ident(name)
}

func humanCount(n int64) string {
	switch {
	case n >= 1_000_000_000:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprintf("%d", n)
}

func humanBytes(n int64) string {
	if n < 0 {
		return "size unknown"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
