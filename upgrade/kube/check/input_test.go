package check

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadDirectory reads a directory: manifests in subdirectories, .yml and .json, a
// List, a multi-document file with an empty document; hidden directories and other
// files are left out, and a document without a kind is reported as skipped. Objects of
// different files see each other: the claim and the budget.
func TestReadDirectory(t *testing.T) {
	dir := filepath.Join("testdata", "input", "dir")
	in, err := Files{Paths: []string{dir}}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Files != 4 || in.Read != 5 || len(in.Objects) != 4 {
		t.Errorf("read %d files, %d objects (%d kept); want 4 files (.hidden and README.md left out), 5 objects, 4 kept",
			in.Files, in.Read, len(in.Objects))
	}
	if len(in.Skipped) != 1 || !strings.HasSuffix(in.Skipped[0].File, "kustomization.yaml") || in.Skipped[0].Reason != "no kind" {
		t.Errorf("skipped %+v, want kustomization.yaml (no kind)", in.Skipped)
	}
	var refs []string
	for _, o := range in.Objects {
		refs = append(refs, o.Ref()+"@"+filepath.Base(o.File))
	}
	want := "Deployment/shop/api@deploy.yaml PersistentVolumeClaim/shop/data@pvc.yml PodDisruptionBudget/shop/api@list.json Deployment/shop/worker@list.json"
	if got := strings.Join(refs, " "); got != want {
		t.Errorf("objects:\n got %s\nwant %s", got, want)
	}
	res := Check(in, Options{})
	has := func(rule, object string) bool {
		for _, f := range res.Findings {
			if f.Rule == rule && f.Object == object {
				return true
			}
		}
		return false
	}
	if !has(RuleRWOVolume, "Deployment/shop/worker") {
		t.Error("worker mounts the ReadWriteOnce claim of pvc.yml: rwo-volume did not fire")
	}
	if has(RuleDisruptionBudget, "Deployment/shop/api") || !has(RuleDisruptionBudget, "Deployment/shop/worker") {
		t.Error("the budget in list.json selects api, not worker")
	}
}

// TestReadStdin reads "-": a multi-document stream with a YAML List, as kustomize build
// prints it, next to a file.
func TestReadStdin(t *testing.T) {
	stdin := `apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: a}
    spec:
      replicas: 1
      template:
        spec:
          containers: [{name: app, image: "a:v1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, namespace: other}
spec:
  template:
    spec:
      containers: [{name: app, image: "b:v1"}]
`
	in, err := Files{Paths: []string{"-", filepath.Join("testdata", "good.yaml")}, Stdin: strings.NewReader(stdin), Namespace: "team"}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Files != 2 || len(in.Objects) != 5 {
		t.Fatalf("read %d files, %d objects; want 2, 5", in.Files, len(in.Objects))
	}
	a, b := in.Objects[0], in.Objects[1]
	if a.Ref() != "Deployment/team/a" || a.File != "-" || a.Line != 4 {
		t.Errorf("first object %s at %s:%d, want Deployment/team/a at -:4", a.Ref(), a.File, a.Line)
	}
	if b.Ref() != "Deployment/other/b" || b.Line != 13 {
		t.Errorf("second object %s at line %d, want Deployment/other/b at 13", b.Ref(), b.Line)
	}
	res := Check(in, Options{})
	for _, f := range res.Findings {
		if f.Rule == RuleReplicas && f.Object == "Deployment/team/a" && (f.File != "-" || f.Line != 8) {
			t.Errorf("replicas finding at %s:%d, want -:8", f.File, f.Line)
		}
	}
}

// TestBadInput: input that cannot be read is an *InputError naming the file, the line
// and what to do.
func TestBadInput(t *testing.T) {
	bad := filepath.Join("testdata", "input", "bad")
	empty := t.TempDir()
	for _, tt := range []struct {
		name  string
		paths []string
		stdin string
		want  []string
	}{
		{"broken YAML", []string{filepath.Join(bad, "broken.yaml")}, "", []string{"broken.yaml:7:", "not valid YAML", "indentation"}},
		{"wrong type", []string{filepath.Join(bad, "badtype.yaml")}, "", []string{"badtype.yaml:9:", "Deployment web", "spec.replicas"}},
		{"Helm template", []string{filepath.Join(bad, "helm.yaml")}, "", []string{"helm.yaml:", "helm template"}},
		{"missing file", []string{filepath.Join(bad, "nope.yaml")}, "", []string{"nope.yaml: not found"}},
		{"empty directory", []string{empty}, "", []string{"no *.yaml"}},
		{"broken stdin", []string{"-"}, "kind: Deployment\n metadata: x\n  - y\n", []string{"-:", "not valid YAML"}},
		{"List without items", []string{"-"}, "kind: List\nitems: 3\n", []string{"-:1:", "List without a list of items"}},
		{"Deployment without name", []string{"-"}, "kind: Deployment\nmetadata: {}\n", []string{"-:1:", "without metadata.name"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Files{Paths: tt.paths, Stdin: strings.NewReader(tt.stdin)}.Read(context.Background())
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want an *InputError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
