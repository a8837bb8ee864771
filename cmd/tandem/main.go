// Command tandem upgrades a PostgreSQL-backed service without downtime: it applies
// expand/contract schema migrations (start, complete, rollback), lints plain SQL
// migrations, and proves a rolling restart under load. Run `tandem --help` for the verbs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes, the same for every command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // the command ran and failed, or found a problem
	exitUsage   = 2 // bad usage or bad input (a malformed migration file, say)
)

// exitError carries the exit code a command wants.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as bad usage or input: tandem exits with 2.
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// silentExit ends the command with code, without printing anything more.
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit %d", int(s)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the CLI with args and returns the exit code; errors go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmdFor(args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	fmt.Fprintln(stderr, "tandem:", err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		return exitUsage
	}
	return exitCode(err)
}
