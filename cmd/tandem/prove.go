package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/proving"
	"github.com/tandem-pg/tandem/upgrade"
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
		kf       proveKubeFlags
	)
	cmd := &cobra.Command{
		Use:   "prove",
		Short: "Roll or upgrade the example service under load through a real HAProxy and count failed requests",
		Long: `prove starts, on 127.0.0.1 only, a throwaway PostgreSQL, installs release v1 of the
example service (examples/catalog) with tandem upgrade on the local backend (N instances
behind a real HAProxy, and a worker), and sends load at a fixed rate over keep-alive
connections: reads, a share of writes and a share of slow streaming requests, plus worker
tasks. A router applies endpoint changes to HAProxy with a lag (like the OpenShift router),
by reload (-sf) or the runtime API.

At --rollout-at it either restarts every instance as a Deployment with maxSurge 1 /
maxUnavailable 0 does, or, with --upgrade, upgrades the example to the next release (or the
one given: --upgrade=v3 --from v2) with the whole flow of tandem upgrade: expand, roll, wait
until the old version is gone, contract. The example's releases are its catalog: from v1,
--upgrade=v3 goes through v2 (two hops). --then goes on to more releases under the same
load, and --defer-contract defers a release's contract, so that --then can roll the app
back to the release before it and forward again with no database change. It reports every failed request, latency in steady
state and during the rollout, the upgrade's steps, a checksum of the rows that existed
before, whether contract came after the last old instance left the registry, and a picture
of latency and errors over time.

--no-drain runs instances that exit at once on SIGTERM, to show the difference.

--backend kube runs the same upgrade on a Kubernetes cluster (docs/kube.md): the example's
Deployment (--instances replicas, --image:<release>) and a Service in --namespace, upgraded by
the kube backend, the load through HAProxy on this machine, which follows the Service's
EndpointSlices as the OpenShift router does (ready endpoints only, a reload at most every
--reload-interval). --no-prestop removes the pods' preStop sleep, to show what tandem check
prevents.

Exit codes: 0 the run completed, no request failed (and, with --upgrade, every acceptance
check held), 1 requests failed or a check did not hold, 2 it could not run.
Needs haproxy (Debian package haproxy) and PostgreSQL's server binaries.`,
		Example: `  tandem prove --instances 3 --rate 1000 --duration 60s --router-lag 5s --report report.json
  tandem prove --upgrade --rows 1000000 --duration 120s --report upgrade.json
  tandem prove --from v2 --upgrade=v3
  tandem prove --upgrade=v3                                    # v1 -> v2 -> v3: two hops
  tandem prove --upgrade=v2 --defer-contract v2 --then v1,v2,v3 # back to v1 and forward, no DB rollback
  tandem prove --backend kube --namespace demo --image localhost/tandem/catalog --rate 200 \
    --postgres-url postgres://host/db --pod-postgres-url postgres://10.244.0.1/db`,
		Args: cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkProveFlags(cmd, &opts); err != nil {
				return err
			}
			opts.RouterMode = routerMd
			opts.WorkDir, opts.KeepWorkDir = workDir, keepDir || workDir != ""
			level := slog.LevelInfo
			if !global.verbose && asJSON {
				level = slog.LevelWarn
			}
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			rep, err := kf.run(cmd.Context(), cmd.Flags(), opts)
			if errors.Is(err, proving.ErrUpgrade) {
				return err // exit 1: what was proved failed
			}
			if err != nil {
				return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("prove could not run: %w", err)}
			}
			if report != "" {
				if err := rep.WriteJSON(report); err != nil {
					return &cli.ExitError{Code: cli.ExitUsage, Err: err}
				}
				if svg == "" {
					svg = strings.TrimSuffix(report, ".json") + ".svg"
				}
			}
			if svg != "" {
				if err := rep.WriteSVG(svg); err != nil {
					return &cli.ExitError{Code: cli.ExitUsage, Err: err}
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
			ok, why := rep.Proven()
			if r := rep.LatencyRatio(); r > 2 {
				if rep.Saturated != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "tandem: prove: p99 during the rollout is %.2f× the steady p99, on a saturated machine: not counted\n", r)
				} else {
					ok, why = false, append(why, fmt.Sprintf("p99 during the rollout is %.2f× the steady p99 (at most 2×)", r))
				}
			}
			if !ok {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem: prove: %s\n", strings.Join(why, "; "))
				return cli.SilentExit(cli.ExitFailure)
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
	f.Float64Var(&opts.WriteShare, "write-share", 0.05, "share of requests that add an item")
	f.StringVar(&opts.From, "from", "v1", "the example's release installed before the load starts")
	f.StringVar(&opts.Upgrade, "upgrade", "", "upgrade to this release instead of a restart (--upgrade alone: the next one)")
	f.Lookup("upgrade").NoOptDefVal = "next"
	f.StringSliceVar(&opts.Then, "then", nil, "after --upgrade, go to these releases in turn under the same load (e.g. v1,v2,v3: an app rollback and forward again)")
	f.StringSliceVar(&opts.DeferContract, "defer-contract", nil, "releases whose contract is deferred to the next upgrade (contract: deferred)")
	f.IntVar(&opts.Rows, "rows", 1000, "items in the table before the load starts")
	f.StringVar(&opts.HAProxy, "haproxy", "haproxy", "the haproxy binary")
	f.StringVar(&report, "report", "", "write the JSON report here (and the SVG next to it)")
	f.StringVar(&svg, "svg", "", "write the SVG picture here")
	f.BoolVar(&asJSON, "json", false, "print the JSON report on stdout")
	f.StringVar(&workDir, "work-dir", "", "keep configurations and logs in this directory")
	f.BoolVar(&keepDir, "keep-work-dir", false, "keep the temporary directory with configurations and logs")
	kf.add(f)

	cmd.AddCommand(&cobra.Command{
		Use:                "instance",
		Short:              "Run one instance of the example app (used by prove)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := proving.InstanceMain(cmd.Context(), args); code != 0 {
				return cli.SilentExit(code)
			}
			return nil
		},
	})
	return cmd
}

