package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/proving"
)

// newProveCmd is `tandem prove`, and its hidden `tandem prove instance` that runs one
// instance of the example app (so that prove needs only the tandem binary).
func newProveCmd() *cobra.Command {
	var (
		opts     proving.Options
		report   string
		svg      string
		asJSON   bool
		keepDir  bool
		workDir  string
		routerMd string
	)
	cmd := &cobra.Command{
		Use:   "prove",
		Short: "Roll the example service under load through a real HAProxy and count failed requests",
		Long: `prove starts, on 127.0.0.1 only, a throwaway PostgreSQL, a real HAProxy, N instances of
the example service (examples/catalog) and a load generator at a fixed rate over keep-alive
connections, with a share of slow streaming requests. A router applies endpoint changes to
HAProxy with a lag (like the OpenShift router), by reload (-sf) or the runtime API. Then it
restarts every instance as a Deployment with maxSurge 1 / maxUnavailable 0 does, and reports
every failed request, latency percentiles in steady state and during the rollout, and a
picture of latency and errors over time.

--no-drain runs instances that exit at once on SIGTERM, to show the difference.

Exit codes: 0 the run completed and no request failed, 1 requests failed, 2 it could not run.
Needs haproxy (Debian package haproxy) and PostgreSQL's server binaries.`,
		Example: "  tandem prove --instances 3 --rate 1000 --duration 60s --router-lag 5s --report report.json",
		Args:    argsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the tandem binary: %w", err)
			}
			opts.InstanceCommand = []string{exe, "prove", "instance"}
			opts.RouterMode = routerMd
			opts.WorkDir, opts.KeepWorkDir = workDir, keepDir || workDir != ""
			level := slog.LevelInfo
			if !global.verbose && asJSON {
				level = slog.LevelWarn
			}
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if opts.Rate > proving.MaxRate || opts.Instances > proving.MaxInstances || opts.Duration > proving.MaxDuration {
				return usageErr(fmt.Errorf("prove: at most %d req/s, %d instances and %s of load",
					proving.MaxRate, proving.MaxInstances, proving.MaxDuration))
			}
			rep, err := proving.Run(cmd.Context(), opts)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("prove could not run: %w", err)}
			}
			if report != "" {
				if err := rep.WriteJSON(report); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if svg == "" {
					svg = strings.TrimSuffix(report, ".json") + ".svg"
				}
			}
			if svg != "" {
				if err := rep.WriteSVG(svg); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.Summary(out)
				if report != "" {
					fmt.Fprintf(out, "report: %s, picture: %s\n", report, svg)
				}
			}
			if rep.Failed > 0 {
				return silentExit(exitFailure)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Instances, "instances", 3, "instances of the example app")
	f.IntVar(&opts.Rate, "rate", 1000, "requests per second")
	f.DurationVar(&opts.Duration, "duration", 60*time.Second, "how long the load runs (extended to cover the rollout)")
	f.DurationVar(&opts.RolloutAt, "rollout-at", 0, "when the rolling restart starts (default: a third of --duration)")
	f.DurationVar(&opts.RouterLag, "router-lag", 5*time.Second, "how long endpoint changes take to reach HAProxy")
	f.StringVar(&routerMd, "router", proving.RouterReload, "how the router changes HAProxy: reload (-sf) or runtime (API)")
	f.BoolVar(&opts.NoDrain, "no-drain", false, "instances exit at once on SIGTERM")
	f.DurationVar(&opts.DrainDelay, "drain-delay", 0, "the instances' drain delay (default: router lag + 3s)")
	f.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "the instances' shutdown timeout")
	f.Float64Var(&opts.StreamShare, "stream-share", 0.02, "share of requests that stream a blob slowly")
	f.DurationVar(&opts.StreamDuration, "stream-duration", time.Second, "how long each stream takes")
	f.IntVar(&opts.TaskRate, "task-rate", 10, "worker tasks queued per second")
	f.StringVar(&opts.HAProxy, "haproxy", "haproxy", "the haproxy binary")
	f.StringVar(&report, "report", "", "write the JSON report here (and the SVG next to it)")
	f.StringVar(&svg, "svg", "", "write the SVG picture here")
	f.BoolVar(&asJSON, "json", false, "print the JSON report on stdout")
	f.StringVar(&workDir, "work-dir", "", "keep configurations and logs in this directory")
	f.BoolVar(&keepDir, "keep-work-dir", false, "keep the temporary directory with configurations and logs")

	cmd.AddCommand(&cobra.Command{
		Use:                "instance",
		Short:              "Run one instance of the example app (used by prove)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := catalog.Main(cmd.Context(), "tandem prove instance", args); code != 0 {
				return silentExit(code)
			}
			return nil
		},
	})
	return cmd
}
