// Package deps lists the packages a Go binary links and finds the import chains that
// bring in packages it must not link. Tests use it to keep Tandem's binaries lean: each
// package linked adds start-up time to every run, because Go initialises them all.
package deps

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Graph is a package and everything it imports, directly or not, as go list -deps
// reports them.
type Graph struct {
	// Root is the package's import path.
	Root string
	// Imports maps each package of the graph to its direct imports.
	Imports map[string][]string
}

// List runs `go list -deps` on the package in dir and returns its import graph.
func List(ctx context.Context, goTool, dir string) (*Graph, error) {
	cmd := exec.CommandContext(ctx, goTool, "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	g := &Graph{Imports: map[string][]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		g.Imports[f[0]] = f[1:]
		g.Root = f[0] // go list -deps prints the package itself last
	}
	if g.Root == "" {
		return nil, fmt.Errorf("go list -deps in %s listed no package", dir)
	}
	return g, nil
}

// Chains returns, for each banned package reachable from the graph's root, the shortest
// chain of imports from the root to it (a breadth-first walk of imports). A banned
// package's own imports are not followed: it is named, not the ones it brings.
func (g *Graph) Chains(banned func(pkg string) bool) [][]string {
	from := map[string]string{g.Root: ""}
	queue := []string{g.Root}
	var out [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if banned(p) {
			chain := []string{p}
			for q := from[p]; q != ""; q = from[q] {
				chain = append([]string{q}, chain...)
			}
			out = append(out, chain)
			continue
		}
		for _, q := range g.Imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return out
}

// Under returns a test for banned packages: pkg is one of prefixes or a package under
// one (prefix + "/...").
func Under(prefixes ...string) func(pkg string) bool {
	return func(pkg string) bool {
		for _, p := range prefixes {
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				return true
			}
		}
		return false
	}
}

// Protobuf reports whether pkg is one a Tandem binary must not link: pg_query_go's root
// package, whose init builds the protobuf descriptors of some 270 message types on
// every start, and the protobuf runtime, which only it brings. internal/pgtree has the
// syntax tree and its coding without them; pg_query_go's cgo package parser, the parser
// itself, is fine.
func Protobuf(pkg string) bool {
	return pkg == "github.com/pganalyze/pg_query_go/v6" || Under("google.golang.org/protobuf")(pkg)
}

// ListOrSkip is List for a test: the graph of the package in the test's directory,
// found with the go command on PATH. The test is skipped when there is none, and fails
// when go list does.
func ListOrSkip(t testing.TB) *Graph {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the binary's packages")
	}
	g, err := List(context.Background(), goTool, ".")
	if err != nil {
		t.Fatal(err)
	}
	return g
}
