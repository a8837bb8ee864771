package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
	"github.com/tandem-pg/tandem/upgrade/local"
)

// upgradeFlags are the flags of the upgrade verbs.
type upgradeFlags struct {
	asJSON     bool
	app        string
	localDir   string
	routerPort int
	routerLag  time.Duration
	dryRun     bool
	kubeconfig string
	kubeCtx    string
	catalog    string
	downtime   bool
}

func newUpgradeCmd() *cobra.Command {
	var f upgradeFlags
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Run a whole zero-downtime upgrade to a release: plan, apply, status, resume, abort",
		Long: `upgrade performs a whole zero-downtime upgrade of a service to a release described
by its tandem.yaml (see docs/upgrade.md): preflight, maintenance mode on, expand (the
release's pending migrations as one step), roll each workload (a new instance ready and
registered before an old one stops and drains), wait until the old version is gone from
BOTH the instance registry and the backend (draining instances included), contract, and
maintenance mode off. Each step is recorded in the state schema: an upgrade killed at any
point continues with "tandem upgrade resume"; before contract, "tandem upgrade abort" rolls
the workloads and the migration back.

RELEASE is a tandem.yaml or a directory holding one (default: ./tandem.yaml). With
--catalog (a directory of releases, or a releases.yaml listing them), RELEASE may be a
version of the catalog, and plan and apply go there through as many upgrades (hops) as the
releases' compatible-from demand; resume finishes the path. A target no zero-downtime path
reaches is refused, or with --allow-downtime installed in a maintenance window: stop the
old instances, migrate and complete, start the new ones. A release with "contract:
deferred" keeps the previous release's schema until the next upgrade: apply of the
previous release meanwhile rolls the app back, with no database change.

Exit codes: 0 done (plan: possible), 1 the upgrade is not possible or stopped (plan: not
possible, and why), 2 bad usage or an invalid tandem.yaml.`,
	}
	pf := cmd.PersistentFlags()
	pf.BoolVar(&f.asJSON, "json", false, "print the result as JSON on stdout")
	pf.StringVar(&f.localDir, "local-dir", "", "the local backend's state directory (default: $XDG_STATE_HOME/tandem/<app> or ~/.local/state/tandem/<app>)")
	pf.IntVar(&f.routerPort, "router-port", 0, "local backend: the router's port on 127.0.0.1 (default: a free port, then the recorded one)")
	pf.DurationVar(&f.routerLag, "router-lag", 0, "local backend: how long endpoint changes take to reach the router")
	pf.StringVar(&f.kubeconfig, "kubeconfig", "", "kube backend: the kubeconfig (default: $KUBECONFIG, ~/.kube/config, else the in-cluster service account)")
	pf.StringVar(&f.kubeCtx, "context", "", "kube backend: the kubeconfig context (default: the current one)")

	pf.StringVar(&f.catalog, "catalog", "", "plan and apply: a release catalog (a directory of releases, or a releases.yaml); RELEASE may then be a version")
	pf.BoolVar(&f.downtime, "allow-downtime", false, "plan and apply: a target no zero-downtime path reaches is installed in a maintenance window")
	plan := &cobra.Command{
		Use:   "plan [RELEASE]",
		Short: "Print what an upgrade to the release would do; exit 1 if it cannot be done without downtime",
		Args:  cli.ArgsErr(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd, &f, args)
		},
	}
	apply := &cobra.Command{
		Use:   "apply [RELEASE]",
		Short: "Upgrade to the release (--dry-run: plan only)",
		Args:  cli.ArgsErr(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.dryRun {
				return runPlan(cmd, &f, args)
			}
			cat, rel, err := readTarget(&f, args)
			if err != nil {
				return err
			}
			return withUpgrader(cmd, &f, rel, func(u *upgrade.Upgrader) error {
				path, err := u.ApplyPath(cmd.Context(), cat, rel.Version, upgrade.PathOptions{AllowDowntime: f.downtime})
				return pathResult(cmd, &f, path, err)
			})
		},
	}
	apply.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	status := &cobra.Command{
		Use:   "status [RELEASE]",
		Short: "Show the app's newest upgrade, its steps and timeline, and its instances",
		Args:  cli.ArgsErr(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpgradeStatus(cmd, &f, args)
		},
	}
	resume := &cobra.Command{
		Use:   "resume [RELEASE]",
		Short: "Continue the app's upgrade in progress from its recorded step",
		Args:  cli.ArgsErr(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRecorded(cmd, &f, args, func(u *upgrade.Upgrader, app string) error {
				rec, err := u.Resume(cmd.Context(), app)
				return upgradeResult(cmd, &f, rec, err)
			})
		},
	}
	abort := &cobra.Command{
		Use:   "abort [RELEASE]",
		Short: "Before contract: roll the workloads and the migration back",
		Args:  cli.ArgsErr(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRecorded(cmd, &f, args, func(u *upgrade.Upgrader, app string) error {
				rec, err := u.Abort(cmd.Context(), app)
				return upgradeResult(cmd, &f, rec, err)
			})
		},
	}
	for _, c := range []*cobra.Command{status, resume, abort} {
		c.Flags().StringVar(&f.app, "app", "", "the app, when no tandem.yaml is at hand")
	}
	cmd.AddCommand(plan, apply, status, resume, abort)
	return cmd
}

