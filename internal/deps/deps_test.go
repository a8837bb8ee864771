package deps

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestChains: the walk finds each banned package by its shortest chain, and stops at it.
func TestChains(t *testing.T) {
	g := &Graph{Root: "m/cmd/tandem", Imports: map[string][]string{
		"m/cmd/tandem":                {"m/proving", "m/upgrade/kube"},
		"m/proving":                   {"m/upgrade/kube", "k8s.io/client-go/kubernetes"},
		"m/upgrade/kube":              {"k8s.io/client-go/rest", "k8s.io/client-go/restmapper"},
		"k8s.io/client-go/kubernetes": {"k8s.io/client-go/discovery"},
		"k8s.io/client-go/restmapper": {"k8s.io/client-go/discovery"},
	}}
	var got []string
	for _, c := range g.Chains(Under("k8s.io/client-go/kubernetes", "k8s.io/client-go/restmapper", "k8s.io/client-go/discovery")) {
		got = append(got, strings.Join(c, " -> "))
	}
	want := []string{
		"m/cmd/tandem -> m/proving -> k8s.io/client-go/kubernetes",
		"m/cmd/tandem -> m/upgrade/kube -> k8s.io/client-go/restmapper",
	}
	if !slices.Equal(got, want) {
		t.Errorf("chains:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnder(t *testing.T) {
	banned := Under("k8s.io/client-go/kubernetes")
	for pkg, want := range map[string]bool{
		"k8s.io/client-go/kubernetes":        true,
		"k8s.io/client-go/kubernetes/scheme": true,
		"k8s.io/client-go/kubernetesx":       false,
		"k8s.io/client-go/rest":              false,
	} {
		if banned(pkg) != want {
			t.Errorf("Under(k8s.io/client-go/kubernetes)(%s) = %v, want %v", pkg, !want, want)
		}
	}
}

// TestList lists this package's own graph: it holds the package and what it imports.
func TestList(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	g, err := List(context.Background(), goTool, ".")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(g.Root, "/internal/deps") || !slices.Contains(g.Imports[g.Root], "os/exec") {
		t.Fatalf("root %s imports %v", g.Root, g.Imports[g.Root])
	}
	if _, ok := g.Imports["os/exec"]; !ok {
		t.Error("the graph does not hold os/exec, which the package imports")
	}
}

func TestProtobuf(t *testing.T) {
	for pkg, want := range map[string]bool{
		"github.com/pganalyze/pg_query_go/v6":                 true,
		"github.com/pganalyze/pg_query_go/v6/parser":          false,
		"google.golang.org/protobuf/proto":                    true,
		"google.golang.org/protobuf":                          true,
		"google.golang.org/protobufx":                         false,
		"k8s.io/apimachinery/pkg/runtime/serializer/protobuf": false,
	} {
		if got := Protobuf(pkg); got != want {
			t.Errorf("Protobuf(%q) = %v, want %v", pkg, got, want)
		}
	}
}
