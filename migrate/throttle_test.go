package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestParseBackfillImpact(t *testing.T) {
	for _, c := range []struct {
		in   string
		want BackfillImpact
		err  bool
	}{
		{"", ImpactNormal, false},
		{"normal", ImpactNormal, false},
		{"LOW", ImpactLow, false},
		{" max ", ImpactMax, false},
		{"fast", 0, true},
		{"1", 0, true},
	} {
		got, err := ParseBackfillImpact(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseBackfillImpact(%q) = %v, %v; want %v, error %t", c.in, got, err, c.want, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), "low, normal or max") {
			t.Errorf("ParseBackfillImpact(%q): error %q does not name the choices", c.in, err)
		}
	}
	for i := range impactNames {
		text, err := i.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back BackfillImpact
		if err := back.UnmarshalText(text); err != nil || back != i {
			t.Errorf("%v does not survive MarshalText/UnmarshalText: %v, %v", i, back, err)
		}
	}
}

// TestThrottleControl drives the throttle's control loop with a fake clock: each sign
// of pressure halves its level (one worker, then pauses), down to the impact's floor;
// calm raises it back; max never holds back.
func TestThrottleControl(t *testing.T) {
	type step struct {
		after time.Duration // since the previous step
		s     signals
		// want
		holding bool
		workers int
		duty    float64
	}
	busy := signals{active: 10}
	waits := signals{waiters: 2, longestWait: 80 * time.Millisecond}
	calm := signals{active: 1}
	ms := time.Millisecond
	for _, c := range []struct {
		name     string
		impact   BackfillImpact
		baseline time.Duration // the probes' median before the backfill
		steps    []step
	}{
		{"lock waits drop to one worker, then pause", ImpactNormal, 0, []step{
			{0, calm, false, 2, 1},
			{100 * time.Millisecond, waits, true, 1, 1},
			{100 * time.Millisecond, waits, true, 1, 0.5},
			{100 * time.Millisecond, busy, true, 1, 0.25},
		}},
		{"a busy server drives it to the floor and no lower", ImpactNormal, 0, []step{
			{100 * time.Millisecond, busy, true, 1, 1},
			{100 * time.Millisecond, busy, true, 1, 0.5},
			{100 * time.Millisecond, busy, true, 1, 0.25},
			{100 * time.Millisecond, busy, true, 1, 0.125},
			{100 * time.Millisecond, busy, true, 1, 0.1},
			{100 * time.Millisecond, busy, true, 1, 0.1},
		}},
		{"pressure twice in one sample period counts once", ImpactNormal, 0, []step{
			{100 * time.Millisecond, waits, true, 1, 1},
			{10 * time.Millisecond, waits, true, 1, 1},
		}},
		{"it recovers once calm", ImpactNormal, 0, []step{
			{100 * time.Millisecond, waits, true, 1, 1},
			{100 * time.Millisecond, waits, true, 1, 0.5},
			{500 * time.Millisecond, calm, true, 1, 0.5}, // not calm for long enough yet
			{time.Second, calm, true, 1, 1},              // calm: +1/3 a second, level 0.58
			{time.Second, calm, true, 1, 1},              // level 0.92: one worker, full time
			{time.Second, calm, false, 2, 1},
		}},
		{"low stays on one worker with pauses", ImpactLow, 0, []step{
			{0, calm, false, 1, 0.5},
			{100 * time.Millisecond, busy, true, 1, 0.25},
		}},
		{"replicas lagging behind hold it back", ImpactNormal, 0, []step{
			{100 * time.Millisecond, signals{replayLag: 6 * time.Second}, true, 1, 1},
			{100 * time.Millisecond, signals{replayLag: 7 * time.Second}, true, 1, 0.5},
		}},
		{"a little replay lag does not", ImpactNormal, 0, []step{
			{100 * time.Millisecond, signals{replayLag: 2 * time.Second}, false, 2, 1},
		}},
		{"a server slow to answer holds it back", ImpactNormal, ms, []step{
			{100 * time.Millisecond, signals{probe: 6 * ms, appActive: true}, false, 2, 1}, // at the mark: max(6×1ms, 1ms+2ms)
			{100 * time.Millisecond, signals{probe: 7 * ms, appActive: true}, true, 1, 1},
			{100 * time.Millisecond, signals{probe: 20 * ms, appActive: true}, true, 1, 0.5},
		}},
		{"the slack keeps a fast server's jitter from counting", ImpactNormal, 200 * time.Microsecond, []step{
			{100 * time.Millisecond, signals{probe: 2200 * time.Microsecond, appActive: true}, false, 2, 1}, // 11× the baseline, at 0.2ms+2ms
			{100 * time.Millisecond, signals{probe: 2300 * time.Microsecond, appActive: true}, true, 1, 1},
		}},
		{"low holds back sooner", ImpactLow, ms, []step{
			{100 * time.Millisecond, signals{probe: 4 * ms, appActive: true}, false, 1, 0.5},
			{100 * time.Millisecond, signals{probe: 4100 * time.Microsecond, appActive: true}, true, 1, 0.25},
		}},
		{"nobody else at work: the backfill's own load does not count", ImpactNormal, ms, []step{
			{100 * time.Millisecond, signals{probe: 50 * ms}, false, 2, 1},
		}},
		{"no baseline, no answer-time signal", ImpactNormal, 0, []step{
			{100 * time.Millisecond, signals{probe: time.Second, appActive: true}, false, 2, 1},
		}},
		{"max never holds back", ImpactMax, ms, []step{
			{100 * time.Millisecond, waits, false, 2, 1},
			{100 * time.Millisecond, busy, false, 2, 1},
			{100 * time.Millisecond, signals{replayLag: time.Minute}, false, 2, 1},
			{100 * time.Millisecond, signals{probe: time.Second, appActive: true}, false, 2, 1},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			th := newThrottle(&Options{BackfillImpact: c.impact, BackfillWorkers: 2, BackfillBatchTime: 100 * time.Millisecond})
			th.clock = func() time.Time { return now }
			th.baseline = c.baseline
			for i, st := range c.steps {
				now = now.Add(st.after)
				th.observe(st.s)
				th.mu.Lock()
				got := th.state()
				th.mu.Unlock()
				if got.HoldingBack != st.holding || got.Workers != st.workers || !near(got.Duty, st.duty) {
					t.Fatalf("step %d: %+v; want holding back %t, %d workers, duty %.3f", i, got, st.holding, st.workers, st.duty)
				}
				if got.HoldingBack && got.Reason == "" {
					t.Fatalf("step %d: holding back without a reason: %+v", i, got)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 0.01 && b-a < 0.01 }

// TestThrottleBatchTarget: lock waits shorten batches for a while; the impact sets the
// target.
func TestThrottleBatchTarget(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		impact      BackfillImpact
		quiet, hurt time.Duration
	}{
		{ImpactMax, 100 * time.Millisecond, 100 * time.Millisecond},
		{ImpactNormal, 50 * time.Millisecond, 12500 * time.Microsecond},
		{ImpactLow, 25 * time.Millisecond, 6250 * time.Microsecond},
	} {
		th := newThrottle(&Options{BackfillImpact: c.impact, BackfillWorkers: 2, BackfillBatchTime: 100 * time.Millisecond})
		th.clock = func() time.Time { return now }
		if got := th.batchTarget(); got != c.quiet {
			t.Errorf("%v: batch target %s, want %s", c.impact, got, c.quiet)
		}
		th.observe(signals{waiters: 1})
		if got := th.batchTarget(); got != c.hurt {
			t.Errorf("%v: batch target after lock waits %s, want %s", c.impact, got, c.hurt)
		}
	}
}

// TestBackfillOptionsRefused: impossible impact and rate options are refused with the
// field named.
func TestBackfillOptionsRefused(t *testing.T) {
	for _, o := range []Options{{BackfillRate: -1}, {BackfillImpact: 7}} {
		err := o.checkBackfill()
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "backfill") {
			t.Errorf("%+v: %v, want an InputError about the backfill", o, err)
		}
	}
}

// TestBackfillThrottleUnderABlockedSession runs a backfill at the default impact while an
// application session really waits on a batch's row lock: the batch computes its rows in
// page order, and stops at a row of page 3 (the test holds it there) after it locked the
// page's first row, which the session then updates. The throttle sees the waiter in
// pg_locks, holds back to one worker and says why, in the progress reports and in status;
// once the session got its row and the pressure is gone, it recovers to both workers. The
// backfill fills every row.
func TestBackfillThrottleUnderABlockedSession(t *testing.T) {
	defer func(calm, recovery time.Duration) { throttleCalm, throttleRecovery = calm, recovery }(throttleCalm, throttleRecovery)
	throttleCalm, throttleRecovery = 200*time.Millisecond, 500*time.Millisecond

	const rows = 60000
	var mu sync.Mutex
	var reports []BackfillProgress
	e := newEnv(t, func(o *Options) {
		o.BackfillWorkers = 2
		// Long enough a backfill to see it recover: at least 4s.
		o.BackfillRate = rows / 4
		o.Progress = func(p BackfillProgress) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, p)
		}
	})
	ctx := context.Background()
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, pad text)")
	e.exec(fmt.Sprintf("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, %d) i", rows))
	e.exec("ANALYZE items")
	e.exec("CREATE TABLE ctl (hold boolean NOT NULL)")
	e.exec("INSERT INTO ctl VALUES (true)")
	var first, last int
	if err := e.db.QueryRow(ctx, "SELECT min(id), max(id) FROM items WHERE (ctid::text::point)[0] = 3").Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	// hold_at waits at row last while ctl.hold is set.
	e.exec(fmt.Sprintf(`CREATE FUNCTION hold_at(id int, v int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
			IF id = %d THEN
				WHILE (SELECT hold FROM ctl) LOOP PERFORM pg_sleep(0.01); END LOOP;
			END IF;
			RETURN v;
		END $$`, last))

	startErr := make(chan error, 1)
	go func() {
		startErr <- e.m.Start(ctx, e.parse(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "hold_at(id, qty)", "column": {"name": "q2", "type": "int"}}}]}`))
	}()
	// waitFor polls cond until it holds, or fails the test.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); {
			select {
			case err := <-startErr:
				t.Fatalf("start ended (%v) before %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("a batch to stop at the held row", func() bool {
		return queryString(t, e.db, "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'tandem' AND wait_event = 'PgSleep'") == "1"
	})

	// The application's session updates the page's first row, locked by the batch.
	app, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	appPID := app.PgConn().PID()
	appDone := make(chan error, 1)
	go func() {
		_, err := app.Exec(ctx, "UPDATE items SET qty = qty + 1 WHERE id = $1", first)
		appDone <- err
	}()
	waitFor("the session to wait on the batch", func() bool {
		return queryString(t, e.db, `SELECT count(*)::text FROM pg_stat_activity b
			WHERE b.application_name = 'tandem' AND b.pid = ANY (pg_blocking_pids($1))`, appPID) == "1"
	})
	var held BackfillProgress
	waitFor("the throttle to hold back for the waiting session", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range reports {
			if p.Throttle != nil && p.Throttle.HoldingBack && strings.Contains(p.Throttle.Reason, "waiting on the backfill's row locks") {
				held = p
				return true
			}
		}
		return false
	})
	if held.Throttle.Workers != 1 || held.Throttle.Impact != "normal" || held.Throttle.RateCap != rows/4 {
		t.Errorf("holding back with %+v; want one worker, impact normal, the rate cap", *held.Throttle)
	}
	// status, from another process's point of view, says so too: the other worker's
	// batches record the throttle's state.
	other := e.open()
	waitFor("status to show the backfill holding back", func() bool {
		st, err := other.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Backfills) == 1 && st.Backfills[0].Throttle != nil && st.Backfills[0].Throttle.HoldingBack &&
			st.Backfills[0].Throttle.Reason != ""
	})
	select {
	case err := <-appDone:
		t.Fatalf("the session was not blocked (%v)", err)
	default:
	}

	// The pressure goes: the batch goes on, the session gets its row.
	e.exec("UPDATE ctl SET hold = false")
	if err := <-appDone; err != nil {
		t.Fatalf("the session's update: %v", err)
	}
	mu.Lock()
	heldAt := len(reports)
	mu.Unlock()
	waitFor("the throttle to recover to both workers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range reports[heldAt:] {
			if p.Throttle != nil && !p.Throttle.HoldingBack && p.Throttle.Workers == 2 && !p.Done {
				return true
			}
		}
		return false
	})
	if err := <-startErr; err != nil {
		t.Fatalf("start: %v", err)
	}
	expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q2 = qty", fmt.Sprint(rows))
}

// TestBackfillRateCap: the rate cap holds on average over the backfill, at any impact.
func TestBackfillRateCap(t *testing.T) {
	const rows, rate = 10000, 10000
	for _, impact := range []BackfillImpact{ImpactMax, ImpactLow} {
		t.Run(impact.String(), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.BackfillImpact, o.BackfillRate, o.BackfillWorkers = impact, rate, 2 })
			e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, pad text)")
			e.exec(fmt.Sprintf("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, %d) i", rows))
			e.exec("ANALYZE items")
			t0 := time.Now()
			e.start(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty", "column": {"name": "q2", "type": "int"}}}]}`)
			// The first batch runs at once; the rest wait for their share of the cap.
			if d, least := time.Since(t0), time.Duration(float64(rows)/rate*0.8*float64(time.Second)); d < least {
				t.Errorf("start took %s, want at least %s at %d rows/s", d, least, rate)
			}
			expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q2 = qty", fmt.Sprint(rows))
		})
	}
}

