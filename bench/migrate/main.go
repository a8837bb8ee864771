// Command migrate benchmarks Tandem's expand/contract engine against the plain locking
// migration it replaces, on a throwaway PostgreSQL, and prints a Markdown table.
//
//	go run ./bench/migrate [-rows 1000000] [-runs 3] [-clients 16] [-only abcdefg] [-side base|normal|max]
//
// (a) start of "add price numeric NOT NULL, up qty * 1.25" on an idle database, at
// impact max and at the default impact, vs one plain transaction (ALTER TABLE ADD
// COLUMN; UPDATE; SET NOT NULL), alternated, median of -runs each;
// (b) a mixed read/update/insert load through the old version while start runs: tps,
// p99 and max latency, failed statements; (c) update throughput and insert throughput
// through the old version with the dual-write trigger active vs without, each
// alternated, median; (d) start of alter_column qty int → bigint (up/down) vs a plain
// ALTER COLUMN TYPE; (e) start of a comment-only and of a default-only alter_column;
// (f) the application's throughput and lock waits during start under an unthrottled
// load of -clients sessions, at the default impact and at max, vs the same load with no
// migration, alternated; (g) lock waits of that load during start and complete of the
// type change of (d).
//
// The server logs every lock wait over deadlock_timeout (50ms) with its duration once
// granted (log_lock_waits); the waits reported are those of the run's window.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/migrate"
)

const migration = `{"name": "02_price", "operations": [{"add_column": {"table": "items", "up": "qty * 1.25",
	"column": {"name": "price", "type": "numeric"}}}]}`

