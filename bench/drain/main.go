// Command drain measures what draining buys during a rolling restart: it runs the proving
// ground (package proving) twice, with and without drain, and prints a Markdown table.
//
// The default is the benchmark of docs/lifecycle.md: 3 instances, 1,000 requests/s for
// 60 s, router lag 5 s (HAProxy reloads), a rolling restart of all three. The target
// with drain is 0 failed requests and a p99 during the rollout at most twice the
// steady-state p99.
//
//	go run ./bench/drain [-rate 1000] [-duration 60s] [-router-lag 5s] [-out DIR]
//
// It needs haproxy and PostgreSQL's server binaries, and loads only 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-pg/tandem/proving"
)

// instanceEnv marks a re-executed copy of this program as an instance of the example app.
const instanceEnv = "TANDEM_BENCH_DRAIN_INSTANCE"

func main() {
	if os.Getenv(instanceEnv) == "1" {
		os.Exit(proving.InstanceMain(context.Background(), os.Args[1:]))
	}
	os.Exit(run())
}

func run() int {
	var (
		instances = flag.Int("instances", 3, "instances")
		rate      = flag.Int("rate", 1000, "requests per second (at most 5000)")
		duration  = flag.Duration("duration", 60*time.Second, "load duration (at least the rollout)")
		lag       = flag.Duration("router-lag", 5*time.Second, "router lag")
		mode      = flag.String("router", proving.RouterReload, "reload or runtime")
		out       = flag.String("out", "", "write report-drain.json/.svg and report-no-drain.json/.svg here")
		verbose   = flag.Bool("v", false, "log the runs' progress")
	)
	flag.Parse()
	if *rate > proving.MaxRate || *instances > proving.MaxInstances || *duration > proving.MaxDuration {
		fmt.Fprintf(os.Stderr, "drain: at most %d req/s, %d instances and %s of load\n",
			proving.MaxRate, proving.MaxInstances, proving.MaxDuration)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drain:", err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var reports []*proving.Report
	for _, noDrain := range []bool{false, true} {
		name := "drain"
		if noDrain {
			name = "no-drain"
		}
		fmt.Fprintf(os.Stderr, "drain: running %s (%d instances, %d req/s, %s, router lag %s)...\n",
			name, *instances, *rate, *duration, *lag)
		rep, err := proving.Run(ctx, proving.Options{
			Instances: *instances, Rate: *rate, Duration: *duration, RouterLag: *lag, RouterMode: *mode,
			NoDrain: noDrain, Tandem: exe, InstanceEnv: []string{instanceEnv + "=1"},
			Logger: logger,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "drain: %s run failed: %v\n", name, err)
			return 2
		}
		if *out != "" {
			if err := os.MkdirAll(*out, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "drain:", err)
				return 2
			}
			base := filepath.Join(*out, "report-"+name)
			if err := rep.WriteJSON(base + ".json"); err != nil {
				fmt.Fprintln(os.Stderr, "drain:", err)
				return 2
			}
			if err := rep.WriteSVG(base + ".svg"); err != nil {
				fmt.Fprintln(os.Stderr, "drain:", err)
				return 2
			}
		}
		reports = append(reports, rep)
	}
	printTable(os.Stdout, reports)
	return 0
}

func printTable(w *os.File, reps []*proving.Report) {
	r0 := reps[0]
	fmt.Fprintf(w, "%d instances, %d req/s, %.0f s of load, router lag %.0f s (%s), rolling restart of all instances (maxSurge 1, maxUnavailable 0); %.0f%% of requests stream 64 KiB over 1 s.\n\n",
		r0.Instances, r0.Rate, r0.DurationS, r0.RouterLagS, r0.RouterMode, r0.StreamShare*100)
	fmt.Fprintln(w, "| instances | requests | failed | failed by class | p50 ms | p99 ms | max ms | steady p99 ms | rollout p99 ms | rollout/steady | worker tasks lost |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range reps {
		mode := "with drain"
		if !r.Drain {
			mode = "`--no-drain`"
		}
		var classes []string
		for c, n := range r.FailedByClass {
			classes = append(classes, fmt.Sprintf("%s %d", c, n))
		}
		sort.Strings(classes)
		cls := strings.Join(classes, ", ")
		if cls == "" {
			cls = "—"
		}
		ratio := 0.0
		if r.SteadyP99MS > 0 {
			ratio = r.RolloutP99MS / r.SteadyP99MS
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f× | %d |\n",
			mode, r.Total, r.Failed, cls, r.P50MS, r.P99MS, r.MaxMS, r.SteadyP99MS, r.RolloutP99MS, ratio, r.TasksPending)
	}
}
