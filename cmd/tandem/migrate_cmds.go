package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"

	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade"
)

func newInitCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create Tandem's state schema (idempotent; start does it too)",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := openMigrator(cmd.Context())
			if err != nil {
				return err
			}
			defer m.Close(cmd.Context())
			if err := m.Init(cmd.Context()); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{"schema": global.schema, "state_schema": global.stateSchema})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialized state schema %q\n", global.stateSchema)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// endResult is what complete and rollback print with --json.
type endResult struct {
	Migration     string `json:"migration"`
	Status        string `json:"status"`
	VersionSchema string `json:"version_schema"`
	DurationMS    int64  `json:"duration_ms"`
}

// endMigration runs complete or rollback (end) on the migration in progress and reports
// it, as text or JSON.
func endMigration(cmd *cobra.Command, asJSON bool, status string, end func(*migrate.Migrator) error) error {
	return withMigrator(cmd.Context(), func(m *migrate.Migrator) error {
		st, err := m.Status(cmd.Context())
		if err != nil {
			return err
		}
		// An upgrade in progress owns its migration: completing it by hand could contract
		// under old instances still serving; rolling it back would pull the schema from
		// under the new ones.
		if up, err := upgrade.InProgress(cmd.Context(), m.Conn(), global.stateSchema, global.schema); err != nil {
			return err
		} else if up != nil && st.Active != nil && up.Migration == st.Active.Name {
			return fmt.Errorf("migration %s belongs to upgrade %d of %s to %s (at step %s): use `tandem upgrade resume` or `tandem upgrade abort`",
				up.Migration, up.ID, up.App, up.To, up.Step)
		}
		res := endResult{Status: status}
		if st.Active != nil {
			res.Migration, res.VersionSchema = st.Active.Name, st.Active.VersionSchema
		}
		t0 := time.Now()
		if err := end(m); err != nil {
			return err
		}
		res.DurationMS = time.Since(t0).Milliseconds()
		if asJSON {
			return printJSON(cmd.OutOrStdout(), res)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "migration %s %s\n", res.Migration, strings.ReplaceAll(status, "_", " "))
		return nil
	})
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printMigrationPlan prints a plan of start or complete, as text or JSON.
func printMigrationPlan(w io.Writer, plan *migrate.Plan, asJSON bool) error {
	if asJSON {
		return printJSON(w, plan)
	}
	fmt.Fprintf(w, "plan of the %s of %s (nothing applied):\n", plan.Action, plan.Migration)
	for i, s := range plan.Steps {
		what := s.Kind
		if s.Operation >= 0 {
			what = fmt.Sprintf("%s operation %d (%s)", s.File, s.Operation, s.Kind)
		}
		fmt.Fprintf(w, "\n%d. %s: %s\n", i+1, what, s.Type)
		for _, l := range s.Locks {
			fmt.Fprintf(w, "   locks %s in %s mode\n", l.Table, l.Mode)
		}
		if b := s.Backfill; b != nil {
			fmt.Fprintf(w, "   fills %s.%s with %s: about %d rows\n", b.Table, b.Column, b.Expression, b.Rows)
		}
		for _, st := range s.Statements {
			fmt.Fprintf(w, "   %s;\n", strings.ReplaceAll(st, "\n", "\n   "))
		}
	}
	return nil
}

// startResult is what start and migrate print with --json.
type startResult struct {
	Migrations    []string `json:"migrations"`
	VersionSchema string   `json:"version_schema"`
	Completed     bool     `json:"completed"`
	DurationMS    int64    `json:"duration_ms"`
}

func newStartCmd() *cobra.Command {
	var complete, asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "start <file>",
		Short: "Start (expand) a migration: afterwards both the old and the new version work",
		Long: `Start applies the additive half of a migration (pgroll's JSON/YAML format) and creates
the new version's schema of views, named <schema>_<migration name>. The old version keeps
working unchanged. Existing rows of changed columns are backfilled in batches, with progress.

Running start again after it was interrupted (killed, a lock it could not get) resumes it.
The file is validated against the live schema before anything is applied: a bad file
exits with 2 and changes nothing.

With --dry-run, start prints its plan and applies nothing: each operation's statements in
order, by transaction, the locks they take, and the rows each backfill fills.`,
		Args: cli.ArgsErr(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			mig, err := readMigration(args[0])
			if err != nil {
				return err
			}
			if dryRun && complete {
				return cli.UsageErr(errors.New("--dry-run plans a start only; plan the complete with tandem complete --dry-run once started"))
			}
			m, err := openMigrator(cmd.Context())
			if err != nil {
				return err
			}
			defer m.Close(cmd.Context())
			if dryRun {
				plan, err := m.PlanStart(cmd.Context(), mig)
				if err != nil {
					return classify(err)
				}
				return printMigrationPlan(cmd.OutOrStdout(), plan, asJSON)
			}
			t0 := time.Now()
			if err := m.Start(cmd.Context(), mig); err != nil {
				return classify(err)
			}
			res := startResult{Migrations: []string{mig.Name}, VersionSchema: mig.VersionSchemaIn(global.schema)}
			out := cmd.OutOrStdout()
			if !asJSON {
				fmt.Fprintf(out, "started %s in %s: the new version's schema is %s\n", mig.Name, time.Since(t0).Round(time.Millisecond), res.VersionSchema)
			}
			if complete {
				if err := m.Complete(cmd.Context()); err != nil {
					return err
				}
				res.Completed = true
			}
			res.DurationMS = time.Since(t0).Milliseconds()
			switch {
			case asJSON:
				return printJSON(out, res)
			case complete:
				fmt.Fprintf(out, "completed %s\n", mig.Name)
			default:
				fmt.Fprintln(out, "roll out the new version, then run: tandem complete")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&complete, "complete", false, "complete the migration right after starting it (no old version must be running)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (statements, locks, rows to backfill) and apply nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addBackfillFlags(cmd)
	return cmd
}

func newCompleteCmd() *cobra.Command {
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "complete",
		Short: "Complete (contract) the migration in progress, once the old version is gone",
		Long: `Complete makes the destructive half of the migration in progress: it drops the old
version's schema, the old columns and tables, and the dual-write triggers, and validates
new constraints. Run it only when no instance of the old version is running.
Running it again after it was interrupted finishes it.

With --dry-run, complete prints its plan (statements by transaction, and their locks) and
applies nothing.`,
		Args: cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dryRun {
				return withMigrator(cmd.Context(), func(m *migrate.Migrator) error {
					plan, err := m.PlanComplete(cmd.Context())
					if err != nil {
						return err
					}
					return printMigrationPlan(cmd.OutOrStdout(), plan, asJSON)
				})
			}
			return endMigration(cmd, asJSON, migrate.StatusCompleted, func(m *migrate.Migrator) error { return m.Complete(cmd.Context()) })
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (statements and locks) and apply nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newRollbackCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo the migration in progress (also one whose start was interrupted)",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return endMigration(cmd, asJSON, migrate.StatusRolledBack, func(m *migrate.Migrator) error { return m.Rollback(cmd.Context()) })
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the migration in progress, backfill progress and the history",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := openMigrator(cmd.Context())
			if err != nil {
				return err
			}
			defer m.Close(cmd.Context())
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, st)
			}
			fmt.Fprintf(out, "schema:  %s\nstate:   %s\n", st.Schema, st.State)
			if st.Version != "" {
				fmt.Fprintf(out, "version: %s (schema %s)\n", st.Version, st.VersionSchema)
			}
			if a := st.Active; a != nil {
				fmt.Fprintf(out, "active:  %s, %s since %s\n", a.Name, a.Status, a.StartedAt.Format(time.RFC3339))
			}
			for _, b := range st.Backfills {
				fmt.Fprintf(out, "backfill %s.%s: %s\n", b.Table, b.Column, progressRows(b))
				if b.Throttle != nil && !b.Done {
					fmt.Fprintf(out, "  pacing: %s\n", b.Throttle)
				}
			}
			if len(st.History) > 0 {
				fmt.Fprintln(out, "history:")
				for _, h := range st.History {
					fmt.Fprintf(out, "  %-30s %-12s %s", h.Name, h.Status, h.StartedAt.Format(time.RFC3339))
					if len(h.Includes) > 1 {
						fmt.Fprintf(out, "  (applied together: %s)", strings.Join(h.Includes, ", "))
					}
					printTandemVersions(out, h.TandemVersions)
					fmt.Fprintln(out)
				}
			}
			printStreams(out, st.Streams)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newMigrateCmd() *cobra.Command {
	var complete, contract, asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate <dir>|<tandem.yaml>",
		Short: "Apply every pending migration file of a directory, in file-name order",
		Long: `Migrate applies the migration files (.json, .yaml, .yml) of a directory that have not
been applied yet, in file-name order, as ONE expand/contract step: the version that runs
now keeps working, and the new version sees the result of the last file in the version
schema named after it (intermediate versions are not exposed). Run tandem complete once
the old version is gone, or pass --complete to contract at once.

Given a release description (tandem.yaml) instead, it applies the pending migrations of
every stream the release lists (docs/streams.md) as one expand step, in dependency order:
the plain-SQL streams' pre-deploy files (linted first: a blocking finding stops it before
any change), then the pgroll streams' migrations combined. --complete contracts at once
and runs the post-deploy files; --contract does only that, once the old version is gone.`,
		Args: cli.ArgsErr(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isStreamsFile(args[0]) {
				return migrateStreams(cmd, args[0], complete, contract, asJSON)
			}
			if contract {
				return cli.UsageErr(fmt.Errorf("--contract is for a release description (tandem.yaml); for a directory run tandem complete"))
			}
			migs, err := migrate.ReadDir(args[0])
			if err != nil {
				return cli.UsageErr(err)
			}
			m, err := openMigrator(cmd.Context())
			if err != nil {
				return err
			}
			defer m.Close(cmd.Context())
			t0 := time.Now()
			applied, err := m.Migrate(cmd.Context(), migs, complete)
			if err != nil {
				return classify(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				res := startResult{Migrations: applied, Completed: complete && len(applied) > 0, DurationMS: time.Since(t0).Milliseconds()}
				if res.Migrations == nil {
					res.Migrations = []string{}
				}
				if len(applied) > 0 {
					res.VersionSchema = migrate.Combine(pendingOf(migs, applied)).VersionSchemaIn(global.schema)
				}
				return printJSON(out, res)
			}
			if len(applied) == 0 {
				fmt.Fprintln(out, "nothing to apply: every migration is applied")
				return nil
			}
			fmt.Fprintf(out, "applied %s\n", strings.Join(applied, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&complete, "complete", false, "complete the migrations too (no old version must be running)")
	cmd.Flags().BoolVar(&contract, "contract", false, "with a tandem.yaml: only contract what an earlier run expanded, and run the post-deploy files")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addBackfillFlags(cmd)
	return cmd
}

// pendingOf returns the migrations of migs named in applied.
func pendingOf(migs []*migrate.Migration, applied []string) []*migrate.Migration {
	var out []*migrate.Migration
	for _, m := range migs {
		for _, a := range applied {
			if m.Name == a {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// latestResult is what latest prints with --json.
type latestResult struct {
	Migration     string `json:"migration"`
	VersionSchema string `json:"version_schema"`
	URL           string `json:"url,omitempty"`
}

func newLatestCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "latest schema|migration|url",
		Short: "Print the newest version's schema, migration name, or a connection URL for it",
		Long: `latest schema     prints the version schema the newest code should use as search_path
latest migration  prints the name of the newest migration
latest url        prints the connection URL with search_path and tandem.version_schema set`,
		Args:      cli.ArgsErr(cobra.ExactArgs(1)),
		ValidArgs: []string{"schema", "migration", "url"},
		RunE: func(cmd *cobra.Command, args []string) error {
			what := args[0]
			if what != "schema" && what != "migration" && what != "url" {
				return cli.UsageErr(fmt.Errorf("latest: want schema, migration or url, not %q", what))
			}
			m, err := openMigrator(cmd.Context())
			if err != nil {
				return err
			}
			defer m.Close(cmd.Context())
			name, vs, err := m.LatestVersion(cmd.Context())
			if err != nil {
				return err
			}
			if name == "" {
				vs = global.schema
			}
			out := cmd.OutOrStdout()
			if asJSON {
				res := latestResult{Migration: name, VersionSchema: vs}
				if what == "url" {
					if res.URL, err = versionURL(global.postgresURL, vs); err != nil {
						return err
					}
				}
				return printJSON(out, res)
			}
			switch what {
			case "schema":
				fmt.Fprintln(out, vs)
			case "migration":
				if name == "" {
					return errors.New("no migration has been applied")
				}
				fmt.Fprintln(out, name)
			case "url":
				u, err := versionURL(global.postgresURL, vs)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, u)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the migration, the version schema (and the URL for latest url) as JSON")
	return cmd
}

// versionURL returns base (a URL; empty means the PG* variables) with the options that
// pin a connection to version schema vs.
func versionURL(base, vs string) (string, error) {
	var u *url.URL
	if base == "" {
		cfg, err := pgx.ParseConfig("")
		if err != nil {
			return "", err
		}
		u = &url.URL{Scheme: "postgres", User: url.User(cfg.User), Path: "/" + cfg.Database}
		if strings.HasPrefix(cfg.Host, "/") {
			// A Unix socket directory goes in the host parameter, not the authority.
			u.RawQuery = url.Values{"host": {cfg.Host}, "port": {fmt.Sprint(cfg.Port)}}.Encode()
		} else {
			u.Host = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
		}
	} else {
		var err error
		if u, err = url.Parse(base); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return "", cli.UsageErr(fmt.Errorf("latest url needs a postgres:// URL in --postgres-url"))
		}
	}
	q := u.Query()
	opts := q.Get("options")
	params := migrate.SessionParams(vs)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = strings.TrimSpace(opts + " -c " + k + "=" + strings.ReplaceAll(params[k], " ", `\ `))
	}
	q.Set("options", opts)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// validateResult is what validate prints with --json.
type validateResult struct {
	File       string `json:"file"`
	Valid      bool   `json:"valid"`
	Operations int    `json:"operations,omitempty"`
	Error      string `json:"error,omitempty"`
	Operation  *int   `json:"operation,omitempty"` // index of the operation at fault
	Kind       string `json:"kind,omitempty"`
	Field      string `json:"field,omitempty"`
}

func newValidateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate <file>",
		Short: "Check a migration file against the live schema without applying anything",
		Long: `Validate reads a migration file and checks it against the live schema, in a read-only
transaction that is rolled back: tables, columns and types exist, expressions parse and fit.
It exits 0 when the file is valid and 2 when it is not, naming the operation and field.`,
		Args: cli.ArgsErr(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			res := validateResult{File: args[0]}
			err := func() error {
				mig, err := readMigration(args[0])
				if err != nil {
					return err
				}
				res.Operations = len(mig.Operations)
				m, err := openMigrator(cmd.Context())
				if err != nil {
					return err
				}
				defer m.Close(cmd.Context())
				return classify(m.Validate(cmd.Context(), mig))
			}()
			out := cmd.OutOrStdout()
			var ie *migrate.InputError
			if asJSON && (err == nil || errors.As(err, &ie)) {
				res.Valid = err == nil
				if ie != nil {
					res.Error, res.Kind, res.Field, res.Operations = ie.Err.Error(), ie.Kind, ie.Field, 0
					if ie.Op >= 0 {
						res.Operation = &ie.Op
					}
				}
				if perr := printJSON(out, res); perr != nil {
					return perr
				}
				if err != nil {
					return cli.SilentExit(cli.ExitUsage)
				}
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: valid (%d operations)\n", args[0], res.Operations)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// backfillFlags are the backfill pacing flags of start and migrate.
var backfillFlags struct {
	impact string
	rate   float64
}

func addBackfillFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&backfillFlags.impact, "backfill-impact", "normal",
		"how much the backfill may slow the application: low, normal (hold back while the database is busy or waits on the backfill's locks) or max (never hold back)")
	cmd.Flags().Float64Var(&backfillFlags.rate, "backfill-rate", 0, "cap the backfill at this many rows per second, all workers together (0: no cap)")
}

// backfillOptions sets the backfill pacing of opts from the flags; an impossible value
// is a usage error naming the range.
func backfillOptions(opts *migrate.Options) error {
	impact, err := migrate.ParseBackfillImpact(backfillFlags.impact)
	if err != nil {
		return cli.UsageErr(fmt.Errorf("--backfill-impact: %w", err))
	}
	if r := backfillFlags.rate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return cli.UsageErr(fmt.Errorf("--backfill-rate %v: want rows per second, 0 or more (0: no cap)", r))
	}
	opts.BackfillImpact, opts.BackfillRate = impact, backfillFlags.rate
	return nil
}

// printTandemVersions appends the Tandem version of each step of a migration to its
// history line.
func printTandemVersions(out io.Writer, versions map[string]string) {
	var parts []string
	for _, step := range []string{"start", "complete", "rollback"} {
		if v, ok := versions[step]; ok {
			parts = append(parts, step+" by "+v)
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(out, "  [%s]", strings.Join(parts, ", "))
	}
}