func main() {
	var c config
	flag.IntVar(&c.rows, "rows", 1_000_000, "rows in the items table")
	flag.IntVar(&c.runs, "runs", 3, "runs of each side (median reported)")
	flag.IntVar(&c.workers, "workers", 4, "load workers in (b) and (c)")
	flag.DurationVar(&c.loadFor, "load", 5*time.Second, "duration of the baseline load in (f)")
	flag.DurationVar(&c.lockTimeout, "lock-timeout", 500*time.Millisecond, "Tandem's lock_timeout")
	flag.IntVar(&c.backfillWorkers, "backfill-workers", 0, "Tandem's backfill workers (0: its default)")
	flag.IntVar(&c.writeRuns, "write-runs", 15, "rotated runs of each state in (c)")
	flag.DurationVar(&c.writeFor, "write-for", 2*time.Second, "duration of each throughput run in (c)")
	flag.StringVar(&c.only, "only", "abcdefg", "the measures to run, by letter")
	flag.IntVar(&c.clients, "clients", 16, "unthrottled load sessions in (f) and (g)")
	flag.StringVar(&c.keepLog, "keep-log", "", "copy the server's log to this file at the end")
	flag.StringVar(&c.side, "side", "", "in (f), run one side only: base, normal or max (each run prints its figures as it ends); "+
		"or held: start at normal with the fill held at its first page (rules in, watcher running) for -load, a side of its own; "+
		"or heldmax: the same at impact max (the column and its guard, no rules, no watcher)")
	flag.StringVar(&c.sharedBuffers, "shared-buffers", "", "the server's shared_buffers (empty: PostgreSQL's default, 128MB)")
	flag.BoolVar(&c.autovacuum, "table-autovacuum", true, "autovacuum of the items table (false: off for every run)")
	flag.BoolVar(&c.statements, "statements", false, "in (f), read the load's statements' figures over each window from pg_stat_statements (loaded for the run: it costs a little)")
	flag.Parse()
	if c.side != "" && c.side != "base" && c.side != "normal" && c.side != "max" && c.side != "held" && c.side != "heldmax" {
		fmt.Fprintf(os.Stderr, "bench: -side %q: want base, normal, max, held or heldmax\n", c.side)
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	rows, runs, workers, backfillWorkers, clients, writeRuns int
	loadFor, lockTimeout, writeFor                           time.Duration
	only, keepLog, side, sharedBuffers                       string
	autovacuum, statements                                   bool
}

type bench struct {
	srv  *pgserver.Server
	rows int
	// autovacuum is false to turn autovacuum off for the items table.
	autovacuum bool
	// statements is true to read the load's statements' figures from pg_stat_statements.
	statements bool
	opts       migrate.Options
	seq        int
	// progress is the last progress the running backfill reported.
	progress atomic.Pointer[migrate.BackfillProgress]
}

func run(ctx context.Context, c config) error {
	settings := map[string]string{
		"max_wal_size": "4GB", "checkpoint_timeout": "30min",
		// Every lock wait longer than 50ms is logged, with its duration once acquired.
		"log_lock_waits": "on", "deadlock_timeout": "50ms",
		// The waiter's application: the load's sessions are "app".
		"log_line_prefix": "%m [%p] %a: ",
		// Connections are logged with their application: a wait's holder is known.
		"log_connections": "on",
		// Tandem's DDL is logged: a wait's holder is named by the statement it ran.
		"log_statement": "ddl"}
	if c.statements {
		settings["shared_preload_libraries"] = "pg_stat_statements"
	}
	if c.sharedBuffers != "" {
		settings["shared_buffers"] = c.sharedBuffers
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{Settings: settings})
	if err != nil {
		return err
	}
	defer srv.Stop()
	if c.keepLog != "" {
		defer func() {
			if data, err := os.ReadFile(filepath.Join(srv.Dir(), "postgres.log")); err == nil {
				_ = os.WriteFile(c.keepLog, data, 0o644)
			}
		}()
	}
	b := &bench{srv: srv, rows: c.rows, autovacuum: c.autovacuum, statements: c.statements, opts: migrate.Options{LockTimeout: c.lockTimeout, BackfillWorkers: c.backfillWorkers}}
	fmt.Fprintf(os.Stderr, "building a template database with %d rows...\n", c.rows)
	if err := b.template(ctx); err != nil {
		return err
	}
	want := func(measure string) bool { return strings.Contains(c.only, measure) }
	var table, cpuTable []string
	row := func(format string, args ...any) { table = append(table, fmt.Sprintf(format, args...)) }

	// (a) start on an idle database at impact max and at the default impact vs the
	// plain transaction, alternated (the order rotates: none always goes first).
	if want("a") {
		var plain, atMax, atNormal []time.Duration
		var ratiosMax, ratiosNormal []float64
		for i := 0; i < c.runs; i++ {
			var p, tm, tn time.Duration
			err := rotate(i, func() (err error) { p, err = b.timePlain(ctx); return err },
				func() (err error) { tm, _, err = b.timeStart(ctx, 0, migrate.ImpactMax); return err },
				func() (err error) { tn, _, err = b.timeStart(ctx, 0, migrate.ImpactNormal); return err })
			if err != nil {
				return fmt.Errorf("add column: %w", err)
			}
			plain, atMax, atNormal = append(plain, p), append(atMax, tm), append(atNormal, tn)
			ratiosMax, ratiosNormal = append(ratiosMax, float64(tm)/float64(p)), append(ratiosNormal, float64(tn)/float64(p))
			fmt.Fprintf(os.Stderr, "run %d: plain %s, tandem start at max %s, at normal %s\n", i+1, p.Round(time.Millisecond), tm.Round(time.Millisecond), tn.Round(time.Millisecond))
		}
		row("| (a) add NOT NULL column with up, idle: wall time, impact max | %s | %s (start) | %.2f× | ≤ 0.8× |", median(plain).Round(time.Millisecond), median(atMax).Round(time.Millisecond), medianF(ratiosMax))
		row("| (a) same, default impact (normal) | %s | %s (start) | %.2f× | |", median(plain).Round(time.Millisecond), median(atNormal).Round(time.Millisecond), medianF(ratiosNormal))
	}

	// (b) start under load, with the server's record of lock waits meanwhile.
	if want("b") {
		logPath := filepath.Join(srv.Dir(), "postgres.log")
		logStart := fileSize(logPath)
		dur, load, err := b.timeStart(ctx, c.workers, migrate.ImpactNormal)
		if err != nil {
			return fmt.Errorf("start under load: %w", err)
		}
		waits := lockWaits(logPath, logStart)
		lt := c.lockTimeout
		row("| (b) start under load: duration | | %s | | |", dur.Round(time.Millisecond))
		row("| (b) load during start: statements, tps | | %d, %.0f/s | | |", load.ok+load.failed, load.tps)
		row("| (b) load during start: p99 / max latency | | %s / %s | max %.2f× lock_timeout | max < lock_timeout |", load.p99.Round(time.Microsecond), load.max.Round(time.Microsecond), float64(load.max)/float64(lt))
		row("| (b) lock waits > 50ms during start (server log) | | %d, longest %s | %.2f× lock_timeout | ≤ 1× |", waits.over50, waits.longest.Round(time.Millisecond), float64(waits.longest)/float64(lt))
		row("| (b) load during start: failed statements | | %d | | 0 |", load.failed)
	}

	// (c) write throughput with the trigger enabled and disabled, alternated, on one
	// table after start (so both sides see the same table, bloat and all); updates and
	// inserts measured apart.
	if want("c") {
		for _, kind := range []string{"update", "insert"} {
			res, err := b.throughput(ctx, c.writeRuns, c.workers, c.writeFor, kind)
			if err != nil {
				return err
			}
			for _, side := range []struct {
				state int
				name  string
			}{{dualWriteTrigger, "dual-write trigger"}, {floorTrigger, "floor: a minimal PL/pgSQL trigger"}} {
				row("| (c) bulk %s of %d rows, time per row, %s: statement without trigger, trigger alone (best of %d rotated) | %s | +%s | %.2f× | |", kind, min(bulkRows, c.rows), side.name, bulkRounds,
					res.perRow[noTrigger], res.perRow[side.state], float64(res.perRow[noTrigger])/float64(res.perRow[noTrigger]+res.perRow[side.state]))
				if len(res.rate[noTrigger]) == 0 {
					continue // -write-runs 0: the bulk statements only
				}
				var rate, cpu []float64
				for i := range res.rate[noTrigger] {
					rate = append(rate, res.rate[side.state][i]/res.rate[noTrigger][i])
					cpu = append(cpu, res.cpu[side.state][i]/res.cpu[noTrigger][i])
				}
				// Beside the median of the pairs, the ratio of the best runs: a busy machine
				// only ever slows a run down.
				row("| (c) %s throughput via old version, %s (pairs %.2f×–%.2f×; best runs %.2f×) | %.0f/s (no trigger) | %.0f/s | %.2f× | ≥ 0.95× |", kind, side.name,
					slices.Min(rate), slices.Max(rate), slices.Max(res.rate[side.state])/slices.Max(res.rate[noTrigger]),
					medianF(res.rate[noTrigger]), medianF(res.rate[side.state]), medianF(rate))
				row("| (c) %s server CPU per statement, %s (pairs %.2f×–%.2f×) | %.1fµs (no trigger) | %.1fµs | %.2f× | |", kind, side.name,
					slices.Min(cpu), slices.Max(cpu), medianF(res.cpu[noTrigger]), medianF(res.cpu[side.state]), medianF(cpu))
			}
		}
	}

	// (d) type change vs plain ALTER COLUMN TYPE, alternated (ABBA).
	if want("d") {
		var plain, tandem []time.Duration
		var ratios []float64
		for i := 0; i < c.runs; i++ {
			var p, t time.Duration
			err := rotate(i, func() (err error) {
				p, err = b.timeSQL(ctx, "ALTER TABLE items ALTER COLUMN qty TYPE bigint")
				return err
			},
				func() (err error) { t, err = b.timeMigration(ctx, typeChange, migrate.ImpactNormal); return err })
			if err != nil {
				return fmt.Errorf("type change: %w", err)
			}
			plain, tandem = append(plain, p), append(tandem, t)
			ratios = append(ratios, float64(t)/float64(p))
			fmt.Fprintf(os.Stderr, "type change run %d: plain %s, tandem start %s (%.2f×)\n", i+1, p.Round(time.Millisecond), t.Round(time.Millisecond), float64(t)/float64(p))
		}
		row("| (d) alter_column qty int → bigint: wall time | %s (ALTER COLUMN TYPE) | %s (start) | %.2f× | ≤ 3× |",
			median(plain).Round(time.Millisecond), median(tandem).Round(time.Millisecond), medianF(ratios))
	}

	// (e) metadata-only changes.
	if want("e") {
		commentOnly, err := b.timeMigration(ctx, commentChange, migrate.ImpactNormal)
		if err != nil {
			return fmt.Errorf("comment change: %w", err)
		}
		defaultOnly, err := b.timeMigration(ctx, defaultChange, migrate.ImpactNormal)
		if err != nil {
			return fmt.Errorf("default change: %w", err)
		}
		row("| (e) alter_column comment only: start | | %s | | < 1s |", commentOnly.Round(time.Millisecond))
		row("| (e) alter_column default only: start | | %s | | < 1s |", defaultOnly.Round(time.Millisecond))
	}

	// (f) the application's throughput during start under an unthrottled load, at the
	// default impact and at max, vs the load alone, alternated.
	if want("f") {
		logPath := filepath.Join(srv.Dir(), "postgres.log")
		var base, normal, atMax, held, heldMax []loadResult
		var dNormal, dMax []time.Duration
		var rNormal, rMax, rTime []float64
		// Each side prints its figures as it ends: a run stopped by hand still yields
		// those of the sides that ended. With -side, only that side runs (one piece of a
		// long run per hold of the measuring lock; the ratios are then the reader's).
		side := func(name string, fn func() (time.Duration, loadResult, error)) func() error {
			return func() error {
				if c.side != name && (c.side != "" || strings.HasPrefix(name, "held")) {
					return nil // held and heldmax run only when asked for
				}
				off := fileSize(logPath)
				d, l, err := fn()
				if err != nil {
					return err
				}
				time.Sleep(200 * time.Millisecond) // let a wait that ended at the end reach the log
				l.waits = lockWaits(logPath, off)
				fmt.Fprintf(os.Stderr, "(f) %s: %.0f tps", name, l.tps)
				if name != "base" {
					fmt.Fprintf(os.Stderr, ", start %s", d.Round(time.Millisecond))
				}
				fmt.Fprintf(os.Stderr, "; %s\n", l.waits)
				fmt.Fprintf(os.Stderr, "(f) %s: %s\n", name, l.cpu.summary(l.ok+l.failed))
				if c.statements {
					fmt.Fprintf(os.Stderr, "(f) %s: %s\n", name, l.stmts)
				}
				switch name {
				case "base":
					base = append(base, l)
				case "held":
					held = append(held, l)
				case "heldmax":
					heldMax = append(heldMax, l)
				case "normal":
					normal, dNormal = append(normal, l), append(dNormal, d)
				default:
					atMax, dMax = append(atMax, l), append(dMax, d)
				}
				return nil
			}
		}
		for i := 0; i < c.runs; i++ {
			err := rotate(i,
				side("base", func() (time.Duration, loadResult, error) {
					l, err := b.baseline(ctx, c.clients, c.loadFor)
					return 0, l, err
				}),
				side("normal", func() (time.Duration, loadResult, error) { return b.timeStart(ctx, c.clients, migrate.ImpactNormal) }),
				side("max", func() (time.Duration, loadResult, error) { return b.timeStart(ctx, c.clients, migrate.ImpactMax) }),
				side("held", func() (time.Duration, loadResult, error) {
					return b.heldStart(ctx, c.clients, c.loadFor, migrate.ImpactNormal)
				}),
				side("heldmax", func() (time.Duration, loadResult, error) {
					return b.heldStart(ctx, c.clients, c.loadFor, migrate.ImpactMax)
				}))
			if err != nil {
				return fmt.Errorf("start under unthrottled load: %w", err)
			}
			if c.side != "" {
				continue
			}
			lb, ln, lm := base[i], normal[i], atMax[i]
			rNormal, rMax = append(rNormal, ln.tps/lb.tps), append(rMax, lm.tps/lb.tps)
			rTime = append(rTime, float64(dNormal[i])/float64(dMax[i]))
			fmt.Fprintf(os.Stderr, "unthrottled load run %d: normal %.2f×, max %.2f× the baseline's tps; start at normal %.2f× the time at max\n",
				i+1, ln.tps/lb.tps, lm.tps/lb.tps, rTime[i])
		}
		tps := func(ls []loadResult) float64 {
			var fs []float64
			for _, l := range ls {
				fs = append(fs, l.tps)
			}
			return medianF(fs)
		}
		for _, s := range []struct {
			name string
			ls   []loadResult
		}{{"no migration", base}, {"start, normal", normal}, {"start, max", atMax}, {"held: rules in, fill held at one page", held}, {"heldmax: column added, fill held, no rules", heldMax}} {
			if len(s.ls) > 0 {
				cpuTable = append(cpuTable, cpuRow(s.name, s.ls))
			}
		}
		switch c.side {
		case "held", "heldmax":
			row("| (f) app tps, %d clients, start at %s held at the fill's first page for %s (side %s only) | | %.0f/s | | |", c.clients, c.side, c.loadFor, c.side, tps(append(held, heldMax...)))
		case "":
			row("| (f) app tps during start, %d clients, default impact (normal) | %.0f/s (no migration) | %.0f/s | %.2f× | ≥ 0.85× |", c.clients, tps(base), tps(normal), medianF(rNormal))
			row("| (f) app tps during start, %d clients, impact max | %.0f/s (no migration) | %.0f/s | %.2f× | |", c.clients, tps(base), tps(atMax), medianF(rMax))
			row("| (f) app lock waits > 100ms during start, normal (all runs) | %s | %s | | 0 |", sumWaits(base), sumWaits(normal))
			row("| (f) app lock waits > 100ms during start, max (all runs) | %s | %s | | |", sumWaits(base), sumWaits(atMax))
			row("| (f) start under that load: normal vs max | %s (max) | %s (normal) | %.2f× | finishes |", median(dMax).Round(time.Millisecond), median(dNormal).Round(time.Millisecond), medianF(rTime))
		case "base":
			row("| (f) app tps, %d clients, no migration (side base only) | %.0f/s | | | |", c.clients, tps(base))
			row("| (f) app lock waits > 100ms, no migration (all runs) | %s | | | |", sumWaits(base))
		default:
			ls, ds := normal, dNormal
			if c.side == "max" {
				ls, ds = atMax, dMax
			}
			row("| (f) app tps during start, %d clients, impact %s (side %s only) | | %.0f/s | | |", c.clients, c.side, c.side, tps(ls))
			row("| (f) app lock waits > 100ms during start, %s (all runs) | | %s | | |", c.side, sumWaits(ls))
			row("| (f) start under that load, %s | | %s | | |", c.side, median(ds).Round(time.Millisecond))
		}
	}

	// (g) lock waits on Tandem's DDL during start and complete of a type change, under
	// the unthrottled load.
	if want("g") {
		logPath := filepath.Join(srv.Dir(), "postgres.log")
		var starts, completes []lockWaitStats
		for i := 0; i < c.runs; i++ {
			s, cp, err := b.stepWaits(ctx, c.clients, typeChange, logPath)
			if err != nil {
				return fmt.Errorf("type change under load: %w", err)
			}
			starts, completes = append(starts, s), append(completes, cp)
			fmt.Fprintf(os.Stderr, "type change under load run %d: start %s; complete %s\n", i+1, s, cp)
		}
		row("| (g) type change under %d clients: lock waits during start (all runs) | | %s | | 0 > 100ms |", c.clients, sumStats(starts))
		row("| (g) same, during complete (all runs) | | %s | | 0 > 100ms |", sumStats(completes))
	}

	// Ratios are the median of the per-pair ratios: each pair ran back to back, so a
	// noisy neighbour slows both sides of a pair alike.
	bw := b.opts.BackfillWorkers
	if bw == 0 {
		bw = migrate.DefaultBackfillWorkers
	}
	fmt.Printf("\n%d rows, median of %d alternated runs (%d of %s in (c); ratio: median of the per-pair ratios), %d load workers in (b) and (c), %d unthrottled clients in (f) and (g), lock_timeout %s, %d backfill workers\n\n",
		c.rows, c.runs, c.writeRuns, c.writeFor, c.workers, c.clients, c.lockTimeout, bw)
	fmt.Println("| measure | plain / baseline | tandem | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range table {
		fmt.Println(r)
	}
	if len(cpuTable) > 0 {
		fmt.Println()
		fmt.Println(cpuHeader)
		for _, r := range cpuTable {
			fmt.Println(r)
		}
	}
	return nil
}

const (
	typeChange    = `{"name": "03_qty", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}}]}`
	commentChange = `{"name": "03_comment", "operations": [{"alter_column": {"table": "items", "column": "qty", "comment": "how many"}}]}`
	defaultChange = `{"name": "03_default", "operations": [{"alter_column": {"table": "items", "column": "qty", "default": "0"}}]}`
)

// timeSQL times statements, run in one transaction, on a fresh copy.
func (b *bench) timeSQL(ctx context.Context, stmts ...string) (time.Duration, error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return 0, err
	}
	defer drop()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	t0 := time.Now()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	return time.Since(t0), err
}

