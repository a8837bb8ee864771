package lint

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/report"
)

// Severity is how serious a finding is. Findings at SeverityError make the command fail.
type Severity int

// Severities, from "rule disabled" to "fail the build".
const (
	SeverityOff Severity = iota
	SeverityWarning
	SeverityError
)

// String returns "off", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	default:
		return "off"
	}
}

// MarshalText encodes the severity as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name, see [ParseSeverity].
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses "off", "warning" (or "warn") and "error".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "disable", "disabled", "none":
		return SeverityOff, nil
	case "warning", "warn":
		return SeverityWarning, nil
	case "error":
		return SeverityError, nil
	}
	return SeverityOff, fmt.Errorf("unknown severity %q (want off, warning or error)", s)
}

// Finding is one problem found in one statement.
type Finding struct {
	// Rule is the stable ID of the rule that fired, e.g. "index-not-concurrent".
	Rule string `json:"rule"`
	// Severity is the rule's severity after configuration.
	Severity Severity `json:"severity"`
	// File, Line and Column locate the statement (1-based).
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	// Message says what is wrong, in one sentence.
	Message string `json:"message"`
	// Table is the table the statement affects, when there is one.
	Table string `json:"table,omitempty"`
	// Lock is the lock level the statement takes, e.g. "ACCESS EXCLUSIVE".
	Lock string `json:"lock,omitempty"`
	// Blocks says what the lock blocks while held or queued: "reads and writes", "writes",
	// or "" when it blocks neither.
	Blocks string `json:"blocks,omitempty"`
	// Rewrite is true when the statement rewrites the whole table (or scans it under a lock).
	Rewrite bool `json:"rewrite"`
	// BreaksOldVersion is true when the previous application version, still running during
	// a rolling update, fails after this statement.
	BreaksOldVersion bool `json:"breaks_old_version"`
	// Fix is the safe alternative as SQL (or a short instruction when there is no SQL one).
	Fix string `json:"fix,omitempty"`
	// Statement is the start of the offending statement.
	Statement string `json:"statement"`
	// Context is the comment right before the statement, such as the operation Django's
	// sqlmigrate names ("Add field bio to profile"), when there is one.
	Context string `json:"context,omitempty"`
	// Also lists the lines of later statements in the same file that the same cause
	// affects (a missing lock_timeout, a lock held across the transaction). They are
	// reported here once instead of once per statement.
	Also []int `json:"also_lines,omitempty"`
	// Fingerprint identifies the finding across edits that move it to another line: see
	// [Baseline].
	Fingerprint string `json:"fingerprint"`

	// notes are the short descriptions of the Also statements, for the message.
	notes []string
	// key is the catalog key of Table.
	key string
}

// Source is one migration file's name and content.
type Source struct {
	Name string
	SQL  string
}

// Skipped is a statement the linter could not analyse (a DO block, dynamic SQL).
type Skipped = report.Skipped

// Coverage says how much of the input was analysed.
type Coverage struct {
	Files      int       `json:"files"`
	Statements int       `json:"statements"`
	Analysed   int       `json:"analysed"`
	Skipped    []Skipped `json:"skipped"`
}

// Result is the outcome of linting a set of migration files.
type Result struct {
	Findings []Finding `json:"findings"`
	Coverage Coverage  `json:"coverage"`
	// Hidden counts the findings left out by a baseline or by --since.
	Hidden int `json:"hidden"`
}

// Errors counts the findings at SeverityError.
func (r *Result) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Warnings counts the findings at SeverityWarning.
func (r *Result) Warnings() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityWarning {
			n++
		}
	}
	return n
}

// ParseErrorRule is the rule ID of the finding that reports a file PostgreSQL's parser
// rejects.
const ParseErrorRule = "syntax-error"

// ParseError reports input that PostgreSQL's parser rejects.
type ParseError struct {
	File    string
	Line    int
	Column  int
	Message string
	// Near is the source line the error is on, trimmed and shortened, for the report.
	Near string
}

// Error formats the error as file:line:column: message.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: syntax error: %s", e.File, e.Line, e.Column, e.Message)
}

// DefaultPGVersion is the PostgreSQL major version assumed when none is given.
const DefaultPGVersion = 15

// Options control a lint run.
type Options struct {
	// PGVersion is the major version of the target server (e.g. 15). Zero means
	// DefaultPGVersion.
	PGVersion int
	// Config holds rule settings (disabled rules, severity overrides, runner behaviour).
	Config Config
	// Catalog, when not nil, is the schema as it exists before the first file (for example
	// read from a live database with [LoadCatalog]). It is not modified.
	Catalog *Catalog

	// fullTrees makes every statement parse with its whole tree (tests compare it with
	// the lean parse, see lean.go).
	fullTrees bool
}

// Lint parses and analyses the sources in order, as a migration runner would apply them.
// A file that PostgreSQL's parser rejects becomes a finding of rule [ParseErrorRule] at
// the error's position, and the other files are still analysed; the returned error then
// joins a *ParseError per such file, next to the complete result.
func Lint(sources []Source, opts Options) (*Result, error) {
	if opts.PGVersion == 0 {
		opts.PGVersion = DefaultPGVersion
	}
	if err := opts.Config.validate(); err != nil {
		return nil, err
	}
	e := newEngine(opts)
	var parseErrs []error
	for i, s := range sources {
		if _, ok := e.fileOrder[s.Name]; !ok {
			e.fileOrder[s.Name] = i
		}
		e.result.Coverage.Files++
		pf, err := parseFile(s.Name, s.SQL, !opts.Config.NoForeignIgnores, opts.fullTrees)
		if err == nil {
			err = e.runFile(i, pf)
		}
		if err != nil {
			parseErrs = append(parseErrs, err)
			if pe, ok := AsParseError(err); ok {
				e.findings = append(e.findings, &Finding{
					Rule: ParseErrorRule, Severity: SeverityError, File: pe.File, Line: pe.Line, Column: pe.Column, Statement: pe.Near,
					Message: "PostgreSQL cannot parse this statement (" + pe.Message + "); the rest of the file is not analysed, so later files are judged without its changes",
				})
			}
		}
	}
	res := e.result
	res.Findings = e.sortedFindings()
	if res.Coverage.Skipped == nil {
		res.Coverage.Skipped = []Skipped{}
	}
	return res, errors.Join(parseErrs...)
}

// LintString lints a single SQL text named name; a convenience for tests and tools.
func LintString(name, sql string, opts Options) (*Result, error) {
	return Lint([]Source{{Name: name, SQL: sql}}, opts)
}

// AsParseError reports whether err is (or wraps) a *ParseError and returns it.
func AsParseError(err error) (*ParseError, bool) {
	var pe *ParseError
	ok := errors.As(err, &pe)
	return pe, ok
}