// TestThrottleHeldBackBatches: while the throttle holds back, batches take at most
// heldBackPages pages; the rate cap may make them smaller still.
func TestThrottleHeldBackBatches(t *testing.T) {
	for _, c := range []struct {
		name       string
		rate       float64
		rowsPage   float64
		hold       bool
		wantPages  int64
		wantTarget time.Duration
	}{
		{"full speed: no limit", 0, 0, false, 0, 50 * time.Millisecond},
		{"holding back", 0, 0, true, heldBackPages, 12500 * time.Microsecond},
		{"rate cap at full speed", 1000, 10, false, 5, 50 * time.Millisecond},     // 1000 rows/s × 50ms / 10 rows a page
		{"rate cap, smaller still", 1000, 100, true, 1, 12500 * time.Microsecond}, // 12.5 rows: under a page
	} {
		t.Run(c.name, func(t *testing.T) {
			th := newThrottle(&Options{BackfillWorkers: 2, BackfillBatchTime: 100 * time.Millisecond, BackfillRate: c.rate})
			th.rowsPerPage = c.rowsPage
			if c.hold {
				th.observe(signals{active: 10})
			}
			target, pages, err := th.before(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			th.release()
			if pages != c.wantPages || target != c.wantTarget {
				t.Errorf("before: target %s, at most %d pages; want %s, %d", target, pages, c.wantTarget, c.wantPages)
			}
		})
	}
}

// TestThrottleOverruns: one batch that overruns its target threefold is let pass (a
// checkpoint, say); two in a row are pressure.
func TestThrottleOverruns(t *testing.T) {
	ctx := context.Background()
	th := newThrottle(&Options{BackfillWorkers: 2, BackfillBatchTime: 100 * time.Millisecond})
	batch := func(elapsed time.Duration) BackfillThrottle {
		t.Helper()
		target, _, err := th.before(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := th.after(ctx, 4, 400, elapsed, target); err != nil {
			t.Fatal(err)
		}
		th.mu.Lock()
		defer th.mu.Unlock()
		return th.state()
	}
	if s := batch(40 * time.Millisecond); s.HoldingBack {
		t.Fatalf("a batch within its target: %+v", s)
	}
	if s := batch(160 * time.Millisecond); s.HoldingBack {
		t.Fatalf("one overrun: %+v", s)
	}
	if s := batch(40 * time.Millisecond); s.HoldingBack {
		t.Fatalf("an overrun, then a batch within its target: %+v", s)
	}
	batch(160 * time.Millisecond)
	if s := batch(160 * time.Millisecond); !s.HoldingBack || !strings.Contains(s.Reason, "overran their target") {
		t.Fatalf("two overruns in a row: %+v, want holding back", s)
	}
}

// TestBackfillSkipsRowsTheApplicationLocks: at the default impact, a fill batch does not
// wait on a row the application holds locked: it fills the rest of the page around it,
// and the catch-up pass fills the row once the application lets it go.
func TestBackfillSkipsRowsTheApplicationLocks(t *testing.T) {
	const rows = 10000
	// One worker, at least 2s from the first page to the last.
	e := newEnv(t, func(o *Options) { o.BackfillWorkers, o.BackfillRate = 1, rows/2 })
	ctx := context.Background()
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL)")
	e.exec(fmt.Sprintf("INSERT INTO items SELECT i, i FROM generate_series(1, %d) i", rows))
	e.exec("ANALYZE items")
	startErr := make(chan error, 1)
	go func() {
		startErr <- e.m.Start(ctx, e.parse(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "q2", "type": "int"}}}]}`))
	}()
	// waitFor polls the query q until it returns want, or fails the test.
	waitFor := func(what, q, want string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); queryString(t, e.db, q) != want; time.Sleep(10 * time.Millisecond) {
			select {
			case err := <-startErr:
				t.Fatalf("start ended (%v) before %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// The physical column the backfill fills: the table's third. The fill under way, the
	// trigger and the checks are in (see backfill).
	waitFor("the backfill's column", "SELECT count(*)::text FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum = 3", "1")
	waitFor("the fill", "SELECT (to_regclass('tandem.backfill_chunks') IS NOT NULL)::text", "true")
	waitFor("the fill", "SELECT (coalesce(sum(rows_done), 0) > 0)::text FROM tandem.backfill_chunks", "true")
	target := qi(queryString(t, e.db, "SELECT attname::text FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum = 3"))

	// The application's transaction holds the lock of an UPDATE on the last row, on the
	// table's last page, before the backfill gets there.
	app, err := e.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Rollback(ctx)
	if got := queryString(t, app, fmt.Sprintf("SELECT (%s IS NULL)::text FROM items WHERE id = %d FOR NO KEY UPDATE", target, rows)); got != "true" {
		t.Fatalf("the backfill reached the last row before the application locked it (unfilled: %s)", got)
	}
	// The rows of that page but the locked one get filled while the lock is held.
	waitFor("the page around the locked row to be filled", fmt.Sprintf(`SELECT (count(%[1]s) = count(*) - 1 AND count(*) > 1)::text
		FROM items WHERE (ctid::text::point)[0] = (SELECT (ctid::text::point)[0] FROM items WHERE id = %[2]d)`, target, rows), "true")
	expectString(t, e.db, fmt.Sprintf("SELECT coalesce(%s::text, 'null') FROM items WHERE id = %d", target, rows), "null")

	// The application lets go: the catch-up pass fills the row.
	if err := app.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-startErr; err != nil {
		t.Fatalf("start: %v", err)
	}
	expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q2 = qty * 2", fmt.Sprint(rows))
}

// TestQuantile checks the nearest-rank quantiles the answer-time signal compares.
func TestQuantile(t *testing.T) {
	ds := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n))
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{ds(5), 0.9, 5},
		{ds(5), 0.5, 5},
		{ds(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.9, 9},
		{ds(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.5, 5},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 0.9, 14},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 0.5, 8},
		{ds(1, 1, 1, 1, 1, 1, 1, 1, 50, 60), 0.9, 50},
		{ds(1, 1, 1, 1, 1, 1, 1, 1, 50, 60), 0.5, 1},
		{nil, 0.9, 0},
	} {
		in := slices.Clone(c.in)
		if got := quantile(c.in, c.q); got != c.want {
			t.Errorf("quantile(%v, %v) = %d, want %d", c.in, c.q, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("quantile changed its input: %v", c.in)
		}
	}
}

// TestThrottleCalibrationGate: a watched backfill's batches wait for the answer-time
// baseline, start once it is known or skipped, give up waiting after calibrationWait,
// and a skip turns the signal off even after the baseline came.
func TestThrottleCalibrationGate(t *testing.T) {
	defer func(d time.Duration) { calibrationWait = d }(calibrationWait)
	// Far longer than any pause of a busy machine while the baseline is on its way; the
	// wait that runs out (below) is made short.
	calibrationWait = time.Minute
	opts := &Options{BackfillWorkers: 1, BackfillBatchTime: 100 * time.Millisecond}
	gated := func() *throttle {
		th := newThrottle(opts)
		th.calibrated = make(chan struct{})
		return th
	}
	started := func(th *throttle) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, _, err := th.before(context.Background())
			if err == nil {
				th.release()
			}
			done <- err
		}()
		return done
	}

	th := gated()
	done := started(th)
	select {
	case err := <-done:
		t.Fatalf("a batch started before the baseline (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	th.calibrateDone(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := th.probing(); got != time.Millisecond {
		t.Errorf("baseline %s after calibration, want 1ms", got)
	}
	th.skipCalibration()
	if got := th.probing(); got != 0 {
		t.Errorf("baseline %s after a skip, want 0 (the signal off)", got)
	}

	th = gated()
	th.skipCalibration()
	if err := <-started(th); err != nil {
		t.Fatal(err)
	}
	th.calibrateDone(time.Millisecond) // the watcher, late
	if got := th.probing(); got != 0 {
		t.Errorf("baseline %s after a skip then a late calibration, want 0", got)
	}

	calibrationWait = 200 * time.Millisecond // no batch is waiting now
	th = gated()
	t0 := time.Now()
	if err := <-started(th); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(t0); waited < calibrationWait {
		t.Errorf("a batch waited %s for a watcher that never calibrates, want calibrationWait (%s)", waited, calibrationWait)
	}
	if got := th.probing(); got != 0 {
		t.Errorf("baseline %s after the wait ran out, want 0", got)
	}

	th = gated()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := th.before(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("before with a cancelled context: %v, want context.Canceled", err)
	}
}