// options are the bench's Migrator options at impact.
func (b *bench) options(impact migrate.BackfillImpact) migrate.Options {
	o := b.opts
	o.BackfillImpact = impact
	b.progress.Store(nil)
	o.Progress = func(p migrate.BackfillProgress) { b.progress.Store(&p) }
	// Tandem's steps (and the catch-up's end) go to stderr, as they happen.
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return o
}

// timeMigration times Tandem's start of a migration on a fresh copy.
func (b *bench) timeMigration(ctx context.Context, doc string, impact migrate.BackfillImpact) (time.Duration, error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return 0, err
	}
	defer drop()
	m, err := migrate.Open(ctx, url, b.options(impact))
	if err != nil {
		return 0, err
	}
	defer m.Close(ctx)
	mig, err := migrate.Parse("bench.json", "bench", []byte(doc))
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = m.Start(ctx, mig)
	return time.Since(t0), err
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

var (
	acquiredRE = regexp.MustCompile(`\[(\d+)\] app: LOG:  process \d+ acquired \w+ on (\w+) .* after ([0-9.]+) ms`)
	waitingRE  = regexp.MustCompile(`\[(\d+)\] app: LOG:  process \d+ still waiting for`)
	holderRE   = regexp.MustCompile(`\[(\d+)\] app: DETAIL:  Process(?:es)? holding the lock: (\d+)`)
	connRE     = regexp.MustCompile(`\[(\d+)\] .*connection authorized: .*application_name=(\S+)`)
	// Tandem's DDL, logged as it begins (log_statement = ddl; the load runs none).
	ddlRE = regexp.MustCompile(`\[(\d+)\] tandem: LOG:  (?:statement|execute [^:]*): (.*)`)
)

