// Command tandem upgrades a PostgreSQL-backed service without downtime: it applies
// expand/contract schema migrations (start, complete, rollback), lints plain SQL
// migrations, and proves a rolling restart under load. Run `tandem --help` for the verbs.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tandem-pg/tandem/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the CLI with args and returns the exit code; errors go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRootCmdFor(args), args, stdout, stderr, exitCode)
}