// readRelease reads the release named by args, or ./tandem.yaml.
func readRelease(args []string) (*upgrade.Release, error) {
	path := "tandem.yaml"
	if len(args) > 0 {
		path = args[0]
	}
	rel, err := upgrade.ReadRelease(path)
	if err != nil {
		return nil, cli.UsageErr(err)
	}
	return rel, nil
}

// localDir is the local backend's directory for app: --local-dir, else
// $XDG_STATE_HOME/tandem/<app>, else ~/.local/state/tandem/<app>. It does not depend on
// the current directory, so that resume finds what apply started.
func localDir(f *upgradeFlags, app string) (string, error) {
	if f.localDir != "" {
		return filepath.Abs(f.localDir)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tandem", app), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the local backend's state (%w): give --local-dir", err)
	}
	return filepath.Join(home, ".local", "state", "tandem", app), nil
}

// openUpgrader connects with the global flags and, when rel is given, the backend its
// tandem.yaml names (read-only: to look, not to change).
func openUpgrader(cmd *cobra.Command, f *upgradeFlags, rel *upgrade.Release, readOnly bool) (*upgrade.Upgrader, error) {
	ctx := cmd.Context()
	level := slog.LevelWarn
	if global.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	out := newStepPrinter(cmd.ErrOrStderr())
	opts := upgrade.Options{
		PostgresURL: global.postgresURL, StateSchema: global.stateSchema, Logger: logger,
		Migrate:    migrate.Options{LockTimeout: global.lockTimeout, BackfillWorkers: global.backfillWorkers, Logger: logger},
		OnEvent:    out.event,
		OnProgress: out.progress,
	}
	if rel != nil {
		switch rel.Backend {
		case "local":
			dir, err := localDir(f, rel.App)
			if err != nil {
				return nil, cli.UsageErr(err)
			}
			be, err := local.New(local.Options{Dir: dir, RouterPort: f.routerPort, RouterLag: f.routerLag,
				Detach: true, ReadyTimeout: rel.Timeouts.Ready.Duration, Logger: logger, ReadOnly: readOnly})
			if err != nil {
				return nil, err
			}
			opts.Backend = be
		case "kube":
			cfg, ns, err := kube.Config(f.kubeconfig, f.kubeCtx)
			if err != nil {
				return nil, cli.UsageErr(err)
			}
			be, err := kube.New(kube.Options{Config: cfg, Namespace: ns, ReadyTimeout: rel.Timeouts.Ready.Duration,
				Logger: logger, ReadOnly: readOnly})
			if err != nil {
				return nil, err
			}
			opts.Backend = be
			// Each event of the timeline is also a Kubernetes Event on the Deployments.
			opts.OnEvent = func(e upgrade.Event) {
				out.event(e)
				be.StepEvent(ctx, rel, e)
			}
		default:
			return nil, cli.UsageErr(fmt.Errorf("%s: backend %q is not available in this build (local and kube are)", rel.File, rel.Backend))
		}
	}
	u, err := upgrade.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (set --postgres-url, TANDEM_POSTGRES_URL or the PG* variables)", err)
	}
	return u, nil
}

func withUpgrader(cmd *cobra.Command, f *upgradeFlags, rel *upgrade.Release, fn func(*upgrade.Upgrader) error) error {
	return withUpgraderMode(cmd, f, rel, false, fn)
}

func withUpgraderMode(cmd *cobra.Command, f *upgradeFlags, rel *upgrade.Release, readOnly bool, fn func(*upgrade.Upgrader) error) error {
	u, err := openUpgrader(cmd, f, rel, readOnly)
	if err != nil {
		return err
	}
	defer u.Close()
	// The router's last changes must reach it before this process exits.
	if w, ok := u.Backend().(interface{ WaitRouter() }); ok {
		defer w.WaitRouter()
	}
	return fn(u)
}

