// Package lintcmd is the lint command of Tandem's binaries: `tandem lint`, and the
// lint-only `tandem-lint` for CI images, which starts in about two thirds of the time
// because it links nothing else.
package lintcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/lint"
)

// New builds the lint command: static safety analysis of plain SQL migrations.
func New() *cobra.Command {
	var (
		pgVersion   int
		out         cli.ReportFlags
		configPath  string
		databaseURL string
		listRules   bool
		noForeign   bool
		baseline    string
		updateBase  bool
		since       string
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
in-memory catalog, so a table created earlier in the same file is known to be new
(unless created with IF NOT EXISTS: on an installation being upgraded it may exist).

A file runs in one transaction unless it says otherwise (-- +goose NO TRANSACTION,
-- atlas:txmode none, -- morph:nontransactional, -- no-transaction, dbmate's
transaction:false) or uses BEGIN/COMMIT itself.

Ignore a finding with a comment on the statement:  -- tandem-lint-ignore: rule-id[, rule-id]
or for the whole file:                          -- tandem-lint-ignore-file: rule-id
squawk's (-- squawk-ignore, -- squawk-ignore-file) and atlas's (-- atlas:nolint, for the
whole file in the comments the file opens with, followed by an empty line) comments count
too, their rule names mapped to ours, unless --no-foreign-ignores.

Configuration (--config, else .tandem-lint.yaml or the "lint:" key of tandem.yaml in the
current directory):
  pg-version: 15
  disable: [truncate]
  severity: {drop-not-null: error, statement-timeout: off}
  timeouts-set-by-runner: true   # the runner sets lock_timeout/statement_timeout
  transaction: file              # or none: the runner does not wrap files
  no-foreign-ignores: true       # like --no-foreign-ignores

--baseline FILE records today's findings in FILE on the first run (exit 0); later runs
report only the findings it does not hold, matched by rule, file and statement text, not
by line. --since REV replays the whole history but reports only the files changed since
the git revision REV, and untracked ones.

Exit codes: 0 no findings at error level, 1 findings at error level, 2 input unreadable or
unparsable. A file that does not parse is reported as a finding (syntax-error, with
file:line:column) in the chosen format, and the other files are still analysed.`,
		Example: `  tandem lint migrations/
  tandem lint --format github db/migrations/*.sql
  tandem lint --database-url "$DATABASE_URL" migrations/0042_add_index.sql
  tandem lint --baseline .tandem-lint-baseline.json migrations/   # fail only on new findings
  tandem lint --since origin/main migrations/   # replay all, report the files changed since`,
		Args: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return nil
			}
			if since != "" && slices.Contains(args, "-") {
				return cli.UsageErr(errors.New("--since needs files or directories in a git work tree, not stdin"))
			}
			if updateBase && baseline == "" {
				return cli.UsageErr(errors.New("--update-baseline needs --baseline FILE"))
			}
			return cli.ArgsErr(cobra.MinimumNArgs(1))(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return printRules(cmd)
			}
			format, err := out.Resolve(cmd)
			if err != nil {
				return err
			}
			cfg, err := loadLintConfig(configPath)
			if err != nil {
				return cli.UsageErr(err)
			}
			if noForeign {
				cfg.NoForeignIgnores = true
			}
			opts := lint.Options{Config: cfg, PGVersion: cfg.PGVersion}
			if cmd.Flags().Changed("pg-version") || opts.PGVersion == 0 {
				opts.PGVersion = pgVersion
			}
			if opts.PGVersion < 9 || opts.PGVersion > 99 {
				return cli.UsageErr(fmt.Errorf("--pg-version: %d is not a PostgreSQL major version", opts.PGVersion))
			}
			sources, err := lint.LoadSources(args, cmd.InOrStdin())
			if err != nil {
				return cli.UsageErr(err)
			}
			relaxGC(sources)
			if databaseURL != "" {
				cat, err := lint.LoadCatalog(cmd.Context(), databaseURL)
				if err != nil {
					return cli.UsageErr(fmt.Errorf("--database-url: %w", err))
				}
				opts.Catalog = cat
			}
			res, err := lint.Lint(sources, opts)
			_, unparsable := lint.AsParseError(err)
			if err != nil && !unparsable {
				return cli.UsageErr(err)
			}
			if since != "" {
				changed, err := changedFiles(cmd.Context(), args, since)
				if err != nil {
					return cli.UsageErr(fmt.Errorf("--since %s: %w", since, err))
				}
				res.Hide(func(f lint.Finding) bool { return !changed[absPath(f.File)] })
			}
			if baseline != "" {
				recorded, err := applyBaseline(baseline, updateBase, res)
				if err != nil {
					return cli.UsageErr(fmt.Errorf("--baseline: %w", err))
				}
				if recorded {
					n := res.Hide(func(lint.Finding) bool { return true })
					fmt.Fprintf(cmd.ErrOrStderr(), "recorded %d findings in the baseline %s; later runs fail only on new ones\n", n, baseline)
				}
			}
			if err := lint.Write(cmd.OutOrStdout(), format, res); err != nil {
				return err
			}
			if unparsable {
				// The parse errors are in the report, in the chosen format.
				return cli.SilentExit(cli.ExitUsage)
			}
			if res.Errors() > 0 {
				return cli.SilentExit(cli.ExitFailure)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&pgVersion, "pg-version", lint.DefaultPGVersion, "major version of the target PostgreSQL server")
	out.Add(cmd)
	f.StringVar(&configPath, "config", "", "configuration file (default: .tandem-lint.yaml or tandem.yaml in the current directory)")
	f.StringVar(&databaseURL, "database-url", "", "read the live catalog (column types, constraints, table sizes) from this database")
	f.BoolVar(&listRules, "list-rules", false, "list the rules and exit")
	f.StringVar(&baseline, "baseline", "", "report only findings not in this baseline file; a missing file is created with today's findings")
	f.BoolVar(&updateBase, "update-baseline", false, "rewrite the --baseline file with today's findings")
	f.StringVar(&since, "since", "", "replay every file, but report only files changed since this git revision (and untracked ones)")
	f.BoolVar(&noForeign, "no-foreign-ignores", false, "do not honour squawk's and atlas's suppression comments (-- squawk-ignore, -- atlas:nolint)")
	return cmd
}

// smallInput is the size of SQL below which relaxGC lets the heap grow.
const smallInput = 4 << 20

// relaxGC makes the garbage collector run less often when the input is small. Linting a
// history allocates about 25 times its size, little of which stays live; in a process that
// exits right after, collecting it every 4 MB costs more CPU than the memory it saves.
// Large inputs, whose peak memory matters more, keep the default.
func relaxGC(sources []lint.Source) {
	n := 0
	for _, s := range sources {
		n += len(s.SQL)
	}
	if n < smallInput {
		debug.SetGCPercent(400)
	}
}

// applyBaseline hides the findings the baseline at path holds. When the file does not
// exist, or update is set, it records res's findings there instead and returns true.
func applyBaseline(path string, update bool, res *lint.Result) (bool, error) {
	if !update {
		b, err := lint.ReadBaseline(path)
		if err == nil {
			b.Apply(res)
			return false, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
	}
	return true, lint.NewBaseline(res).Write(path)
}

// changedFiles lists, as absolute paths, the files changed between rev and the work tree
// and the untracked ones, in the git repository that holds the first path.
func changedFiles(ctx context.Context, paths []string, rev string) (map[string]bool, error) {
	dir := paths[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	git := func(args ...string) ([]string, error) {
		c := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("git %s: %w: %s (run it on files in a git work tree, with a revision git knows)",
				strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.FieldsFunc(string(out), func(r rune) bool { return r == 0 }), nil
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	if len(top) != 1 {
		return nil, errors.New("git rev-parse --show-toplevel: no work tree")
	}
	root := strings.TrimSpace(top[0])
	diff, err := git("diff", "--name-only", "-z", rev, "--")
	if err != nil {
		return nil, err
	}
	untracked, err := git("ls-files", "-z", "--others", "--exclude-standard", "--full-name")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range append(diff, untracked...) {
		out[absPath(filepath.Join(root, filepath.FromSlash(f)))] = true
	}
	return out, nil
}

// absPath returns p as an absolute path with symbolic links resolved, or p cleaned when
// that fails.
func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(a); err == nil {
		return r
	}
	return a
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
