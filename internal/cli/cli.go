// Package cli holds what Tandem's commands share, whichever binary they are built into
// (tandem, tandem-lint): the exit codes and the errors that carry them, the output
// flags of the commands that print findings, and running a root command to an exit
// code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/report"
)

// Exit codes, the same for every command.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed, or found a problem
	ExitUsage   = 2 // bad usage or bad input (a malformed migration file, say)
)

// ExitError carries the exit code a command wants with its error.
type ExitError struct {
	Code int
	Err  error
}

// Error is the wrapped error's message.
func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *ExitError) Unwrap() error { return e.Err }

// UsageErr marks err as bad usage or input: the process exits with ExitUsage.
func UsageErr(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// SilentExit ends a command with its code, without printing anything more: the command
// has said what there was to say (a report with findings, say).
type SilentExit int

// Error names the exit code; Execute does not print it.
func (s SilentExit) Error() string { return fmt.Sprintf("exit %d", int(s)) }

// ArgsErr wraps cobra's positional-argument checks so that they exit with ExitUsage.
func ArgsErr(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return UsageErr(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
		}
		return nil
	}
}

// Code maps an error a command returned to the process's exit code: the code an
// ExitError or a SilentExit carries, else ExitFailure.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var se SilentExit
	if errors.As(err, &se) {
		return int(se)
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// Execute runs root with args and returns the exit code. An error is printed to stderr,
// after the root command's name unless it begins with it, and not at all for a
// SilentExit; code maps it to the exit code (nil means Code). An unknown command is bad
// usage.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer, code func(error) int) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var se SilentExit
	if errors.As(err, &se) {
		return int(se)
	}
	if msg := err.Error(); strings.HasPrefix(msg, root.Name()+":") {
		fmt.Fprintln(stderr, msg) // the root command's own argument check names it
	} else {
		fmt.Fprintf(stderr, "%s: %s\n", root.Name(), msg)
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	if code == nil {
		code = Code
	}
	return code(err)
}

// ReportFlags are the output flags of the commands that print findings (lint, check).
type ReportFlags struct {
	format  string
	jsonOut bool
}

// Add adds --format and --json to cmd.
func (r *ReportFlags) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.format, "format", "text", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().BoolVar(&r.jsonOut, "json", false, "same as --format json")
}

// Resolve returns the chosen format, or a usage error when the flags contradict each
// other or name no format.
func (r *ReportFlags) Resolve(cmd *cobra.Command) (string, error) {
	format := r.format
	if r.jsonOut {
		if cmd.Flags().Changed("format") && format != "json" {
			return "", UsageErr(fmt.Errorf("--json and --format %s contradict each other; give one", format))
		}
		format = "json"
	}
	if !slices.Contains(report.Formats, format) {
		return "", UsageErr(fmt.Errorf("--format: %q is not one of %s", format, strings.Join(report.Formats, ", ")))
	}
	return format, nil
}
