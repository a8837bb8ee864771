package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// heavyKube are packages the tandem binary must not link: client-go's typed clientset
// (its scheme registers every API group), its discovery and REST mapper, and what they
// bring (OpenAPI models, structured-merge-diff's typed merging). Together they made
// every tandem command, lint included, start 20 ms slower and the binary 35 MB larger;
// upgrade/kube/kubeapi does the little Tandem needs. A prefix ending in "/" matches the
// packages under it; any other entry matches itself and the packages under it.
var heavyKube = []string{
	"k8s.io/client-go/kubernetes",
	"k8s.io/client-go/discovery",
	"k8s.io/client-go/restmapper",
	"k8s.io/client-go/applyconfigurations",
	"k8s.io/client-go/gentype",
	"k8s.io/client-go/testing",
	"k8s.io/client-go/openapi",
	"k8s.io/kube-openapi/pkg/validation",
	"k8s.io/kube-openapi/pkg/schemaconv",
	"k8s.io/kube-openapi/pkg/util/proto",
	"github.com/google/gnostic-models",
	"sigs.k8s.io/structured-merge-diff/v6/typed",
	// client-go's dynamic client: kubeapi's Apply sends the apply patch on its REST client.
	"k8s.io/client-go/dynamic",
	// The Prometheus Go client and what it brings (procfs, expvar, its collectors):
	// lifecycle, which the tandem binary links, writes its /metrics itself.
	"github.com/prometheus/client_golang",
	"github.com/prometheus/procfs",
	"github.com/prometheus/client_model",
	"github.com/prometheus/common",
}

// isHeavy reports whether pkg is one of heavyKube or under one.
func isHeavy(pkg string) bool {
	for _, h := range heavyKube {
		if pkg == h || strings.HasPrefix(pkg, h+"/") {
			return true
		}
	}
	return false
}

// TestNoHeavyKubePackages lists the tandem binary's packages (go list -deps) and fails
// if one of heavyKube is back, naming the chain of imports that brings it.
func TestNoHeavyKubePackages(t *testing.T) {
	main, imports := binaryImports(t)
	for _, chain := range heavyChains(main, imports, isHeavy) {
		t.Errorf("the tandem binary links %s again, through %s: use upgrade/kube/kubeapi or lifecycle's metrics (or import it from a _test.go file only)",
			chain[len(chain)-1], strings.Join(chain, " -> "))
	}
}

// binaryImports lists the tandem binary's packages with go list -deps: the command's
// package, and each package's imports. It skips the test without a go command.
func binaryImports(t *testing.T) (main string, imports map[string][]string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the binary's packages")
	}
	cmd := exec.Command(goTool, "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	imports = map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		imports[f[0]] = f[1:]
		main = f[0] // go list -deps prints the package itself last
	}
	if len(imports) < 10 || !strings.HasSuffix(main, "/cmd/tandem") {
		t.Fatalf("go list -deps listed %d packages ending with %q: not the tandem command's", len(imports), main)
	}
	return main, imports
}

// heavyChains returns, for each heavy package (isHeavy says which) reachable from root,
// the shortest chain of imports from root to it (a breadth-first walk of imports). A
// heavy package's own imports are not followed: it is named, not the ones it brings.
func heavyChains(root string, imports map[string][]string, isHeavy func(string) bool) [][]string {
	from := map[string]string{root: ""}
	queue := []string{root}
	var out [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if isHeavy(p) {
			chain := []string{p}
			for q := from[p]; q != ""; q = from[q] {
				chain = append([]string{q}, chain...)
			}
			out = append(out, chain)
			continue
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return out
}

// TestHeavyChains: the walk finds each heavy package by its shortest chain, and stops at
// it.
func TestHeavyChains(t *testing.T) {
	imports := map[string][]string{
		"m/cmd/tandem":                {"m/proving", "m/upgrade/kube"},
		"m/proving":                   {"m/upgrade/kube", "k8s.io/client-go/kubernetes"},
		"m/upgrade/kube":              {"k8s.io/client-go/rest", "k8s.io/client-go/restmapper"},
		"k8s.io/client-go/kubernetes": {"k8s.io/client-go/discovery"},
		"k8s.io/client-go/restmapper": {"k8s.io/client-go/discovery"},
	}
	var got []string
	for _, c := range heavyChains("m/cmd/tandem", imports, isHeavy) {
		got = append(got, strings.Join(c, " -> "))
	}
	want := []string{
		"m/cmd/tandem -> m/proving -> k8s.io/client-go/kubernetes",
		"m/cmd/tandem -> m/upgrade/kube -> k8s.io/client-go/restmapper",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chains:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if isHeavy("k8s.io/client-go/kubernetesx") || !isHeavy("k8s.io/client-go/kubernetes/scheme") || isHeavy("k8s.io/client-go/rest") {
		t.Error("isHeavy matches by name, not by path")
	}
}