// lockWaitStats counts the lock waits of the load's sessions that the server logged (those
// over deadlock_timeout): on a row or on a table (behind DDL), and whether Tandem held the
// lock first in line (its sessions are "tandem" in the log of connections).
type lockWaitStats struct {
	over50, over100 int
	rows, tables    int // of the waits over 100ms
	onTandem        int // of the waits over 100ms, those whose first holder was Tandem
	longest         time.Duration
	longestTandem   time.Duration // the longest wait on Tandem
	// behind counts the waits over 100ms on Tandem by what Tandem's session first in
	// line was running: the lock waited for and its last DDL statement.
	behind map[string]int
}

func (s lockWaitStats) String() string {
	out := fmt.Sprintf("%d waits > 50ms, %d > 100ms (%d on rows, %d on tables; %d on Tandem, longest %s), longest %s",
		s.over50, s.over100, s.rows, s.tables, s.onTandem, s.longestTandem.Round(time.Millisecond), s.longest.Round(time.Millisecond))
	var behind []string
	for what, n := range s.behind {
		behind = append(behind, fmt.Sprintf("%d behind %s", n, what))
	}
	slices.Sort(behind)
	if len(behind) > 0 {
		out += "; on Tandem: " + strings.Join(behind, "; ")
	}
	return out
}

