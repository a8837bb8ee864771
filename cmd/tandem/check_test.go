package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckCommand runs "tandem check" on the package's testdata: exit codes, input
// forms and formats.
func TestCheckCommand(t *testing.T) {
	td := filepath.Join("..", "..", "upgrade", "kube", "check", "testdata")
	good := filepath.Join(td, "good.yaml")
	rules := filepath.Join(td, "rules")
	stdin, err := os.ReadFile(filepath.Join(rules, "replicas.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// A kubeconfig whose server does not listen: port 1 on this machine.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: test, context: {cluster: c, user: u}}]
current-context: test
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "clean", args: []string{good}, wantCode: 0, want: []string{"0 errors, 0 warnings in 1 Deployment (3 objects read from 1 file)"}},
		{name: "errors", args: []string{filepath.Join(rules, "drain-delay.yaml")}, wantCode: 1, want: []string{"drain-delay.yaml:8:11: error: container app of Deployment/default/bad-none has no preStop sleep", "[drain-delay]", "fix:"}},
		{name: "warnings only", args: []string{"--disable", "drain-delay,readiness-probe,image-version", "-"}, stdin: string(stdin), wantCode: 0, want: []string{"-:4:1: warning:", "[replicas]"}},
		{name: "directory", args: []string{filepath.Join(td, "input", "dir")}, wantCode: 1, want: []string{"in 2 Deployments (5 objects read from 4 files)", "kustomization.yaml:1 (no kind)"}},
		{name: "router flags", args: []string{"--router-reload", "10s", good}, wantCode: 1, want: []string{"router's reload interval 10s + propagation 2s = 12s"}},
		{name: "namespace", args: []string{"-n", "team", "-"}, stdin: string(stdin), wantCode: 1, want: []string{"Deployment/team/bad-warn-one"}},
		{name: "github", args: []string{"--format", "github", filepath.Join(rules, "rollout-strategy.yaml")}, wantCode: 1, want: []string{"::error file=", "title=tandem check%3A rollout-strategy::"}},
		{name: "sarif", args: []string{"--format", "sarif", good}, wantCode: 0, want: []string{`"name": "tandem check"`, `"results": []`}},
		{name: "json", args: []string{"--json", good}, wantCode: 0, want: []string{`"findings": []`, `"deployments": 1`}},
		{name: "broken file", args: []string{good, filepath.Join(td, "input", "bad", "broken.yaml")}, wantCode: 2, want: []string{"broken.yaml:7: not valid YAML"}},
		{name: "missing file", args: []string{"nope.yaml"}, wantCode: 2, want: []string{"nope.yaml: not found"}},
		{name: "no paths", args: nil, wantCode: 2},
		{name: "bad format", args: []string{"--format", "xml", good}, wantCode: 2, want: []string{`"xml" is not one of`}},
		{name: "json contradicts format", args: []string{"--json", "--format", "sarif", good}, wantCode: 2},
		{name: "unknown rule", args: []string{"--disable", "no-such-rule", good}, wantCode: 2, want: []string{`"no-such-rule" is not a rule`}},
		{name: "list rules", args: []string{"--list-rules"}, wantCode: 0, want: []string{"rwo-volume", "pod-disruption-budget"}},
		{name: "cluster flag without --cluster", args: []string{"--context", "prod", good}, wantCode: 2, want: []string{"--context reads a live cluster: add --cluster"}},
		{name: "cluster and paths", args: []string{"--cluster", good}, wantCode: 2},
		{name: "cluster unreachable", args: []string{"--cluster", "--kubeconfig", kubeconfig, "-n", "shop"}, wantCode: 2,
			want: []string{"cluster test: list deployments in namespace shop", "get and list on deployments"}},
		{name: "no kubeconfig", args: []string{"--cluster", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, wantCode: 2, want: []string{"no usable kubeconfig", "none", "--kubeconfig"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, tt.stdin, append([]string{"check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCheckJSON: --json prints one document a program can read, findings included.
func TestCheckJSON(t *testing.T) {
	code, out := runCLI(t, "", "check", "--json", filepath.Join("..", "..", "upgrade", "kube", "check", "testdata", "rules", "rwo-volume.yaml"))
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, out)
	}
	var doc struct {
		Findings []struct {
			Rule, Severity, Object, File, Fix string
			Line                              int
		} `json:"findings"`
		Errors int `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	found := false
	for _, f := range doc.Findings {
		if f.Rule == "rwo-volume" && f.Object == "Deployment/default/bad-rwo" && f.Severity == "error" && f.Line > 0 && strings.Contains(f.Fix, "ReadWriteMany") {
			found = true
		}
	}
	if !found || doc.Errors == 0 {
		t.Errorf("no rwo-volume error for bad-rwo in %+v", doc)
	}
}
