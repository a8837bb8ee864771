package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/lint"
)

// newLintCmd builds "tandem lint": static safety analysis of plain SQL migrations.
func newLintCmd() *cobra.Command {
	var (
		pgVersion   int
		format      string
		configPath  string
		databaseURL string
		listRules   bool
		jsonOut     bool
		noForeign   bool
	)
	cmd := &cobra.Command{
		Use:   "lint [paths...]",
		Short: "Find statements in plain SQL migrations that cause downtime",
		Long: `Lint plain SQL migrations (golang-migrate, goose, Flyway, sqlx, diesel, dbmate, ...) for
statements that take strong locks on busy tables, rewrite tables, or break the application
version still running during a rolling update. Each finding names the lock and what it
blocks, and gives the safe recipe as SQL.

Paths are files, directories (the .sql files in name order, numbers compared numerically,
only the up half of up/down pairs) or - for stdin. Files are replayed in order into an
in-memory catalog, so a table created earlier in the same file is known to be new.

A file runs in one transaction unless it says otherwise (-- +goose NO TRANSACTION,
-- atlas:txmode none, -- morph:nontransactional, -- no-transaction, dbmate's
transaction:false) or uses BEGIN/COMMIT itself.

Ignore a finding with a comment on the statement:  -- tandem-lint-ignore: rule-id[, rule-id]
or for the whole file:                          -- tandem-lint-ignore-file: rule-id
squawk's (-- squawk-ignore, -- squawk-ignore-file) and atlas's (-- atlas:nolint) comments
count too, their rule names mapped to ours, unless --no-foreign-ignores.

Configuration (--config, else .tandem-lint.yaml or the "lint:" key of tandem.yaml in the
current directory):
  pg-version: 15
  disable: [truncate]
  severity: {drop-not-null: error, statement-timeout: off}
  timeouts-set-by-runner: true   # the runner sets lock_timeout/statement_timeout
  transaction: file              # or none: the runner does not wrap files
  no-foreign-ignores: true       # like --no-foreign-ignores

Exit codes: 0 no findings at error level, 1 findings at error level, 2 input unreadable or
unparsable (with file:line:column).`,
		Example: `  tandem lint migrations/
  tandem lint --format github db/migrations/*.sql
  git diff --name-only main -- migrations | xargs tandem lint
  tandem lint --database-url "$DATABASE_URL" migrations/0042_add_index.sql`,
		Args: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return nil
			}
			return argsErr(cobra.MinimumNArgs(1))(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return printRules(cmd)
			}
			if jsonOut {
				if cmd.Flags().Changed("format") && format != "json" {
					return usageErr(fmt.Errorf("--json and --format %s contradict each other; give one", format))
				}
				format = "json"
			}
			if !slices.Contains(lint.Formats, format) {
				return usageErr(fmt.Errorf("--format: %q is not one of %s", format, strings.Join(lint.Formats, ", ")))
			}
			cfg, err := loadLintConfig(configPath)
			if err != nil {
				return usageErr(err)
			}
			if noForeign {
				cfg.NoForeignIgnores = true
			}
			opts := lint.Options{Config: cfg, PGVersion: cfg.PGVersion}
			if cmd.Flags().Changed("pg-version") || opts.PGVersion == 0 {
				opts.PGVersion = pgVersion
			}
			if opts.PGVersion < 9 || opts.PGVersion > 99 {
				return usageErr(fmt.Errorf("--pg-version: %d is not a PostgreSQL major version", opts.PGVersion))
			}
			sources, err := lint.LoadSources(args, cmd.InOrStdin())
			if err != nil {
				return usageErr(err)
			}
			if databaseURL != "" {
				cat, err := lint.LoadCatalog(cmd.Context(), databaseURL)
				if err != nil {
					return usageErr(fmt.Errorf("--database-url: %w", err))
				}
				opts.Catalog = cat
			}
			res, err := lint.Lint(sources, opts)
			if err != nil {
				if pe, ok := lint.AsParseError(err); ok {
					return usageErr(pe)
				}
				return usageErr(err)
			}
			if err := lint.Write(cmd.OutOrStdout(), format, res); err != nil {
				return err
			}
			if res.Errors() > 0 {
				return silentExit(exitFailure)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&pgVersion, "pg-version", lint.DefaultPGVersion, "major version of the target PostgreSQL server")
	f.StringVar(&format, "format", "text", "output format: "+strings.Join(lint.Formats, ", "))
	f.StringVar(&configPath, "config", "", "configuration file (default: .tandem-lint.yaml or tandem.yaml in the current directory)")
	f.StringVar(&databaseURL, "database-url", "", "read the live catalog (column types, constraints, table sizes) from this database")
	f.BoolVar(&listRules, "list-rules", false, "list the rules and exit")
	f.BoolVar(&jsonOut, "json", false, "same as --format json")
	f.BoolVar(&noForeign, "no-foreign-ignores", false, "do not honour squawk's and atlas's suppression comments (-- squawk-ignore, -- atlas:nolint)")
	return cmd
}

// loadLintConfig reads the configuration named by --config, or the one found in the
// current directory, or returns the defaults.
func loadLintConfig(path string) (lint.Config, error) {
	if path == "" {
		path = lint.FindConfig(".")
		if path == "" {
			return lint.Config{}, nil
		}
	}
	cfg, err := lint.LoadConfig(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		return cfg, err
	}
	return cfg, nil
}

func printRules(cmd *cobra.Command) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tCATEGORY\tSEVERITY\tSUMMARY")
	for _, r := range lint.Rules() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Category, r.Severity, r.Summary)
	}
	return tw.Flush()
}
