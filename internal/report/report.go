// Package report prints the findings of tandem's static checks (`tandem lint` on SQL
// migrations, `tandem check` on Kubernetes manifests) in the formats both offer: text for
// people, JSON, SARIF 2.1.0 for code scanning, and GitHub Actions workflow commands that
// annotate a pull request.
//
// Each checker converts its own findings into [Finding] values and calls the writers; the
// layout of each format lives here only.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Formats lists the output formats the writers support.
var Formats = []string{"text", "json", "sarif", "github"}

// Finding is one finding in the shape every format prints.
type Finding struct {
	// Rule is the stable ID of the rule that fired.
	Rule string
	// Error is true for a finding at error level, false for a warning.
	Error bool
	// File, Line and Column locate the finding (1-based; 0 when unknown).
	File   string
	Line   int
	Column int
	// Message says what is wrong.
	Message string
	// Context are lines shown under the message in the text format only (the statement,
	// the object).
	Context []string
	// Facts is one line shown after the message in every format.
	Facts string
	// Fix is the remedy (SQL, YAML), shown under FixTitle.
	Fix string
	// Fingerprint identifies the finding across edits that move it; SARIF carries it.
	Fingerprint string
}

// Tool describes the checker for SARIF and the GitHub annotations' titles.
type Tool struct {
	// Name is the tool's name, e.g. "tandem lint"; annotation titles are "Name: rule".
	Name string
	// InformationURI is where its rules are documented; each rule links to #id there.
	InformationURI string
	// FixTitle introduces the fix, e.g. "safe recipe" (text) / "Safe recipe" (others).
	FixTitle string
	// Rules are the rules a result may name.
	Rules []Rule
}

// Rule is one rule as SARIF lists it.
type Rule struct {
	ID      string
	Summary string
	// Error is the rule's default level: true for error, false for warning.
	Error bool
	// HelpURI overrides InformationURI#ID.
	HelpURI string
}

func (t Tool) fixTitle() string {
	if t.FixTitle == "" {
		return "fix"
	}
	return t.FixTitle
}

