package upgrade

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeRelease = `app: catalog
version: v2
compatible-from: v1
migrations: migrations
backend: kube
workloads:
  - {name: api, role: api, kube: {deployment: catalog-api, image: registry.example.com/catalog:v2}}
`

// TestCheckManifests: the plan's hook runs tandem check on a kube release's manifests;
// errors become problems naming the file, line and rule, warnings stay in the result.
func TestCheckManifests(t *testing.T) {
	td := filepath.Join("kube", "check", "testdata")
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tt := range []struct {
		name      string
		manifests string
		problems  []string // each must appear in one problem
		checked   bool
	}{
		{"good", abs(filepath.Join(td, "good.yaml")), nil, true},
		{"RWO under RollingUpdate", abs(filepath.Join(td, "rules", "rwo-volume.yaml")), []string{"rwo-volume.yaml:29: Deployment/default/bad-rwo mounts PersistentVolumeClaim rwo", "[rwo-volume]; `tandem check "}, true},
		{"unreadable", abs(filepath.Join(td, "input", "bad")), []string{"cannot be checked", "badtype.yaml:9"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rel, err := ParseRelease(writeRelease(t, kubeRelease+"manifests: "+tt.manifests+"\n"), []byte(kubeRelease+"manifests: "+tt.manifests+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			res, problems := CheckManifests(context.Background(), rel)
			if (res != nil) != tt.checked {
				t.Errorf("result %v, want checked %v", res, tt.checked)
			}
			if len(tt.problems) == 0 && len(problems) > 0 {
				t.Errorf("problems %q, want none", problems)
			}
			for _, w := range tt.problems {
				if !strings.Contains(strings.Join(problems, "\n"), w) {
					t.Errorf("problems %q lack %q", problems, w)
				}
			}
			for _, p := range problems {
				if strings.Contains(p, "warning") || strings.Contains(p, "[replicas]") {
					t.Errorf("a warning became a problem: %s", p)
				}
			}
		})
	}
	// A local release, or one without manifests, is not checked.
	rel, err := ParseRelease(writeRelease(t, validRelease), []byte(validRelease))
	if err != nil {
		t.Fatal(err)
	}
	if res, problems := CheckManifests(context.Background(), rel); res != nil || problems != nil {
		t.Errorf("local release checked: %v %q", res, problems)
	}
}

// TestManifestsKey: manifests is relative to tandem.yaml, must exist, and is for the
// kube backend only.
func TestManifestsKey(t *testing.T) {
	path := writeRelease(t, kubeRelease+"manifests: deploy\n")
	if _, err := ReadRelease(path); err == nil || !strings.Contains(err.Error(), "manifests: ") || !strings.Contains(err.Error(), "deploy not found") {
		t.Errorf("missing manifests: %v", err)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(path), "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := ReadRelease(path)
	if err != nil {
		t.Fatal(err)
	}
	if rel.ManifestsPath() != filepath.Join(rel.Dir, "deploy") {
		t.Errorf("manifests path %s", rel.ManifestsPath())
	}
	local := writeRelease(t, validRelease+"manifests: .\n")
	if _, err := ReadRelease(local); err == nil || !strings.Contains(err.Error(), "is for backend kube") {
		t.Errorf("manifests on a local release: %v", err)
	}
}