// withRecorded opens an Upgrader for the app's upgrade in progress, with the backend of
// the release recorded for it (or of RELEASE, when given).
func withRecorded(cmd *cobra.Command, f *upgradeFlags, args []string, fn func(*upgrade.Upgrader, string) error) error {
	rel, app, err := releaseOrApp(f, args)
	if err != nil {
		return err
	}
	if rel == nil {
		// The release recorded with the upgrade says which backend runs it.
		err := withUpgrader(cmd, f, nil, func(u *upgrade.Upgrader) error {
			rep, err := u.Status(cmd.Context(), app)
			if err != nil {
				return err
			}
			if rep == nil {
				return fmt.Errorf("app %s was never upgraded", app)
			}
			rel = rep.Upgrade.Release
			return nil
		})
		if err != nil {
			return err
		}
	}
	return withUpgrader(cmd, f, rel, func(u *upgrade.Upgrader) error { return fn(u, app) })
}

// releaseOrApp reads RELEASE if given; else --app names the app; else ./tandem.yaml.
func releaseOrApp(f *upgradeFlags, args []string) (*upgrade.Release, string, error) {
	if len(args) == 0 && f.app != "" {
		return nil, f.app, nil
	}
	rel, err := readRelease(args)
	if err != nil {
		return nil, "", err
	}
	return rel, rel.App, nil
}

func runPlan(cmd *cobra.Command, f *upgradeFlags, args []string) error {
	cat, rel, err := readTarget(f, args)
	if err != nil {
		return err
	}
	// The kube backend's preflight reads the live Deployments (read-only).
	var live *upgrade.Release
	if rel.Backend == "kube" {
		live = rel
	}
	return withUpgraderMode(cmd, f, live, true, func(u *upgrade.Upgrader) error {
		p, err := u.PlanPath(cmd.Context(), cat, rel.Version, upgrade.PathOptions{AllowDowntime: f.downtime})
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if f.asJSON {
			if err := printJSON(out, p); err != nil {
				return err
			}
		} else {
			printPathPlan(out, p)
		}
		if !p.Possible {
			return cli.SilentExit(cli.ExitFailure)
		}
		return nil
	})
}

func printPlan(w io.Writer, p *upgrade.Plan) {
	from := p.From
	if from == "" {
		from = "(nothing installed)"
	}
	fmt.Fprintf(w, "upgrade %s: %s -> %s (compatible from %s)\n", p.App, from, p.To, p.CompatibleFrom)
	if len(p.Running) == 0 {
		fmt.Fprintln(w, "running now: no registered instance")
	}
	for _, v := range p.Running {
		fmt.Fprintf(w, "running now: %d instance(s) of %s on schema version %s\n", v.Instances, v.AppVersion, v.SchemaVersion)
	}
	fmt.Fprintf(w, "schema version: %s -> %s\n", p.CurrentVersionSchema, p.TargetVersionSchema)
	if len(p.Pending) == 0 {
		fmt.Fprintln(w, "pending migrations: none")
	} else {
		fmt.Fprintf(w, "pending migrations (one expand step): %s\n", strings.Join(p.Pending, ", "))
	}
	printPlanStreams(w, p)
	for _, b := range p.Backfills {
		rows := fmt.Sprintf("~%d rows (catalog estimate)", b.Rows)
		if b.Rows < 0 {
			rows = "size unknown (table never analyzed)"
		}
		fmt.Fprintf(w, "backfill: %s (%s), %s\n", b.Table, b.Operation, rows)
	}
	fmt.Fprintf(w, "maintenance mode: %s\n", p.Maintenance)
	printPlanMode(w, p)
	fmt.Fprintln(w, "steps:")
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %d. %s\n", i+1, s)
	}
	if mc := p.ManifestCheck; mc != nil {
		fmt.Fprintf(w, "manifests (tandem check): %s\n", check.Summary(mc))
		for _, f := range mc.Findings {
			if f.Severity == check.SeverityWarning {
				fmt.Fprintf(w, "  warning: %s:%d: %s [%s]\n", f.File, f.Line, f.Message, f.Rule)
			}
		}
	}
	if p.Possible {
		fmt.Fprintln(w, "verdict: possible without downtime")
		return
	}
	fmt.Fprintln(w, "verdict: NOT possible without downtime:")
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "  - %s\n", pr)
	}
}

