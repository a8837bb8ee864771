package lint

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Formats lists the output formats the formatters support.
var Formats = []string{"text", "json", "sarif", "github"}

// Write prints res in the named format: "text", "json", "sarif" or "github".
func Write(w io.Writer, format string, res *Result) error {
	switch format {
	case "", "text":
		return WriteText(w, res)
	case "json":
		return WriteJSON(w, res)
	case "sarif":
		return WriteSARIF(w, res)
	case "github":
		return WriteGitHub(w, res)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// WriteText prints findings for people: location, severity, message and rule, then the
// lock, rewrite and compatibility facts and the safe recipe, then a summary with coverage.
func WriteText(w io.Writer, res *Result) error {
	ew := newErrWriter(w)
	for _, f := range res.Findings {
		ew.printf("%s:%d:%d: %s: %s [%s]\n", f.File, f.Line, f.Column, f.Severity, f.Message, f.Rule)
		ew.printf("    statement: %s\n", f.Statement)
		if f.Context != "" {
			ew.printf("    context: %s\n", f.Context)
		}
		ew.printf("    %s\n", facts(f))
		if f.Fix != "" {
			ew.printf("    safe recipe:\n")
			for _, l := range strings.Split(f.Fix, "\n") {
				ew.printf("      %s\n", l)
			}
		}
		ew.printf("\n")
	}
	ew.printf("%s\n", Summary(res))
	return ew.flush()
}

// facts renders the lock, rewrite and compatibility facts of a finding on one line.
func facts(f Finding) string {
	lock := "lock: none on the table"
	if f.Lock != "" {
		lock = "lock: " + f.Lock
		if f.Table != "" {
			lock += " on " + f.Table
		}
		if f.Blocks != "" {
			lock += " (blocks " + f.Blocks + ")"
		} else {
			lock += " (reads and writes continue)"
		}
	}
	return fmt.Sprintf("%s · rewrites table: %s · breaks running version: %s", lock, yesNo(f.Rewrite), yesNo(f.BreaksOldVersion))
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
		plural(res.Errors(), "error"), plural(res.Warnings(), "warning"), plural(c.Files, "file"), c.Analysed, c.Statements)
	if res.Hidden > 0 {
		fmt.Fprintf(&b, "; %s not shown (in the baseline, or in files --since leaves out)", plural(res.Hidden, "finding"))
	}
	if len(c.Skipped) > 0 {
		b.WriteString("; not analysed:")
		for i, s := range c.Skipped {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s:%d (%s)", s.File, s.Line, s.Reason)
		}
	}
	return b.String()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// jsonReport is the JSON document: findings, coverage and counts.
type jsonReport struct {
	Findings []Finding `json:"findings"`
	Coverage Coverage  `json:"coverage"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Hidden   int       `json:"hidden"`
}

// WriteJSON prints the result as one JSON document.
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonReport{Findings: res.Findings, Coverage: res.Coverage, Errors: res.Errors(), Warnings: res.Warnings(), Hidden: res.Hidden}); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteGitHub prints GitHub Actions workflow commands, which annotate the pull request.
func WriteGitHub(w io.Writer, res *Result) error {
	ew := newErrWriter(w)
	for _, f := range res.Findings {
		level := "warning"
		if f.Severity == SeverityError {
			level = "error"
		}
		msg := f.Message + "\n" + facts(f)
		if f.Fix != "" {
			msg += "\nSafe recipe:\n" + f.Fix
		}
		ew.printf("::%s file=%s,line=%d,col=%d,title=%s::%s\n", level,
			ghProperty(f.File), f.Line, f.Column, ghProperty("tandem lint: "+f.Rule), ghData(msg))
	}
	ew.printf("%s\n", Summary(res))
	return ew.flush()
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// errWriter buffers a report (one write, not one per line) and keeps the first write
// error.
type errWriter struct {
	w   *bufio.Writer
	err error
}

func newErrWriter(w io.Writer) *errWriter { return &errWriter{w: bufio.NewWriterSize(w, 64<<10)} }

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	if _, err := fmt.Fprintf(e.w, format, args...); err != nil {
		e.err = fmt.Errorf("write report: %w", err)
	}
}

// flush writes out what is buffered and returns the first error.
func (e *errWriter) flush() error {
	if e.err == nil {
		if err := e.w.Flush(); err != nil {
			e.err = fmt.Errorf("write report: %w", err)
		}
	}
	return e.err
}
