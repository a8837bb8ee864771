package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/lintcmd"
	"github.com/tandem-pg/tandem/migrate"
)

// globals are the flags every command accepts.
type globals struct {
	postgresURL string
	schema      string
	stateSchema string
	lockTimeout time.Duration
	// backfillWorkers is the connections a backfill fills a table on.
	backfillWorkers int
	verbose         bool
}

var global globals

// commands are tandem's commands, in the order help lists them, by name.
var commands = []struct {
	name string
	make func() *cobra.Command
}{
	{"init", newInitCmd},
	{"start", newStartCmd},
	{"complete", newCompleteCmd},
	{"rollback", newRollbackCmd},
	{"status", newStatusCmd},
	{"migrate", newMigrateCmd},
	{"latest", newLatestCmd},
	{"validate", newValidateCmd},
	{"demo", newDemoCmd},
	{"lint", lintcmd.New},
	{"check", newCheckCmd},
	{"maintenance", newMaintenanceCmd},
	{"prove", newProveCmd},
	{"upgrade", newUpgradeCmd},
	{"version", newVersionCmd},
}

// newRootCmd returns the root command with all of tandem's commands.
func newRootCmd() *cobra.Command { return newRootCmdFor(nil) }

// newRootCmdFor returns the root command for a command line: with only the command its
// first argument names, or, when it names none (help, completion, a flag first, a typo
// to suggest a command for), all of them. Each command's flags cost start-up time that
// every run, lint's included, would pay for all of them; a command alone in the tree
// behaves as it does among the others (its help names no sibling).
func newRootCmdFor(args []string) *cobra.Command {
	root := newBareRootCmd()
	for _, c := range commands {
		if len(args) > 0 && c.name == args[0] {
			root.AddCommand(c.make())
			// cobra's completion command, built at each run, is only asked for by name.
			root.CompletionOptions.DisableDefaultCmd = true
			return root
		}
	}
	for _, c := range commands {
		root.AddCommand(c.make())
	}
	return root
}

// newBareRootCmd returns the root command with its flags and no commands.
func newBareRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tandem",
		Short: "Zero-downtime upgrades for PostgreSQL-backed services",
		Long: `Tandem upgrades a PostgreSQL-backed service without downtime.

Schema changes are applied expand/contract: "tandem start" makes additive changes and
exposes the new version as a schema of views while the old version keeps working;
"tandem complete" makes the destructive changes once the old version is gone;
"tandem rollback" undoes a started migration. Migration files use pgroll's format.

Connection: --postgres-url, else TANDEM_POSTGRES_URL, else the standard PG* variables
(PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...).

Exit codes: 0 success, 1 the command ran and failed (or found problems), 2 bad usage or input.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&global.postgresURL, "postgres-url", os.Getenv("TANDEM_POSTGRES_URL"),
		"PostgreSQL connection URL (env TANDEM_POSTGRES_URL; default: the PG* variables)")
	pf.StringVar(&global.schema, "schema", "public", "the schema the migrations apply to")
	pf.StringVar(&global.stateSchema, "state-schema", "tandem", "the schema Tandem keeps its state in")
	pf.DurationVar(&global.lockTimeout, "lock-timeout", 500*time.Millisecond,
		"lock_timeout for each DDL statement that locks an existing table")
	pf.IntVar(&global.backfillWorkers, "backfill-workers", migrate.DefaultBackfillWorkers,
		"connections a backfill fills a large table on, side by side (each costs the server about a CPU core while it runs)")
	pf.BoolVarP(&global.verbose, "verbose", "v", false, "log each step")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.UsageErr(err) })
	setVersion(root)
	return root
}

// exitCode maps an error returned by a command to the process exit code: a migration
// file's input error is bad input, the rest as cli.Code says.
func exitCode(err error) int {
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ie *migrate.InputError
	if errors.As(err, &ie) {
		return cli.ExitUsage
	}
	return cli.Code(err)
}