func (s lockWaitStats) add(o lockWaitStats) lockWaitStats {
	behind := map[string]int{}
	for _, m := range []map[string]int{s.behind, o.behind} {
		for k, n := range m {
			behind[k] += n
		}
	}
	return lockWaitStats{over50: s.over50 + o.over50, over100: s.over100 + o.over100, rows: s.rows + o.rows, tables: s.tables + o.tables,
		onTandem: s.onTandem + o.onTandem, longest: max(s.longest, o.longest), longestTandem: max(s.longestTandem, o.longestTandem), behind: behind}
}

func sumStats(ss []lockWaitStats) string {
	var t lockWaitStats
	for _, s := range ss {
		t = t.add(s)
	}
	return t.String()
}

func sumWaits(ls []loadResult) string {
	var ss []lockWaitStats
	for _, l := range ls {
		ss = append(ss, l.waits)
	}
	return sumStats(ss)
}

// lockWaits reads the server log from offset on and counts the lock waits it reported.
func lockWaits(path string, offset int64) lockWaitStats {
	var st lockWaitStats
	f, err := os.Open(path)
	if err != nil {
		return st
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return st
	}
	// Connections are read from the start of the log: a holder may be older than the window.
	apps := map[string]string{}
	if all, err := os.ReadFile(path); err == nil {
		for _, m := range connRE.FindAllStringSubmatch(string(all), -1) {
			apps[m[1]] = m[2]
		}
	}
	holder := map[string]string{}    // waiter pid → the pid first in line holding the lock
	running := map[string]string{}   // Tandem's pid → its last DDL statement
	holderRan := map[string]string{} // waiter pid → what the holder ran when the wait began
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	waiting := ""
	for sc.Scan() {
		line := sc.Text()
		if m := ddlRE.FindStringSubmatch(line); m != nil {
			running[m[1]] = m[2]
			continue
		}
		if m := waitingRE.FindStringSubmatch(line); m != nil {
			waiting = m[1]
			continue
		}
		if m := holderRE.FindStringSubmatch(line); m != nil && m[1] == waiting {
			holder[waiting] = m[2]
			holderRan[waiting] = running[m[2]]
			continue
		}
		if m := acquiredRE.FindStringSubmatch(line); m != nil {
			ms, _ := strconv.ParseFloat(m[3], 64)
			d := time.Duration(ms * float64(time.Millisecond))
			st.over50++
			tandem := apps[holder[m[1]]] == "tandem"
			if d > 100*time.Millisecond {
				st.over100++
				if m[2] == "relation" {
					st.tables++
				} else {
					st.rows++
				}
				if tandem {
					st.onTandem++
					what := holderRan[m[1]]
					if what == "" {
						what = "a session that ran no DDL (a backfill worker)"
					} else if len(what) > 100 {
						what = what[:100] + "…"
					}
					if st.behind == nil {
						st.behind = map[string]int{}
					}
					st.behind[fmt.Sprintf("%s lock, %s", m[2], what)]++
				}
			}
			if tandem {
				st.longestTandem = max(st.longestTandem, d)
			}
			st.longest = max(st.longest, d)
		}
	}
	return st
}

func (b *bench) adminURL() string { return b.srv.URL("postgres") }

func (b *bench) template(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.adminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE bench_template"); err != nil {
		return err
	}
	tc, err := pgx.Connect(ctx, b.srv.URL("bench_template"))
	if err != nil {
		return err
	}
	defer tc.Close(ctx)
	stmts := []string{
		"CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)",
		fmt.Sprintf("INSERT INTO items (name, qty, note) SELECT 'item ' || i, i %% 1000, CASE WHEN i %% 3 = 0 THEN 'note ' || i END FROM generate_series(1, %d) i", b.rows),
		"VACUUM ANALYZE items",
		"CHECKPOINT",
		fmt.Sprintf("ALTER TABLE items SET (autovacuum_enabled = %t, toast.autovacuum_enabled = %t)", b.autovacuum, b.autovacuum),
	}
	if b.statements {
		// In a schema of its own: the app's schema holds the app's tables only.
		stmts = append(stmts, "CREATE SCHEMA pgss", "CREATE EXTENSION pg_stat_statements SCHEMA pgss")
	}
	for _, s := range stmts {
		if _, err := tc.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// fresh creates a copy of the template database and returns its URL and a cleanup.
func (b *bench) fresh(ctx context.Context) (string, func(), error) {
	b.seq++
	name := fmt.Sprintf("bench_%d", b.seq)
	conn, err := pgx.Connect(ctx, b.adminURL())
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE bench_template STRATEGY FILE_COPY"); err != nil {
		return "", nil, err
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), b.adminURL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	return b.srv.URL(name), drop, nil
}

// timePlain times the plain locking migration that (a) compares start with.
func (b *bench) timePlain(ctx context.Context) (time.Duration, error) {
	return b.timeSQL(ctx,
		"ALTER TABLE items ADD COLUMN price numeric",
		"UPDATE items SET price = qty * 1.25",
		"ALTER TABLE items ALTER COLUMN price SET NOT NULL")
}

type loadResult struct {
	ok, failed int64
	tps        float64
	p99, max   time.Duration
	waits      lockWaitStats    // the server's record of the window's lock waits, if read
	cpu        cpuUse           // the machine's CPU time over the window, by role
	stmts      windowStatements // the load's statements' figures over the window (-statements)
}

// timeStart times Tandem's start at impact on a fresh copy, with workers running a mixed
// load through the old version meanwhile (none when workers is 0).
func (b *bench) timeStart(ctx context.Context, workers int, impact migrate.BackfillImpact) (time.Duration, loadResult, error) {
	return b.startUnderLoad(ctx, workers, b.options(impact), 0)
}