func runUpgradeStatus(cmd *cobra.Command, f *upgradeFlags, args []string) error {
	rel, app, err := releaseOrApp(f, args)
	if err != nil {
		return err
	}
	var rep *upgrade.StatusReport
	err = withUpgrader(cmd, f, nil, func(u *upgrade.Upgrader) error {
		rep, err = u.Status(cmd.Context(), app)
		return err
	})
	if err != nil {
		return err
	}
	if rep != nil {
		if rel == nil {
			rel = rep.Upgrade.Release
		}
		// With the backend, the report shows the instances too.
		err = withUpgraderMode(cmd, f, rel, true, func(u *upgrade.Upgrader) error {
			rep, err = u.Status(cmd.Context(), app)
			return err
		})
		if err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		return printJSON(out, rep)
	}
	if rep == nil {
		fmt.Fprintf(out, "app %s: no upgrade recorded\n", app)
		return nil
	}
	r := rep.Upgrade
	fmt.Fprintf(out, "upgrade %d of %s: %s -> %s, %s", r.ID, r.App, orDash(r.From), r.To, r.Status)
	if r.Active() {
		fmt.Fprintf(out, " at step %s", r.Step)
	}
	fmt.Fprintln(out)
	if r.Error != "" {
		fmt.Fprintf(out, "error: %s\n", r.Error)
	}
	printStatusPath(out, rep)
	for _, e := range r.Events {
		line := fmt.Sprintf("  %s  %-16s %s", e.At.Format("15:04:05.000"), e.Step, e.What)
		if e.Duration > 0 {
			line += fmt.Sprintf(" (%s)", e.Duration.Round(time.Millisecond))
		}
		fmt.Fprintln(out, line)
	}
	if m := rep.Migration; m != nil {
		for _, b := range m.Backfills {
			fmt.Fprintf(out, "backfill %s.%s: %d of ~%d rows, %.0f rows/s", b.Table, b.Column, b.RowsDone, b.RowsTotal, b.Rate)
			if b.ETA > 0 {
				fmt.Fprintf(out, ", ETA %s", b.ETA.Round(time.Second))
			}
			fmt.Fprintln(out)
		}
	}
	for _, w := range rep.Workloads {
		fmt.Fprintf(out, "workload %s (%s): %d instance(s)\n", w.Name, w.Role, len(w.Instances))
		for _, in := range w.Instances {
			fmt.Fprintf(out, "  %s  %s  %s  pid %d  %s", in.Name, in.Release, in.State, in.PID, in.Addr)
			if in.Group != "" && in.Group != in.Revision {
				fmt.Fprintf(out, "  replicaset %s", in.Group)
			}
			if in.Reason != "" {
				fmt.Fprintf(out, "  (%s)", in.Reason)
			}
			fmt.Fprintln(out)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// upgradeResult prints the record and maps the error to an exit code.
func upgradeResult(cmd *cobra.Command, f *upgradeFlags, rec *upgrade.Record, err error) error {
	var pe *upgrade.PlanError
	if errors.As(err, &pe) {
		switch {
		case f.asJSON && pe.Path != nil:
			_ = printJSON(cmd.OutOrStdout(), pe.Path)
		case f.asJSON:
			_ = printJSON(cmd.OutOrStdout(), pe.Plan)
		case pe.Path != nil:
			printPathPlan(cmd.OutOrStdout(), pe.Path)
		default:
			printPlan(cmd.OutOrStdout(), pe.Plan)
		}
		return cli.SilentExit(cli.ExitFailure)
	}
	if rec != nil && f.asJSON {
		if jerr := printJSON(cmd.OutOrStdout(), rec); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		return err
	}
	if rec == nil {
		fmt.Fprintln(cmd.OutOrStdout(), "no upgrade ran")
		return nil
	}
	if !f.asJSON {
		fmt.Fprintf(cmd.OutOrStdout(), "upgrade %d of %s to %s: %s\n", rec.ID, rec.App, rec.To, rec.Status)
		if d := rec.Downtime(); d > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "downtime: %s (measured, from stopping the old instances to every new one ready)\n", d.Round(time.Millisecond))
		}
	}
	return nil
}

// stepPrinter shows an upgrade's timeline as it happens: a line per event, and the
// transient progress lines rewritten in place on a terminal (every few seconds
// otherwise).
type stepPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	last     time.Time
	pending  bool // a progress line is on screen
}

func newStepPrinter(w io.Writer) *stepPrinter {
	return &stepPrinter{w: w, terminal: isTerminal(w)}
}

func (p *stepPrinter) event(e upgrade.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending {
		fmt.Fprint(p.w, "\r\033[K")
		p.pending = false
	}
	switch {
	case e.What == "begins":
		fmt.Fprintf(p.w, "%s ▸ %s\n", e.At.Format("15:04:05"), e.Step)
	case e.What == "done":
		fmt.Fprintf(p.w, "%s ✓ %s (%s)\n", e.At.Format("15:04:05"), e.Step, e.Duration.Round(time.Millisecond))
	default:
		fmt.Fprintf(p.w, "%s   %s\n", e.At.Format("15:04:05"), e.What)
	}
}

func (p *stepPrinter) progress(step, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K  %s", line)
		p.pending = true
		return
	}
	if time.Since(p.last) < 5*time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "  %s: %s\n", step, line)
}
