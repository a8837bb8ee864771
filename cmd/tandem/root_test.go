package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/cli"
)

// TestRootCmdFor: a command line that names a command gets a tree with that command
// alone, whose help is the same as in the whole tree; any other command line gets the
// whole tree, completion included. Each entry of commands is named as its command is.
func TestRootCmdFor(t *testing.T) {
	for _, c := range commands {
		if got := c.make().Name(); got != c.name {
			t.Errorf("commands lists %q for the command named %q", c.name, got)
		}
	}
	help := func(args ...string) string {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != cli.ExitOK {
			t.Fatalf("tandem %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		return out.String()
	}
	helpAll := func(args ...string) string {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetArgs(args)
		root.SetOut(&out)
		if err := root.Execute(); err != nil {
			t.Fatalf("tandem %s with every command: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	lines := [][]string{{"upgrade", "plan", "--help"}, {"maintenance", "--help"}}
	for _, c := range commands {
		lines = append(lines, []string{c.name, "--help"})
	}
	for _, args := range lines {
		if got, want := help(args...), helpAll(args...); got != want {
			t.Errorf("tandem %s alone:\n%s\nin the whole tree:\n%s", strings.Join(args, " "), got, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want int // commands in the tree
	}{
		{[]string{"lint", "x.sql"}, 1},
		{[]string{"upgrade", "plan"}, 1},
		{nil, len(commands) + 1},                               // completion too
		{[]string{"help", "lint"}, len(commands) + 1},          // help names them all
		{[]string{"--schema", "s", "lint"}, len(commands) + 1}, // a flag first
		{[]string{"lnt"}, len(commands) + 1},                   // a typo: cobra suggests "lint"
		{[]string{"completion", "bash"}, len(commands) + 1},
	} {
		root := newRootCmdFor(tc.args)
		root.SetArgs(tc.args)
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		n := 0
		for _, c := range root.Commands() {
			if c.Name() != "help" {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("tandem %s: %d commands in the tree, want %d", strings.Join(tc.args, " "), n, tc.want)
		}
	}
	if out := help("--help"); !strings.Contains(out, "completion") || !strings.Contains(out, "upgrade") {
		t.Errorf("tandem --help does not list every command:\n%s", out)
	}
}