// heldStart runs start at impact with the fill held at its first page (a rate cap of a
// row every 100s) for dur, under workers sessions of the mixed load, then stops it: the
// fill does nearly nothing. At normal the rules are in and the watcher watches: it is the
// steady cost of the expanded table to the app, without the fill's; at max there are
// only the column and its guard.
func (b *bench) heldStart(ctx context.Context, workers int, dur time.Duration, impact migrate.BackfillImpact) (time.Duration, loadResult, error) {
	o := b.options(impact)
	o.BackfillRate = 0.01
	return b.startUnderLoad(ctx, workers, o, dur)
}

// startUnderLoad runs start with opts on a fresh copy, with workers running a mixed load
// through the old version meanwhile (none when workers is 0), and returns its time and the
// load's figures; a start still running after limit (0: none) is stopped, and that is no
// error.
func (b *bench) startUnderLoad(ctx context.Context, workers int, opts migrate.Options, limit time.Duration) (time.Duration, loadResult, error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return 0, loadResult{}, err
	}
	defer drop()
	m, err := migrate.Open(ctx, url, opts)
	if err != nil {
		return 0, loadResult{}, err
	}
	defer m.Close(ctx)
	mig, err := migrate.Parse("bench.json", "02_price", []byte(migration))
	if err != nil {
		return 0, loadResult{}, err
	}
	stop := func() loadResult { return loadResult{} }
	var count func() int64
	if workers > 0 {
		pool, err := b.pool(ctx, url, workers)
		if err != nil {
			return 0, loadResult{}, err
		}
		defer pool.Close()
		if stop, count, err = b.mixedLoad(ctx, pool, workers); err != nil {
			return 0, loadResult{}, err
		}
		time.Sleep(warmUp) // let the load settle before start
	}
	quiet := b.watchProgress("start at impact "+opts.BackfillImpact.String(), count)
	startCtx := ctx
	if limit > 0 {
		var cancel context.CancelFunc
		startCtx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	t0 := time.Now()
	err = m.Start(startCtx, mig)
	d := time.Since(t0)
	quiet()
	if limit > 0 && err != nil && startCtx.Err() != nil && ctx.Err() == nil {
		err = nil
	}
	return d, stop(), err
}

// baseline runs the mixed load of workers on a fresh copy for dur, with no migration.
func (b *bench) baseline(ctx context.Context, workers int, dur time.Duration) (loadResult, error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return loadResult{}, err
	}
	defer drop()
	pool, err := b.pool(ctx, url, workers)
	if err != nil {
		return loadResult{}, err
	}
	defer pool.Close()
	stop, _, err := b.mixedLoad(ctx, pool, workers)
	if err != nil {
		return loadResult{}, err
	}
	time.Sleep(warmUp + dur)
	return stop(), nil
}

// stepWaits starts and completes migration doc on a fresh copy under the mixed load of
// workers, and returns the lock waits the server logged during each step.
func (b *bench) stepWaits(ctx context.Context, workers int, doc, logPath string) (start, complete lockWaitStats, err error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return start, complete, err
	}
	defer drop()
	m, err := migrate.Open(ctx, url, b.options(migrate.ImpactNormal))
	if err != nil {
		return start, complete, err
	}
	defer m.Close(ctx)
	mig, err := migrate.Parse("bench.json", "bench", []byte(doc))
	if err != nil {
		return start, complete, err
	}
	pool, err := b.pool(ctx, url, workers)
	if err != nil {
		return start, complete, err
	}
	defer pool.Close()
	stop, count, err := b.mixedLoad(ctx, pool, workers)
	if err != nil {
		return start, complete, err
	}
	time.Sleep(warmUp)
	off := fileSize(logPath)
	quiet := b.watchProgress("type change's start", count)
	err = m.Start(ctx, mig)
	quiet()
	if err != nil {
		stop()
		return start, complete, err
	}
	time.Sleep(200 * time.Millisecond) // let a wait that ended at the step's end reach the log
	start = lockWaits(logPath, off)
	off = fileSize(logPath)
	err = m.Complete(ctx)
	time.Sleep(200 * time.Millisecond)
	complete = lockWaits(logPath, off)
	if res := stop(); res.failed > 0 {
		fmt.Fprintf(os.Stderr, "%d load statements failed\n", res.failed)
	}
	return start, complete, err
}

// pool connects a pool of workers connections to url, as application "app". Statements
// are not prepared: a type change changes the table's row type, which fails a cached plan
// of the base schema (see Known limitations).
func (b *bench) pool(ctx context.Context, url string, workers int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(workers, 4))
	cfg.ConnConfig.RuntimeParams["application_name"] = "app"
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	return pgxpool.NewWithConfig(ctx, cfg)
}

// warmUp is how long a load runs before its measure begins: connections made, caches warm.
const warmUp = time.Second

