package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// RulesDocURL is where the rules are documented; SARIF links each rule to its section.
const RulesDocURL = "https://github.com/tandem-pg/tandem/blob/main/docs/lint-rules.md"

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
	RuleIndex int             `json:"ruleIndex"`
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

func sarifLevel(s Severity) string {
	if s == SeverityError {
		return "error"
	}
	return "warning"
}

// WriteSARIF prints the result as a SARIF 2.1.0 log, for code scanning tools.
func WriteSARIF(w io.Writer, res *Result) error {
	driver := sarifDriver{Name: "tandem lint", InformationURI: RulesDocURL}
	index := map[string]int{}
	for i, r := range Rules() {
		sr := sarifRule{ID: r.ID, ShortDescription: sarifMessage{Text: r.Summary}, HelpURI: RulesDocURL + "#" + r.ID}
		sr.DefaultConfiguration.Level = sarifLevel(r.Severity)
		driver.Rules = append(driver.Rules, sr)
		index[r.ID] = i
	}
	// A file that does not parse is reported under its own rule.
	pe := sarifRule{ID: ParseErrorRule, ShortDescription: sarifMessage{Text: "PostgreSQL's parser rejects the statement; the rest of the file is not analysed"}, HelpURI: RulesDocURL}
	pe.DefaultConfiguration.Level = "error"
	index[ParseErrorRule] = len(driver.Rules)
	driver.Rules = append(driver.Rules, pe)
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range res.Findings {
		text := f.Message + "\n" + facts(f)
		if f.Fix != "" {
			text += "\nSafe recipe:\n" + f.Fix
		}
		r := sarifResult{RuleID: f.Rule, RuleIndex: index[f.Rule], Level: sarifLevel(f.Severity), Message: sarifMessage{Text: text}}
		if f.Fingerprint != "" {
			r.PartialFingerprints = map[string]string{"tandemFingerprint/v1": f.Fingerprint}
		}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = sarifURI(f.File)
		loc.PhysicalLocation.Region.StartLine = f.Line
		loc.PhysicalLocation.Region.StartColumn = f.Column
		r.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, r)
	}
	log := sarifLog{Version: "2.1.0", Schema: "https://json.schemastore.org/sarif-2.1.0.json", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
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
