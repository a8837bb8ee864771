package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/proving"
	"github.com/tandem-pg/tandem/upgrade/local"
)

func newDemoCmd() *cobra.Command {
	var (
		opts    proving.Options
		install bool
		report  string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Upgrade the example service from v1 to v2 under load, with no failed request",
		Long: `demo runs Tandem's main job at a small scale, on 127.0.0.1 only: a throwaway PostgreSQL,
a real HAProxy behind a router that lags like OpenShift's, and 3 instances of release v1 of
the example service (examples/catalog) plus a worker, under steady load (reads, writes,
slow streams, worker tasks). Then "tandem upgrade" takes it to v2, whose schema renames a
column the API reads, adds a NOT NULL column computed from others, and widens a column's
type: expand, roll the instances one by one, wait until no v1 instance is left (in the
registry and in the backend, draining ones included), contract. At the end it says what
happened: requests sent and failed, which release answered them, each step, and when
contract ran relative to the last v1 instance.

It needs PostgreSQL's server binaries and HAProxy. When they are missing and tandem runs as
root on Debian or Ubuntu, it installs them with apt-get (--install=false to refuse);
otherwise it says what to install and exits 2.

Exit codes: 0 the upgrade completed with no failed request, 1 a request failed or a check
did not hold, 2 the demo could not run.`,
		Args: cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if err := ensureDemoDeps(cmd.Context(), out, install); err != nil {
				return &cli.ExitError{Code: cli.ExitUsage, Err: err}
			}
			level := slog.LevelWarn
			if global.verbose {
				level = slog.LevelInfo
			}
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			opts.Upgrade = "v2"
			return runDemo(cmd.Context(), out, opts, report)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Rows, "rows", 100_000, "items in the table before the upgrade (the backfill fills them all)")
	f.IntVar(&opts.Rate, "rate", 200, "requests per second through HAProxy")
	f.DurationVar(&opts.Duration, "duration", 45*time.Second, "how long the load runs at least")
	f.DurationVar(&opts.RouterLag, "router-lag", 3*time.Second, "how long endpoint changes take to reach HAProxy")
	f.BoolVar(&install, "install", true, "install PostgreSQL and HAProxy with apt-get when they are missing (as root)")
	f.StringVar(&report, "report", "", "write the JSON report here (and the SVG picture next to it)")
	return cmd
}

// ensureDemoDeps makes sure PostgreSQL's server binaries and HAProxy are here,
// installing them with apt-get when allowed and possible.
func ensureDemoDeps(ctx context.Context, out io.Writer, install bool) error {
	var missing []string
	if !pgserver.Installed() {
		missing = append(missing, "postgresql")
	}
	if !local.HAProxyInstalled() {
		missing = append(missing, "haproxy")
	}
	if len(missing) == 0 {
		return nil
	}
	hint := "install them first: apt-get install -y " + strings.Join(missing, " ")
	if _, err := exec.LookPath("apt-get"); err != nil || !install || os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs %s; %s", strings.Join(missing, " and "), hint)
	}
	fmt.Fprintf(out, "== Installing %s with apt-get (needed by the demo; --install=false to refuse)\n", strings.Join(missing, " and "))
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, missing...)} {
		c := exec.CommandContext(ctx, "apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s\n%s", strings.Join(args, " "), err, tailString(string(b), 2000), hint)
		}
	}
	if !pgserver.Installed() || !local.HAProxyInstalled() {
		return errors.New("apt-get ran, but PostgreSQL or HAProxy is still missing; " + hint)
	}
	return nil
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func runDemo(ctx context.Context, out io.Writer, opts proving.Options, report string) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("== Tandem demo: a zero-downtime upgrade of the example service, v1 -> v2")
	say("Starting a throwaway PostgreSQL and HAProxy; installing v1 (3 API instances and a worker) with %d rows;", opts.Rows)
	say("then %d req/s through HAProxy (router lag %s) while `tandem upgrade` takes the service to v2.", opts.Rate, opts.RouterLag)
	say("v2 renames items.name to title, adds a NOT NULL column computed from others, and makes price_cents bigint.")
	say("This takes about %s.", (opts.Duration + 20*time.Second).Round(5*time.Second))
	began := time.Now()
	rep, err := proving.Run(ctx, opts)
	if err != nil {
		if rep == nil && !errors.Is(err, proving.ErrUpgrade) {
			return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("demo could not run: %w", err)}
		}
		return fmt.Errorf("demo: %w", err) // the upgrade itself failed: exit 1
	}
	if report != "" {
		if err := rep.WriteJSON(report); err != nil {
			return err
		}
		if err := rep.WriteSVG(strings.TrimSuffix(report, ".json") + ".svg"); err != nil {
			return err
		}
	}
	u := rep.Upgrade
	say("\n== What happened (%s)", time.Since(began).Round(time.Second))
	say("requests sent: %d; failed: %d", rep.Total, rep.Failed)
	for class, n := range rep.FailedByClass {
		say("  failed (%s): %d", class, n)
	}
	for _, e := range rep.FirstErrors[:min(3, len(rep.FirstErrors))] {
		say("  e.g. %s", e)
	}
	for _, v := range []string{"v1", "v2"} {
		say("  answered by %s: %d", v, rep.ServedBy[v])
	}
	say("latency p99: %.1f ms before the upgrade, %.1f ms during it", rep.SteadyP99MS, rep.RolloutP99MS)
	say("worker tasks: %d queued, %d done, %d lost, %d done twice", rep.TasksQueued, rep.TasksDone, rep.TasksPending, rep.TasksDoubled)
	if u != nil {
		say("upgrade steps (seconds since the load started):")
		for _, s := range u.Steps {
			say("  %-16s at %5.1fs, took %5.1fs", s.Step, s.StartS, s.DurationS)
		}
		say("a v1 instance was last seen in the registry at %.2fs; contract began at %.2fs: %s",
			u.LastOldSeenS, u.ContractAtS, map[bool]string{true: "after the last v1 instance was gone", false: "TOO EARLY"}[u.ContractAfterOldGone])
		say("rows that existed before: %d, checksum %s", u.ChecksumBefore.Rows,
			map[bool]string{true: "identical after the upgrade", false: "CHANGED"}[u.RowsIntact])
	}
	if rep.Saturated != "" {
		say("note: %s", rep.Saturated)
	}
	if ok, why := rep.Proven(); !ok {
		say("\nNOT proven: %s", strings.Join(why, "; "))
		return cli.SilentExit(cli.ExitFailure)
	}
	say("\nZero downtime: no request failed, no task was lost, and the old schema went only after the old version was gone.")
	if report != "" {
		say("report: %s", report)
	}
	return nil
}
