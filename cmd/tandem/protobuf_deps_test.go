package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/deps"
)

// isProtobuf reports whether pkg is one the tandem binary must not link: pg_query_go's
// root package, whose init builds the protobuf descriptors of some 270 message types on
// every start, and the protobuf runtime, which only it brings. internal/pgtree has the
// syntax tree and its coding without them; pg_query_go's cgo package parser, the parser
// itself, is fine.
func isProtobuf(pkg string) bool {
	return pkg == "github.com/pganalyze/pg_query_go/v6" || deps.Under("google.golang.org/protobuf")(pkg)
}

// TestNoProtobufPackages lists the tandem binary's packages (go list -deps) and fails if
// pg_query_go's root package or the protobuf runtime is back, naming the chain of imports
// that brings it.
func TestNoProtobufPackages(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the binary's packages")
	}
	g, err := deps.List(context.Background(), goTool, ".")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Imports["github.com/pganalyze/pg_query_go/v6/parser"]; !ok {
		t.Fatal("the tandem binary does not link pg_query_go's parser: this test lists the wrong packages")
	}
	for _, chain := range g.Chains(isProtobuf) {
		t.Errorf("the tandem binary links %s again, through %s: use internal/pgtree's types and Parse (or import it from a _test.go file only)",
			chain[len(chain)-1], strings.Join(chain, " -> "))
	}
}

func TestIsProtobuf(t *testing.T) {
	for pkg, want := range map[string]bool{
		"github.com/pganalyze/pg_query_go/v6":                 true,
		"github.com/pganalyze/pg_query_go/v6/parser":          false,
		"google.golang.org/protobuf/proto":                    true,
		"google.golang.org/protobuf":                          true,
		"google.golang.org/protobufx":                         false,
		"k8s.io/apimachinery/pkg/runtime/serializer/protobuf": false,
	} {
		if got := isProtobuf(pkg); got != want {
			t.Errorf("isProtobuf(%q) = %v, want %v", pkg, got, want)
		}
	}
}
