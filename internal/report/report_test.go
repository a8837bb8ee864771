package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var testTool = Tool{Name: "tandem test", InformationURI: "https://example.com/rules.md", FixTitle: "safe recipe",
	Rules: []Rule{{ID: "a", Summary: "rule a", Error: true}, {ID: "b", Summary: "rule b", HelpURI: "https://example.com/b"}}}

var testFindings = []Finding{
	{Rule: "a", Error: true, File: "dir/x,y.yaml", Line: 3, Column: 5, Message: "50% of a: broken", Context: []string{"statement: X"},
		Facts: "object: o", Fix: "line one\nline two", Fingerprint: "fp"},
	{Rule: "b", File: "cluster", Message: "no position"},
}

func write(t *testing.T, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, testTool, testFindings, "2 findings", map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestText(t *testing.T) {
	want := "dir/x,y.yaml:3:5: error: 50% of a: broken [a]\n    statement: X\n    object: o\n    safe recipe:\n      line one\n      line two\n\n" +
		"cluster: warning: no position [b]\n\n2 findings\n"
	if got := write(t, "text"); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

func TestGitHub(t *testing.T) {
	want := "::error file=dir/x%2Cy.yaml,line=3,col=5,title=tandem test%3A a::50%25 of a: broken%0Aobject: o%0ASafe recipe:%0Aline one%0Aline two\n" +
		"::warning file=cluster,title=tandem test%3A b::no position\n2 findings\n"
	if got := write(t, "github"); got != want {
		t.Errorf("github:\n%s\nwant:\n%s", got, want)
	}
}

func TestSARIF(t *testing.T) {
	var log sarifLog
	if err := json.Unmarshal([]byte(write(t, "sarif")), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if run.Tool.Driver.Rules[0].HelpURI != "https://example.com/rules.md#a" || run.Tool.Driver.Rules[1].HelpURI != "https://example.com/b" ||
		run.Tool.Driver.Rules[1].DefaultConfiguration.Level != "warning" {
		t.Errorf("rules: %+v", run.Tool.Driver.Rules)
	}
	a, b := run.Results[0], run.Results[1]
	if a.RuleIndex == nil || *a.RuleIndex != 0 || b.RuleIndex == nil || *b.RuleIndex != 1 || a.PartialFingerprints["tandemFingerprint/v1"] != "fp" || b.PartialFingerprints != nil {
		t.Errorf("results: %+v", run.Results)
	}
	if !strings.Contains(a.Message.Text, "\nSafe recipe:\nline one") {
		t.Errorf("message %q", a.Message.Text)
	}
	// SARIF regions are 1-based: an unknown position is the file's start.
	if r := b.Locations[0].PhysicalLocation.Region; r.StartLine != 1 || r.StartColumn != 1 {
		t.Errorf("region of a finding without position: %+v", r)
	}
}

func TestJSONAndUnknownFormat(t *testing.T) {
	if got := write(t, "json"); got != "{\n  \"n\": 2\n}\n" {
		t.Errorf("json: %q", got)
	}
	if err := Write(&bytes.Buffer{}, "xml", testTool, nil, "", nil); err == nil || !strings.Contains(err.Error(), "text, json, sarif, github") {
		t.Errorf("unknown format: %v", err)
	}
}
