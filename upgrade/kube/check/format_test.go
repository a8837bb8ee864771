package check

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFormats prints one result in every format and reads each back.
func TestWriteFormats(t *testing.T) {
	in := readFile(t, filepath.Join("rules", "image-version.yaml"))
	res := Check(in, Options{Disable: []string{RuleDrainDelay, RuleReadinessProbe, RuleGracePeriod, RuleReplicas, RuleDisruptionBudget}})
	if res.Errors() != 4 || res.Warnings() != 1 {
		t.Fatalf("%d errors, %d warnings; want 4, 1", res.Errors(), res.Warnings())
	}
	file := filepath.Join("testdata", "rules", "image-version.yaml")
	out := func(format string) string {
		var b bytes.Buffer
		if err := Write(&b, format, res); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}

	text := out("text")
	for _, w := range []string{
		file + ":7:32: error: container app of Deployment/default/bad-latest runs image registry.example.com/app:latest",
		"[image-version]\n    object: Deployment/default/bad-latest, container app\n    fix:\n      spec:\n",
		"4 errors, 1 warning in 8 Deployments (8 objects read from 1 file)\n",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("text output lacks %q:\n%s", w, text)
		}
	}

	var doc struct {
		Findings []Finding `json:"findings"`
		Errors   int       `json:"errors"`
		Warnings int       `json:"warnings"`
		Objects  int       `json:"objects"`
	}
	if err := json.Unmarshal([]byte(out("json")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 5 || doc.Errors != 4 || doc.Warnings != 1 || doc.Objects != 8 || doc.Findings[0].Fix == "" || doc.Findings[0].Object == "" {
		t.Errorf("JSON document: %+v", doc)
	}

	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string                `json:"name"`
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
						Region           struct{ StartLine int } `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out("sarif")), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if log.Version != "2.1.0" || run.Tool.Driver.Name != "tandem check" || len(run.Tool.Driver.Rules) != len(Rules()) || len(run.Results) != 5 {
		t.Fatalf("SARIF log: %+v", log)
	}
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s points at rule %s", r.RuleID, run.Tool.Driver.Rules[r.RuleIndex].ID)
		}
		loc := r.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != filepath.ToSlash(file) || loc.Region.StartLine == 0 {
			t.Errorf("result location %+v", loc)
		}
	}
	if run.Results[0].Level != "error" || run.Results[4].Level != "warning" {
		t.Errorf("levels %s, %s", run.Results[0].Level, run.Results[4].Level)
	}

	gh := strings.Split(strings.TrimSpace(out("github")), "\n")
	if len(gh) != 6 {
		t.Fatalf("github output has %d lines, want 5 annotations and the summary:\n%s", len(gh), strings.Join(gh, "\n"))
	}
	if want := "::error file=" + file + ",line=7,col=32,title=tandem check%3A image-version::container app of Deployment/default/bad-latest"; !strings.HasPrefix(gh[0], want) {
		t.Errorf("first annotation:\n got %s\nwant %s...", gh[0], want)
	}
	if !strings.Contains(gh[0], "%0AFix:%0Aspec:%0A") || !strings.HasPrefix(gh[4], "::warning ") {
		t.Errorf("annotations: %s / %s", gh[0], gh[4])
	}
	if err := Write(&bytes.Buffer{}, "xml", res); err == nil {
		t.Error("format xml: no error")
	}
}
