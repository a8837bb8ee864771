package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/migrate"
)

// maxBackfillWorkers bounds --backfill-workers: each worker is a connection and about a
// server CPU core.
const maxBackfillWorkers = 64

// openMigrator connects with the global flags. An empty URL lets pgx read the standard
// PG* environment variables.
func openMigrator(ctx context.Context) (*migrate.Migrator, error) {
	level := slog.LevelWarn
	if global.verbose {
		level = slog.LevelInfo
	}
	opts := migrate.Options{
		Schema:          global.schema,
		StateSchema:     global.stateSchema,
		LockTimeout:     global.lockTimeout,
		BackfillWorkers: global.backfillWorkers,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Progress:        newProgressPrinter(os.Stderr).print,
	}
	if err := backfillOptions(&opts); err != nil {
		return nil, err
	}
	if global.lockTimeout < time.Millisecond || global.lockTimeout > time.Hour {
		return nil, cli.UsageErr(fmt.Errorf("--lock-timeout %s is out of range: give 1ms to 1h (default 500ms)", global.lockTimeout))
	}
	if global.backfillWorkers < 1 || global.backfillWorkers > maxBackfillWorkers {
		return nil, cli.UsageErr(fmt.Errorf("--backfill-workers %d is out of range: give 1 to %d (default %d)", global.backfillWorkers, maxBackfillWorkers, migrate.DefaultBackfillWorkers))
	}
	if _, err := pgx.ParseConfig(global.postgresURL); err != nil {
		return nil, cli.UsageErr(fmt.Errorf("--postgres-url: %w", err))
	}
	m, err := migrate.Open(ctx, global.postgresURL, opts)
	if err != nil {
		var ie *migrate.InputError
		if errors.As(err, &ie) {
			return nil, cli.UsageErr(err)
		}
		return nil, fmt.Errorf("%w (set --postgres-url, TANDEM_POSTGRES_URL or the PG* variables)", err)
	}
	return m, nil
}

// withMigrator opens a Migrator with the global flags, runs fn with it, and closes it.
func withMigrator(ctx context.Context, fn func(*migrate.Migrator) error) error {
	m, err := openMigrator(ctx)
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	return fn(m)
}

// progressPrinter shows backfill progress: one line rewritten in place on a terminal, a
// line every few seconds otherwise.
type progressPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	last     time.Time
	holding  bool // the backfill held back at the last report
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	return &progressPrinter{w: w, terminal: isTerminal(w)}
}

// isTerminal reports whether w is a terminal, where progress lines are rewritten in
// place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progressPrinter) print(bp migrate.BackfillProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A change of pace is shown at once.
	holding := bp.Throttle != nil && bp.Throttle.HoldingBack
	changed := holding != p.holding
	p.holding = holding
	if !p.terminal && !bp.Done && !changed && time.Since(p.last) < 5*time.Second {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("backfill %s.%s: %s, %.0f rows/s", bp.Table, bp.Column, progressRows(bp), bp.Rate)
	if !bp.Done && bp.ETA > 0 {
		line += fmt.Sprintf(", ETA %s (estimated)", bp.ETA.Round(time.Second))
	}
	if bp.Done {
		line += ", done"
	} else if bp.Throttle != nil && bp.Throttle.HoldingBack {
		line += "; " + bp.Throttle.String()
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if bp.Done {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// progressRows says how far a backfill is: the rows done of a total that is partly the
// planner's estimate (pg_class.reltuples, the table's pages as the fill began) while
// bp.Estimate says so, then exact. An estimate is never printed below the rows done.
func progressRows(bp migrate.BackfillProgress) string {
	if bp.Done {
		return fmt.Sprintf("%d rows", bp.RowsDone)
	}
	total := max(bp.RowsTotal, bp.RowsDone)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(bp.RowsDone) / float64(total)
	}
	if !bp.Estimate {
		return fmt.Sprintf("%d of %d rows (%.0f%%)", bp.RowsDone, total, pct)
	}
	return fmt.Sprintf("%d of about %d rows (%.0f%%, the total is an estimate)", bp.RowsDone, total, pct)
}

// readMigration reads a migration file; errors in it are usage errors (exit 2).
func readMigration(path string) (*migrate.Migration, error) {
	mig, err := migrate.ReadFile(path)
	if err != nil {
		return nil, cli.UsageErr(err)
	}
	return mig, nil
}

// classify turns engine errors about the input into usage errors (exit 2).
func classify(err error) error {
	var ie *migrate.InputError
	var se *migrate.StreamError
	var de *migrate.DriftError
	if errors.As(err, &ie) || errors.As(err, &se) || errors.As(err, &de) {
		return cli.UsageErr(err)
	}
	return err
}
