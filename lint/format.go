package lint

import (
	"fmt"
	"io"
	"strings"

	"github.com/tandem-pg/tandem/internal/report"
)

// Formats lists the output formats the formatters support.
var Formats = report.Formats

// Write prints res in the named format: "text", "json", "sarif" or "github".
func Write(w io.Writer, format string, res *Result) error {
	if format == "json" {
		// The JSON document holds the findings as they are: no need to convert them.
		return WriteJSON(w, res)
	}
	return report.Write(w, format, tool(), reportFindings(res), Summary(res), jsonDoc(res))
}

// WriteText prints findings for people: location, severity, message and rule, then the
// lock, rewrite and compatibility facts and the safe recipe, then a summary with coverage.
func WriteText(w io.Writer, res *Result) error {
	return report.WriteText(w, tool(), reportFindings(res), Summary(res))
}

// tool describes the linter and its rules to the report writers.
func tool() report.Tool {
	t := report.Tool{Name: "tandem lint", InformationURI: RulesDocURL, FixTitle: "safe recipe"}
	for _, r := range Rules() {
		t.Rules = append(t.Rules, report.Rule{ID: r.ID, Summary: r.Summary, Error: r.Severity == SeverityError})
	}
	// A file that does not parse is reported under its own rule.
	t.Rules = append(t.Rules, report.Rule{ID: ParseErrorRule, Error: true, HelpURI: RulesDocURL,
		Summary: "PostgreSQL's parser rejects the statement; the rest of the file is not analysed"})
	return t
}

// reportFindings converts the findings for the report writers.
func reportFindings(res *Result) []report.Finding {
	out := make([]report.Finding, 0, len(res.Findings))
	for _, f := range res.Findings {
		rf := report.Finding{Rule: f.Rule, Error: f.Severity == SeverityError, File: f.File, Line: f.Line, Column: f.Column,
			Message: f.Message, Context: []string{"statement: " + f.Statement}, Facts: facts(f), Fix: f.Fix, Fingerprint: f.Fingerprint}
		if f.Rule == ParseErrorRule { // no statement to show, nor facts about one
			rf.Context, rf.Facts = nil, ""
			if f.Statement != "" {
				rf.Context = []string{"line: " + f.Statement}
			}
		}
		if f.Context != "" {
			rf.Context = append(rf.Context, "context: "+f.Context)
		}
		out = append(out, rf)
	}
	return out
}

// facts renders the lock, rewrite and compatibility facts of a finding on one line.
func facts(f Finding) string {
	const (
		noLock    = "lock: none on the table"
		rewrites  = " · rewrites table: "
		breaks    = " · breaks running version: "
		continues = " (reads and writes continue)"
	)
	var b strings.Builder
	b.Grow(len("lock: ") + len(f.Lock) + len(" on ") + len(f.Table) + len(continues) + len(f.Blocks) +
		len(rewrites) + len(breaks) + 2*len("yes"))
	if f.Lock == "" {
		b.WriteString(noLock)
	} else {
		b.WriteString("lock: ")
		b.WriteString(f.Lock)
		if f.Table != "" {
			b.WriteString(" on ")
			b.WriteString(f.Table)
		}
		if f.Blocks != "" {
			b.WriteString(" (blocks ")
			b.WriteString(f.Blocks)
			b.WriteString(")")
		} else {
			b.WriteString(continues)
		}
	}
	b.WriteString(rewrites)
	b.WriteString(yesNo(f.Rewrite))
	b.WriteString(breaks)
	b.WriteString(yesNo(f.BreaksOldVersion))
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Summary is the closing line: counts and the coverage of the analysis.
func Summary(res *Result) string {
	c := res.Coverage
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s in %s; %d of %d statements analysed",
		report.Plural(res.Errors(), "error"), report.Plural(res.Warnings(), "warning"), report.Plural(c.Files, "file"), c.Analysed, c.Statements)
	if res.Hidden > 0 {
		fmt.Fprintf(&b, "; %s not shown (in the baseline, or in files --since leaves out)", report.Plural(res.Hidden, "finding"))
	}
	b.WriteString(report.SkippedList("not analysed", c.Skipped))
	return b.String()
}

// jsonReport is the JSON document: findings, coverage and counts.
type jsonReport struct {
	Findings []Finding `json:"findings"`
	Coverage Coverage  `json:"coverage"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Hidden   int       `json:"hidden"`
}

func jsonDoc(res *Result) jsonReport {
	return jsonReport{Findings: res.Findings, Coverage: res.Coverage, Errors: res.Errors(), Warnings: res.Warnings(), Hidden: res.Hidden}
}

// WriteJSON prints the result as one JSON document.
func WriteJSON(w io.Writer, res *Result) error {
	return report.WriteJSON(w, jsonDoc(res))
}

// WriteGitHub prints GitHub Actions workflow commands, which annotate the pull request.
func WriteGitHub(w io.Writer, res *Result) error {
	return report.WriteGitHub(w, tool(), reportFindings(res), Summary(res))
}