// mixedLoad runs workers sessions of reads (50%), updates (30%) and inserts (20%) of
// random rows, each as fast as it can, until the returned stop is called; stop returns
// what they did after the first warmUp, with the machine's CPU time over that window by
// role (see cpuAccount). count is the statements run so far after the warm-up.
func (b *bench) mixedLoad(ctx context.Context, pool *pgxpool.Pool, workers int) (stop func() loadResult, count func() int64, err error) {
	pids, err := backendPIDs(ctx, pool, workers)
	if err != nil {
		return nil, nil, fmt.Errorf("connect the load's sessions: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	lats := make([][]time.Duration, workers)
	var ok, failed atomic.Int64
	t0 := time.Now().Add(warmUp)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				var q string
				var args []any
				switch r.IntN(10) {
				case 0, 1, 2, 3, 4:
					q, args = "SELECT name, qty FROM items WHERE id = $1", []any{1 + r.IntN(b.rows)}
				case 5, 6, 7:
					q, args = "UPDATE items SET qty = qty + 1 WHERE id = $1", []any{1 + r.IntN(b.rows)}
				default:
					q, args = "INSERT INTO items (name, qty) VALUES ('load', $1)", []any{r.IntN(1000)}
				}
				t1 := time.Now()
				_, err := pool.Exec(ctx, q, args...)
				if t1.Before(t0) {
					continue // warming up
				}
				lats[w] = append(lats[w], time.Since(t1))
				if err != nil {
					failed.Add(1)
					fmt.Fprintln(os.Stderr, "load statement failed:", err)
				} else {
					ok.Add(1)
				}
			}
		}(w)
	}
	// The CPU account covers the window the load's figures cover: from the warm-up's end.
	var acct *cpuAccount
	var win windowStatements
	var acctErr error
	acctStarted := make(chan struct{})
	go func() {
		defer close(acctStarted)
		select {
		case <-done:
		case <-time.After(time.Until(t0)):
			if b.statements {
				if win, acctErr = b.startStatements(ctx, pool); acctErr != nil {
					return
				}
			}
			acct, acctErr = startCPUAccount(pids)
		}
	}()
	count = func() int64 { return ok.Load() + failed.Load() }
	return func() loadResult {
		close(done)
		<-acctStarted
		var use cpuUse
		if acct != nil {
			use = acct.stop()
		} else if acctErr != nil {
			fmt.Fprintln(os.Stderr, "bench: no CPU account of the window:", acctErr)
		}
		wg.Wait()
		if acct != nil && b.statements {
			var err error
			if win, err = b.endStatements(ctx, pool, win); err != nil {
				fmt.Fprintln(os.Stderr, "bench: no statement figures of the window:", err)
			}
		}
		d := time.Since(t0)
		var all []time.Duration
		for _, l := range lats {
			all = append(all, l...)
		}
		slices.Sort(all)
		res := loadResult{ok: ok.Load(), failed: failed.Load(), cpu: use, stmts: win}
		if len(all) > 0 {
			res.p99 = all[len(all)*99/100]
			res.max = all[len(all)-1]
		}
		res.tps = float64(res.ok+res.failed) / d.Seconds()
		return res
	}, count, nil
}

// progressEvery is how often a long run prints how it goes.
const progressEvery = 10 * time.Second

// watchProgress prints to stderr, every progressEvery until stop is called, the load's
// rate over the interval (count: its statements so far; nil for none) and the backfill's
// last progress: a long run shows how it goes.
func (b *bench) watchProgress(what string, count func() int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t0 := time.Now()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			line := fmt.Sprintf("%s, %s:", what, time.Since(t0).Round(time.Second))
			if count != nil {
				n := count()
				line += fmt.Sprintf(" load %.0f tps;", float64(n-last)/progressEvery.Seconds())
				last = n
			}
			switch p := b.progress.Load(); {
			case p == nil:
				line += " no backfill progress yet"
			case p.Done:
				line += fmt.Sprintf(" fill done (%d rows); rules and catch-up", p.RowsDone)
			default:
				line += fmt.Sprintf(" fill %d/%d rows, %.0f rows/s", p.RowsDone, p.RowsTotal, p.Rate)
				if p.Throttle != nil {
					line += ", " + p.Throttle.String()
				}
			}
			fmt.Fprintln(os.Stderr, line)
		}
	})
	return func() { close(done); wg.Wait() }
}

// Write throughput states of (c): the dual-write trigger disabled (and no other trigger),
// the dual-write trigger enabled, and the floor: a minimal PL/pgSQL trigger that returns
// NEW unchanged, standing in for the dual-write trigger.
const (
	noTrigger = iota
	dualWriteTrigger
	floorTrigger
)

// writeRuns are the runs of (c), per state (see noTrigger): the statements' rate, and
// the CPU time the server's backends spent per statement (which the other processes of
// a busy machine disturb far less than the rate).
type writeRuns struct {
	rate, cpu [3][]float64
	// perRow is, per state, the best time per row of a bulk statement of the kind
	// (EXPLAIN ANALYZE, rolled back, best of bulkRounds): without a trigger, the statement's execution time;
	// with one, the time in the trigger alone.
	perRow [3]time.Duration
}

