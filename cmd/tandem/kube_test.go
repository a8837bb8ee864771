package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/cli"
)

// TestUpgradeKubeNoConfig: a kube release with a kubeconfig that does not exist is bad
// input (exit 2), named with the fix, before anything is changed.
func TestUpgradeKubeNoConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel := "app: catalog\nversion: v2\ncompatible-from: v1\nmigrations: migrations\nbackend: kube\n" +
		"workloads:\n  - name: api\n    role: api\n    kube: {image: localhost/catalog:v2}\n"
	if err := os.WriteFile(filepath.Join(dir, "tandem.yaml"), []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	global = globals{}
	root := newRootCmd()
	var buf strings.Builder
	root.SetOut(&buf)
	root.SetErr(&buf)
	root.SetArgs([]string{"upgrade", "apply", dir, "--kubeconfig", filepath.Join(dir, "missing-kubeconfig")})
	err := root.Execute()
	if err == nil {
		t.Fatal("accepted a kubeconfig that does not exist")
	}
	if got := exitCode(err); got != cli.ExitUsage {
		t.Errorf("exit %d, want %d: %v", got, cli.ExitUsage, err)
	}
	for _, want := range []string{"missing-kubeconfig", "--kubeconfig"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
