package main

import (
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/deps"
)

// TestNoProtobufPackages lists the tandem binary's packages (go list -deps) and fails if
// pg_query_go's root package or the protobuf runtime is back, naming the chain of imports
// that brings it.
func TestNoProtobufPackages(t *testing.T) {
	g := deps.ListOrSkip(t)
	if _, ok := g.Imports["github.com/pganalyze/pg_query_go/v6/parser"]; !ok {
		t.Fatal("the tandem binary does not link pg_query_go's parser: this test lists the wrong packages")
	}
	for _, chain := range g.Chains(deps.Protobuf) {
		t.Errorf("the tandem binary links %s again, through %s: use internal/pgtree's types and Parse (or import it from a _test.go file only)",
			chain[len(chain)-1], strings.Join(chain, " -> "))
	}
}