// throughput measures statements of kind ("update" or "insert") through the old version
// after start, in runs of rotated triples: no trigger, the dual-write trigger, and a
// minimal trigger (see noTrigger).
func (b *bench) throughput(ctx context.Context, runs, workers int, dur time.Duration, kind string) (res writeRuns, err error) {
	url, drop, err := b.fresh(ctx)
	if err != nil {
		return res, err
	}
	defer drop()
	m, err := migrate.Open(ctx, url, b.opts)
	if err != nil {
		return res, err
	}
	mig, err := migrate.Parse("bench.json", "02_price", []byte(migration))
	if err == nil {
		err = m.Start(ctx, mig)
	}
	m.Close(ctx)
	if err != nil {
		return res, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return res, err
	}
	// A fixed set of connections, whose backends' CPU time is read from /proc.
	cfg.MinConns, cfg.MaxConns = int32(workers), int32(workers)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	pids, err := backendPIDs(ctx, pool, workers)
	if err != nil {
		return res, err
	}
	var trigger string
	if err := pool.QueryRow(ctx, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'items'::regclass AND tgname LIKE '\\_tandem%'").Scan(&trigger); err != nil {
		return res, fmt.Errorf("find the dual-write trigger: %w", err)
	}
	dw := pgx.Identifier{trigger}.Sanitize()
	for _, q := range []string{
		"CREATE FUNCTION bench_floor() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
		"CREATE TRIGGER bench_floor BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION bench_floor()",
		"VACUUM ANALYZE items",
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return res, err
		}
	}
	// Without the dual-write trigger, a plain default keeps the old version's inserts
	// within the new column's NOT NULL check.
	toggles := [3][]string{
		noTrigger:        {"ALTER TABLE items DISABLE TRIGGER " + dw, "ALTER TABLE items DISABLE TRIGGER bench_floor", "ALTER TABLE items ALTER COLUMN price SET DEFAULT 0"},
		dualWriteTrigger: {"ALTER TABLE items ENABLE TRIGGER " + dw, "ALTER TABLE items DISABLE TRIGGER bench_floor", "ALTER TABLE items ALTER COLUMN price DROP DEFAULT"},
		floorTrigger:     {"ALTER TABLE items DISABLE TRIGGER " + dw, "ALTER TABLE items ENABLE TRIGGER bench_floor", "ALTER TABLE items ALTER COLUMN price SET DEFAULT 0"},
	}
	for i := 0; i < runs; i++ {
		// The order rotates: the table grows and bloats as the runs go on, so no state
		// may always run first.
		measure := func(state int) func() error {
			return func() error {
				for _, q := range toggles[state] {
					if _, err := pool.Exec(ctx, q); err != nil {
						return err
					}
				}
				cpu0 := cpuTime(pids)
				n, err := b.load(ctx, pool, workers, dur, kind)
				if err != nil {
					return err
				}
				res.rate[state] = append(res.rate[state], float64(n)/dur.Seconds())
				res.cpu[state] = append(res.cpu[state], float64(cpuTime(pids)-cpu0)/float64(time.Microsecond)/float64(max(n, 1)))
				return nil
			}
		}
		if err := rotate(i, measure(noTrigger), measure(dualWriteTrigger), measure(floorTrigger)); err != nil {
			return res, err
		}
		r, c := res.rate, res.cpu
		fmt.Fprintf(os.Stderr, "%s run %d: no trigger %.0f/s %.1fµs, dual-write trigger %.0f/s (%.2f×) %.1fµs (%.2f×), minimal trigger %.0f/s (%.2f×) %.1fµs (%.2f×)\n", kind, i+1,
			r[noTrigger][i], c[noTrigger][i], r[dualWriteTrigger][i], r[dualWriteTrigger][i]/r[noTrigger][i], c[dualWriteTrigger][i], c[dualWriteTrigger][i]/c[noTrigger][i],
			r[floorTrigger][i], r[floorTrigger][i]/r[noTrigger][i], c[floorTrigger][i], c[floorTrigger][i]/c[noTrigger][i])
	}
	// The bulk statements, in rotated rounds of the three states: the best of each.
	for state := range res.perRow {
		res.perRow[state] = time.Duration(math.MaxInt64)
	}
	for i := 0; i < bulkRounds; i++ {
		bulk := func(state int) func() error {
			return func() error {
				for _, q := range toggles[state] {
					if _, err := pool.Exec(ctx, q); err != nil {
						return err
					}
				}
				d, err := bulkPerRow(ctx, pool, kind, min(bulkRows, b.rows), state != noTrigger)
				res.perRow[state] = min(res.perRow[state], d)
				return err
			}
		}
		if err := rotate(i, bulk(noTrigger), bulk(dualWriteTrigger), bulk(floorTrigger)); err != nil {
			return res, err
		}
	}
	return res, nil
}

// bulkRounds is the rounds of bulk statements in (c).
const bulkRounds = 9

// bulkRows is the rows of bulkPerRow's statements (fewer for an update of a smaller table).
const bulkRows = 20000

// bulkPerRow runs a bulk statement of kind over n rows, under EXPLAIN ANALYZE and
// rolled back, and returns its time per row: of the trigger's time (there must be one
// trigger) when inTrigger, else of the statement's execution time.
func bulkPerRow(ctx context.Context, pool *pgxpool.Pool, kind string, n int, inTrigger bool) (time.Duration, error) {
	q := fmt.Sprintf("INSERT INTO items (name, qty) SELECT 'bulk', i %% 1000 FROM generate_series(1, %d) i", n)
	if kind == "update" {
		q = fmt.Sprintf("UPDATE items SET qty = qty + 1 WHERE id <= %d", n)
	}
	var plan string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q).Scan(&plan); err != nil {
			return err
		}
		return errRollback
	})
	if err != nil && !errors.Is(err, errRollback) {
		return 0, fmt.Errorf("bulk %s: %w", kind, err)
	}
	var out []struct {
		ExecutionTime float64 `json:"Execution Time"`
		Triggers      []struct {
			Time  float64 `json:"Time"`
			Calls int     `json:"Calls"`
		} `json:"Triggers"`
	}
	if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) != 1 {
		return 0, fmt.Errorf("read the plan of the bulk %s: %v", kind, err)
	}
	ms := out[0].ExecutionTime
	if inTrigger {
		if len(out[0].Triggers) != 1 || out[0].Triggers[0].Calls != n {
			return 0, fmt.Errorf("the bulk %s ran %d triggers, want one for each of %d rows", kind, len(out[0].Triggers), n)
		}
		ms = out[0].Triggers[0].Time
	}
	return time.Duration(ms * float64(time.Millisecond) / float64(n)), nil
}

// errRollback rolls a transaction back on purpose.
var errRollback = errors.New("roll back")

// backendPIDs opens all n connections of pool at once and returns their backends' process
// ids.
func backendPIDs(ctx context.Context, pool *pgxpool.Pool, n int) ([]int, error) {
	var pids []int
	var conns []*pgxpool.Conn
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		pids = append(pids, int(c.Conn().PgConn().PID()))
	}
	return pids, nil
}

// load runs statements of kind ("update" or "insert") for dur and returns how many ran.
func (b *bench) load(ctx context.Context, pool *pgxpool.Pool, workers int, dur time.Duration, kind string) (int64, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(deadline) {
				var err error
				if kind == "update" {
					_, err = pool.Exec(ctx, "UPDATE items SET qty = qty + 1 WHERE id = $1", 1+r.IntN(b.rows))
				} else {
					_, err = pool.Exec(ctx, "INSERT INTO items (name, qty) VALUES ('load', $1)", r.IntN(1000))
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}(w)
	}
	wg.Wait()
	if firstErr != nil {
		return 0, errors.Join(errors.New("throughput load failed"), firstErr)
	}
	return n.Load(), nil
}

// rotate runs fns in an order that rotates with run: each goes first as often.
func rotate(run int, fns ...func() error) error {
	for i := range fns {
		if err := fns[(run+i)%len(fns)](); err != nil {
			return err
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}