// capitalized returns s with its first letter upper-cased.
func capitalized(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// WriteText prints findings for people: location, severity, message and rule, the
// context lines and facts, the fix; then the summary line.
func WriteText(w io.Writer, t Tool, findings []Finding, summary string) error {
	ew := newErrWriter(w)
	for _, f := range findings {
		ew.location(f)
		ew.str(": ", level(f.Error), ": ", f.Message, " [", f.Rule, "]\n")
		for _, c := range f.Context {
			ew.str("    ", c, "\n")
		}
		if f.Facts != "" {
			ew.str("    ", f.Facts, "\n")
		}
		if f.Fix != "" {
			ew.str("    ", t.fixTitle(), ":\n")
			for l := range strings.SplitSeq(f.Fix, "\n") {
				ew.str("      ", l, "\n")
			}
		}
		ew.str("\n")
	}
	ew.str(summary, "\n")
	return ew.flush()
}

func level(isError bool) string {
	if isError {
		return "error"
	}
	return "warning"
}

// longText is the message with facts and fix, for formats that show one text.
func longText(t Tool, f Finding) string {
	msg := f.Message
	if f.Facts != "" {
		msg += "\n" + f.Facts
	}
	if f.Fix != "" {
		msg += "\n" + capitalized(t.fixTitle()) + ":\n" + f.Fix
	}
	return msg
}

// WriteJSON prints doc as one indented JSON document, HTML characters unescaped.
func WriteJSON(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteGitHub prints GitHub Actions workflow commands, which annotate the pull request,
// then the summary line.
func WriteGitHub(w io.Writer, t Tool, findings []Finding, summary string) error {
	ew := newErrWriter(w)
	for _, f := range findings {
		props := "file=" + ghProperty(f.File)
		if f.Line > 0 {
			props += fmt.Sprintf(",line=%d", f.Line)
			if f.Column > 0 {
				props += fmt.Sprintf(",col=%d", f.Column)
			}
		}
		ew.printf("::%s %s,title=%s::%s\n", level(f.Error), props,
			ghProperty(t.Name+": "+f.Rule), ghData(longText(t, f)))
	}
	ew.printf("%s\n", summary)
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

// Plural renders a count with its noun: "1 error", "2 errors".
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// errWriter buffers a report (one write per line costs a system call each) and keeps
// the first write error.
type errWriter struct {
	w   *bufio.Writer
	err error
}

func newErrWriter(w io.Writer) *errWriter { return &errWriter{w: bufio.NewWriterSize(w, 64<<10)} }

// flush writes out what is buffered and returns the first error.
func (e *errWriter) flush() error {
	if e.err == nil {
		if err := e.w.Flush(); err != nil {
			e.err = fmt.Errorf("write report: %w", err)
		}
	}
	return e.err
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	if _, err := fmt.Fprintf(e.w, format, args...); err != nil {
		e.err = fmt.Errorf("write report: %w", err)
	}
}

// str writes the strings one after the other. (Without fmt: the text report of a long
// history is hundreds of kilobytes.)
func (e *errWriter) str(parts ...string) {
	for _, p := range parts {
		if e.err != nil {
			return
		}
		if _, err := e.w.WriteString(p); err != nil {
			e.err = fmt.Errorf("write report: %w", err)
		}
	}
}

// location writes file:line:column, leaving out what is unknown.
func (e *errWriter) location(f Finding) {
	file := f.File
	if file == "" {
		file = "-"
	}
	e.str(file)
	if f.Line > 0 {
		e.str(":")
		e.int(f.Line)
		if f.Column > 0 {
			e.str(":")
			e.int(f.Column)
		}
	}
}

// int writes n in decimal.
func (e *errWriter) int(n int) {
	if e.err != nil {
		return
	}
	var buf [20]byte
	if _, err := e.w.Write(strconv.AppendInt(buf[:0], int64(n), 10)); err != nil {
		e.err = fmt.Errorf("write report: %w", err)
	}
}

type sarifLog struct {
	Version string     `json:"version"`
	Schema  string     `json:"$schema"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	ShortDescription     sarifMessage `json:"shortDescription"`
	HelpURI              string       `json:"helpUri"`
	DefaultConfiguration struct {
		Level string `json:"level"`
	} `json:"defaultConfiguration"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex *int            `json:"ruleIndex,omitempty"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations"`
	// PartialFingerprints lets code scanning follow a finding across line changes.
	PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
		Region struct {
			StartLine   int `json:"startLine"`
			StartColumn int `json:"startColumn"`
		} `json:"region"`
	} `json:"physicalLocation"`
}

// WriteSARIF prints the findings as a SARIF 2.1.0 log, for code scanning tools.
func WriteSARIF(w io.Writer, t Tool, findings []Finding) error {
	driver := sarifDriver{Name: t.Name, InformationURI: t.InformationURI}
	index := map[string]int{}
	for i, r := range t.Rules {
		help := r.HelpURI
		if help == "" {
			help = t.InformationURI + "#" + r.ID
		}
		sr := sarifRule{ID: r.ID, ShortDescription: sarifMessage{Text: r.Summary}, HelpURI: help}
		sr.DefaultConfiguration.Level = level(r.Error)
		driver.Rules = append(driver.Rules, sr)
		index[r.ID] = i
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range findings {
		r := sarifResult{RuleID: f.Rule, Level: level(f.Error), Message: sarifMessage{Text: longText(t, f)}}
		if i, ok := index[f.Rule]; ok { // a rule the tool does not list has no index
			r.RuleIndex = &i
		}
		if f.Fingerprint != "" {
			r.PartialFingerprints = map[string]string{"tandemFingerprint/v1": f.Fingerprint}
		}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = sarifURI(f.File)
		loc.PhysicalLocation.Region.StartLine = max(f.Line, 1)
		loc.PhysicalLocation.Region.StartColumn = max(f.Column, 1)
		r.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, r)
	}
	log := sarifLog{Version: "2.1.0", Schema: "https://json.schemastore.org/sarif-2.1.0.json", Runs: []sarifRun{run}}
	if err := WriteJSON(w, log); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}

// sarifURI turns a file name into a relative URI reference.
func sarifURI(name string) string {
	u := filepath.ToSlash(name)
	u = strings.TrimPrefix(u, "./")
	return strings.ReplaceAll(u, " ", "%20")
}

// Write prints the findings in the named format: "text" (or ""), "json" (jsonDoc, the
// checker's own document), "sarif" or "github". summary is the closing line of the text
// and github formats.
func Write(w io.Writer, format string, t Tool, findings []Finding, summary string, jsonDoc any) error {
	switch format {
	case "", "text":
		return WriteText(w, t, findings, summary)
	case "json":
		return WriteJSON(w, jsonDoc)
	case "sarif":
		return WriteSARIF(w, t, findings)
	case "github":
		return WriteGitHub(w, t, findings, summary)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// Skipped is input a checker read but could not analyse: where, and why.
type Skipped struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// SkippedList renders skipped input for a summary line, as "; title: f:1 (why), g:2
// (why)"; "" when there is none.
func SkippedList(title string, skipped []Skipped) string {
	if len(skipped) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; " + title + ":")
	for i, s := range skipped {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s:%d (%s)", s.File, s.Line, s.Reason)
	}
	return b.String()
}