// checkProveFlags refuses impossible values with their range, and resolves --upgrade.
func checkProveFlags(cmd *cobra.Command, o *proving.Options) error {
	switch {
	case o.Instances < 1 || o.Instances > proving.MaxInstances:
		return cli.UsageErr(fmt.Errorf("--instances %d: want 1 to %d", o.Instances, proving.MaxInstances))
	case o.Rate < 1 || o.Rate > proving.MaxRate:
		return cli.UsageErr(fmt.Errorf("--rate %d: want 1 to %d requests per second", o.Rate, proving.MaxRate))
	case o.Duration < time.Second || o.Duration > proving.MaxDuration:
		return cli.UsageErr(fmt.Errorf("--duration %s: want 1s to %s", o.Duration, proving.MaxDuration))
	case o.Rows < 1 || o.Rows > proving.MaxRows:
		return cli.UsageErr(fmt.Errorf("--rows %d: want 1 to %d", o.Rows, proving.MaxRows))
	case o.StreamShare < 0 || o.StreamShare > 1 || o.WriteShare < 0 || o.WriteShare > 1:
		return cli.UsageErr(fmt.Errorf("--stream-share and --write-share: want 0 to 1"))
	case o.RolloutAt < 0 || (o.RolloutAt > 0 && o.RolloutAt >= o.Duration):
		return cli.UsageErr(fmt.Errorf("--rollout-at %s: want between 0 and --duration (%s)", o.RolloutAt, o.Duration))
	case o.TaskRate < 0:
		return cli.UsageErr(fmt.Errorf("--task-rate %d: want 0 or more", o.TaskRate))
	}
	if !slices.Contains(catalog.Releases, o.From) {
		return cli.UsageErr(fmt.Errorf("--from %q: the example's releases are %s", o.From, strings.Join(catalog.Releases, ", ")))
	}
	if o.Upgrade == "next" {
		i := slices.Index(catalog.Releases, o.From)
		if i+1 >= len(catalog.Releases) {
			return cli.UsageErr(fmt.Errorf("--upgrade: %s is the example's newest release; give --from", o.From))
		}
		o.Upgrade = catalog.Releases[i+1]
	}
	if o.Upgrade != "" {
		if !slices.Contains(catalog.Releases, o.Upgrade) {
			return cli.UsageErr(fmt.Errorf("--upgrade %q: the example's releases are %s", o.Upgrade, strings.Join(catalog.Releases, ", ")))
		}
		if upgrade.CompareVersions(o.Upgrade, o.From) <= 0 {
			return cli.UsageErr(fmt.Errorf("--upgrade %s: not newer than --from %s", o.Upgrade, o.From))
		}
	}
	if len(o.Then) > 0 && o.Upgrade == "" {
		return cli.UsageErr(errors.New("--then: give --upgrade to begin with"))
	}
	for _, v := range append(slices.Clone(o.Then), o.DeferContract...) {
		if !slices.Contains(catalog.Releases, v) {
			return cli.UsageErr(fmt.Errorf("--then and --defer-contract: %q is not one of the example's releases %s", v, strings.Join(catalog.Releases, ", ")))
		}
	}
	// Zero on the command line means none; in proving.Options it means the default.
	if o.TaskRate == 0 {
		o.TaskRate = -1
	}
	if o.StreamShare == 0 {
		o.StreamShare = -1
	}
	if o.WriteShare == 0 {
		o.WriteShare = -1
	}
	return nil
}
