package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/deps"
)

// TestTandemLint runs tandem-lint in-process as a user would, on real files: its exit
// codes, its output formats and its own name in help, version and errors.
func TestTandemLint(t *testing.T) {
	dir := t.TempDir()
	write := func(name, sql string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clean := write("001_create.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n")
	risky := write("002_index.sql", "CREATE INDEX users_email ON users (email);\n")
	broken := write("003_broken.sql", "ALTER TABLE users ADD COLUMN;\n")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout and stderr together
	}{
		{"a new table", []string{clean}, 0, []string{"0 errors"}},
		{"an index on an existing table", []string{risky}, 1, []string{"index-not-concurrent", "002_index.sql:1"}},
		{"json", []string{"--json", risky}, 1, []string{`"rule": "index-not-concurrent"`}},
		{"a file that does not parse", []string{broken}, 2, []string{"syntax-error", "003_broken.sql:1"}},
		{"no paths", nil, 2, []string{"tandem-lint: requires at least 1 arg"}},
		{"a bad flag", []string{"--bogus", clean}, 2, []string{"tandem-lint: unknown flag: --bogus"}},
		{"a missing file", []string{filepath.Join(dir, "absent.sql")}, 2, []string{"tandem-lint: ", "absent.sql"}},
		{"version", []string{"--version"}, 0, []string{"tandem-lint "}},
		{"help", []string{"--help"}, 0, []string{"tandem-lint [paths...]", "--baseline", "Exit codes", "  tandem-lint migrations/"}},
		{"rules", []string{"--list-rules"}, 0, []string{"index-not-concurrent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tt.wantCode {
				t.Errorf("tandem-lint %s: exit %d, want %d\n%s", strings.Join(tt.args, " "), code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("tandem-lint %s: output lacks %q:\n%s", strings.Join(tt.args, " "), w, out)
				}
			}
			if tt.name == "help" && strings.Contains(out, "tandem lint ") {
				t.Errorf("--help names the tandem binary's command, which a lint-only image lacks:\n%s", out)
			}
			if tt.name == "json" {
				var report struct{ Findings []json.RawMessage }
				if err := json.Unmarshal(stdout.Bytes(), &report); err != nil || len(report.Findings) == 0 {
					t.Errorf("--json: %v, %d findings:\n%s", err, len(report.Findings), stdout.String())
				}
			}
		})
	}
}

// TestLintOnly keeps tandem-lint a linter alone: none of Tandem's other parts, which
// would cost every run their package initialisation, no Kubernetes client, and no
// protobuf runtime.
func TestLintOnly(t *testing.T) {
	g := deps.ListOrSkip(t)
	if !strings.HasSuffix(g.Root, "/cmd/tandem-lint") {
		t.Fatalf("go list -deps listed %s, not tandem-lint", g.Root)
	}
	mod := strings.TrimSuffix(g.Root, "/cmd/tandem-lint")
	banned := deps.Under(mod+"/migrate", mod+"/upgrade", mod+"/lifecycle", mod+"/proving", mod+"/examples",
		"k8s.io", "sigs.k8s.io", "github.com/prometheus", "net/http")
	for _, chain := range g.Chains(func(pkg string) bool { return deps.Protobuf(pkg) || banned(pkg) }) {
		t.Errorf("tandem-lint links %s, through %s", chain[len(chain)-1], strings.Join(chain, " -> "))
	}
}
