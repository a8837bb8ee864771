package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailure},
		{UsageErr(errors.New("bad flag")), ExitUsage},
		{fmt.Errorf("wrapped: %w", UsageErr(errors.New("bad"))), ExitUsage},
		{SilentExit(ExitFailure), ExitFailure},
		{fmt.Errorf("wrapped: %w", SilentExit(ExitUsage)), ExitUsage},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestExecute runs a small command tree: the exit code of each outcome, and what
// reaches stderr.
func TestExecute(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "tool", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(
			&cobra.Command{Use: "ok", RunE: func(*cobra.Command, []string) error { return nil }},
			&cobra.Command{Use: "fail", RunE: func(*cobra.Command, []string) error { return errors.New("it broke") }},
			&cobra.Command{Use: "quiet", RunE: func(*cobra.Command, []string) error { return SilentExit(ExitFailure) }},
			&cobra.Command{Use: "one", Args: ArgsErr(cobra.ExactArgs(1)), RunE: func(*cobra.Command, []string) error { return nil }},
		)
		return root
	}
	tests := []struct {
		args       []string
		code       func(error) int
		wantCode   int
		wantStderr string
	}{
		{[]string{"ok"}, nil, ExitOK, ""},
		{[]string{"fail"}, nil, ExitFailure, "tool: it broke\n"},
		{[]string{"fail"}, func(error) int { return 7 }, 7, "tool: it broke\n"},
		{[]string{"quiet"}, nil, ExitFailure, ""},
		{[]string{"one"}, nil, ExitUsage, "tool: tool one: accepts 1 arg(s), received 0\n"},
		{[]string{"nosuch"}, nil, ExitUsage, "tool: unknown command \"nosuch\" for \"tool\"\n"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Execute(context.Background(), newRoot(), tt.args, &stdout, &stderr, tt.code)
		if code != tt.wantCode || stderr.String() != tt.wantStderr {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tt.args, code, stderr.String(), tt.wantCode, tt.wantStderr)
		}
	}
	// A root command's own argument error names it once.
	root := &cobra.Command{Use: "solo", Args: ArgsErr(cobra.MinimumNArgs(1)), SilenceUsage: true, SilenceErrors: true,
		RunE: func(*cobra.Command, []string) error { return nil }}
	var stderr bytes.Buffer
	if code := Execute(context.Background(), root, nil, &bytes.Buffer{}, &stderr, nil); code != ExitUsage || stderr.String() != "solo: requires at least 1 arg(s), only received 0\n" {
		t.Errorf("solo: exit %d, stderr %q", code, stderr.String())
	}
}

func TestReportFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{nil, "text", false},
		{[]string{"--json"}, "json", false},
		{[]string{"--format", "sarif"}, "sarif", false},
		{[]string{"--format", "json", "--json"}, "json", false},
		{[]string{"--format", "sarif", "--json"}, "", true},
		{[]string{"--format", "yaml"}, "", true},
	}
	for _, tt := range tests {
		var r ReportFlags
		cmd := &cobra.Command{Use: "x"}
		r.Add(cmd)
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		got, err := r.Resolve(cmd)
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && Code(err) != ExitUsage) {
			t.Errorf("%v: %q, %v; want %q, error %v (exit 2)", tt.args, got, err, tt.want, tt.wantErr)
		}
	}
}
