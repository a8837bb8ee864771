package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// BackfillImpact says how much a backfill may slow the application down. The zero value
// is ImpactNormal.
type BackfillImpact int

const (
	// ImpactNormal, the default, fills at full speed while the database is quiet, and
	// holds back (smaller batches, pauses, one worker) while the application is busy or
	// waits on the backfill's row locks.
	ImpactNormal BackfillImpact = iota
	// ImpactLow fills on one worker, in short batches, with pauses even on a quiet
	// database, and holds back sooner and further than ImpactNormal.
	ImpactLow
	// ImpactMax fills as fast as it can, on every worker, without watching the database:
	// for a maintenance window, or a table nobody writes.
	ImpactMax
)

var impactNames = map[BackfillImpact]string{ImpactLow: "low", ImpactNormal: "normal", ImpactMax: "max"}

// String returns the impact's name: "low", "normal" or "max".
func (i BackfillImpact) String() string {
	if n, ok := impactNames[i]; ok {
		return n
	}
	return fmt.Sprintf("BackfillImpact(%d)", int(i))
}

// ParseBackfillImpact parses "low", "normal" or "max" (any case); "" is ImpactNormal.
func ParseBackfillImpact(s string) (BackfillImpact, error) {
	if strings.TrimSpace(s) == "" {
		return ImpactNormal, nil
	}
	for i, n := range impactNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return i, nil
		}
	}
	return ImpactNormal, fmt.Errorf("backfill impact %q: want low, normal or max", s)
}

// MarshalText encodes the impact by name, for JSON and YAML.
func (i BackfillImpact) MarshalText() ([]byte, error) {
	if _, ok := impactNames[i]; !ok {
		return nil, fmt.Errorf("unknown backfill impact %d", int(i))
	}
	return []byte(i.String()), nil
}

// UnmarshalText decodes an impact by name (see ParseBackfillImpact).
func (i *BackfillImpact) UnmarshalText(b []byte) error {
	v, err := ParseBackfillImpact(string(b))
	if err != nil {
		return err
	}
	*i = v
	return nil
}

// BackfillThrottle says how a backfill paces itself, and why it holds back when it does.
type BackfillThrottle struct {
	Impact string `json:"impact"`
	// HoldingBack is true while the backfill runs below its full speed for its impact.
	HoldingBack bool `json:"holding_back"`
	// Reason says why it holds back (or, with HoldingBack false, why it did last).
	Reason string `json:"reason,omitempty"`
	// Workers is how many batches may run at once; Duty the share of the time each of
	// them works (1: no pauses between batches).
	Workers int     `json:"workers"`
	Duty    float64 `json:"duty"`
	// BatchTarget is the duration batches are sized for, which is also about how long a
	// batch holds its row locks.
	BatchTarget time.Duration `json:"batch_target_ns"`
	// RateCap is the --backfill-rate cap in rows per second; 0 for none.
	RateCap float64 `json:"rate_cap,omitempty"`
}

// String is a one-line summary for progress output.
func (t BackfillThrottle) String() string {
	s := fmt.Sprintf("impact %s", t.Impact)
	if t.HoldingBack {
		s += fmt.Sprintf(", holding back (%d worker", t.Workers)
		if t.Workers != 1 {
			s += "s"
		}
		s += fmt.Sprintf(", working %.0f%% of the time): %s", 100*t.Duty, t.Reason)
	}
	if t.RateCap > 0 {
		s += fmt.Sprintf(", capped at %.0f rows/s", t.RateCap)
	}
	return s
}

// impactProfile is how one impact level paces a backfill.
type impactProfile struct {
	watch bool // watch the database and hold back under pressure
	// floor and ceiling bound the backfill's speed, in workers' worth of batches (0.5:
	// one worker, pausing as long as it works); a ceiling of 0 is every worker.
	floor, ceiling float64
	// busy is the number of other active sessions that counts as a busy server.
	busy int
	// replayLag is the replicas' replay lag (pg_stat_replication) that counts as
	// pressure: a backfill writes WAL faster than the application does.
	replayLag time.Duration
	// batchShare scales Options.BackfillBatchTime: the target of a batch, and so about
	// the longest a batch holds its row locks.
	batchShare float64
	// lockTimeout is the lock_timeout of a batch: a batch that waits on the
	// application's row lock longer gives up and retries smaller, rather than keep the
	// rows it holds locked meanwhile. 0: the Migrator's default for batches.
	lockTimeout time.Duration
	// probeFactor and probeSlack say when the server is slow to answer: when a trivial
	// query's p90 over the last second exceeds probeFactor times its median before the
	// backfill began, and that median plus probeSlack. 0: not watched.
	probeFactor float64
	probeSlack  time.Duration
}

func profileOf(i BackfillImpact) impactProfile {
	switch i {
	case ImpactMax:
		return impactProfile{batchShare: 1}
	case ImpactLow:
		return impactProfile{watch: true, floor: 0.05, ceiling: 0.5, busy: 2, replayLag: time.Second, batchShare: 0.25, lockTimeout: 20 * time.Millisecond,
			probeFactor: 4, probeSlack: time.Millisecond}
	}
	return impactProfile{watch: true, floor: 0.1, busy: 4, replayLag: 5 * time.Second, batchShare: 0.5, lockTimeout: 40 * time.Millisecond,
		probeFactor: 6, probeSlack: 2 * time.Millisecond}
}

// heldBackPages is the most pages a batch takes while the backfill holds back: some 250
// rows of a narrow table. On a server whose CPUs the application keeps busy, a batch's
// statement waits for a CPU too, and the application's writers of its rows wait for it:
// at 4 pages, a batch on a saturated 2-core server held its rows for up to 195ms.
const heldBackPages = 2

// Timing of the throttle's control loop.
var (
	// throttleSample is how often the watcher samples pg_stat_activity and pg_locks.
	throttleSample = 100 * time.Millisecond
	// throttleCalm is how long without pressure before the level rises again.
	throttleCalm = time.Second
	// throttleRecovery is how long the level takes to rise from 0 to 1 once calm.
	throttleRecovery = 3 * time.Second
	// probeCalibration is how many probes, probeGap apart, measure the server's answer
	// time before the backfill's first batch.
	probeCalibration = 15
	probeGap         = 10 * time.Millisecond
	// calibrationWait is the longest the first batch waits for the baseline; a watcher
	// slower than that (a connection queued in a pooler, say) leaves the signal off.
	calibrationWait = 2 * time.Second
)

// probeWindow is how many of the watcher's latest probes (one per sample) make the p90
// compared with the baseline: about a second's worth.
const probeWindow = 10

// probeMinPages is the smallest backfill, in pages left to fill, whose first batch waits
// for the probes' baseline (pages, not the planner's row estimate, which is 0 for a
// table never analysed): a smaller one is over before a slow server would show.
const probeMinPages = 200

// throttle paces a backfill's workers: it decides how many batches run at once, the
// pause after each, the batch target, and the rate cap. Its level, the share of full
// speed it allows, halves on each sign of pressure (down to the impact's floor) and
// rises again, slowly, once the pressure is gone. The signals:
//   - sessions waiting on a lock a backfill worker holds (sampled by watch);
//   - the replicas' replay lag, at or over the impact's mark (sampled by watch);
//   - other active sessions, at or over the impact's busy mark (sampled by watch);
//   - batches that overrun their target threefold, twice in a row (see after);
//   - a server slow to answer: the p90 of a trivial query over the last second, against
//     its median before the first batch (sampled by watch). Where the application keeps
//     the server's CPUs busy, the backfill's batches are what makes every other
//     statement wait for a CPU; none of the other signals shows it.
type throttle struct {
	impact     BackfillImpact
	p          impactProfile
	maxWorkers int
	// floor and ceiling bound the level, as shares of every worker's full speed.
	floor, ceiling float64
	batchTime      time.Duration // Options.BackfillBatchTime
	rate           float64       // rows/s; 0 for none
	// report is called, under mu, when the throttle starts or stops holding back.
	report func(BackfillThrottle)
	clock  func() time.Time // nil: time.Now

	mu           sync.Mutex
	level        float64
	reason       string // the last pressure seen
	lastPressure time.Time
	lastCut      time.Time
	lastRise     time.Time
	lockWaitsAt  time.Time     // the last lock wait on a worker: batches stay short a while
	overruns     int           // batches in a row that overran their target threefold
	busy         int           // batches running or pausing
	wake         chan struct{} // closed when a slot frees
	nextStart    time.Time     // the rate cap: when the next batch may start
	rowsPerPage  float64       // of the last batch
	pids         map[int]uint32
	holding      bool // as last reported
	// baseline is the median of the probes before the first batch (0: none, the signal is
	// off). When a watcher measures it, calibrated is made before the watcher starts and
	// closed once the baseline is known, or will not be; batches wait for it.
	baseline   time.Duration
	calibrated chan struct{}
	calibrate  sync.Once
}

func newThrottle(o *Options) *throttle {
	p := profileOf(o.BackfillImpact)
	workers := max(o.BackfillWorkers, 1)
	t := &throttle{impact: o.BackfillImpact, p: p, maxWorkers: workers, batchTime: o.BackfillBatchTime,
		rate: o.BackfillRate, wake: make(chan struct{}), pids: map[int]uint32{}, floor: 1, ceiling: 1}
	if p.ceiling > 0 {
		t.ceiling = min(1, p.ceiling/float64(workers))
	}
	if p.watch {
		t.floor = min(t.ceiling, p.floor/float64(workers))
	}
	t.level = t.ceiling
	return t
}

// calibrateDone records the probes' baseline (0: none) and lets batches start. Only the
// first call counts, and none after skipCalibration.
func (t *throttle) calibrateDone(baseline time.Duration) {
	t.calibrate.Do(func() {
		t.mu.Lock()
		t.baseline = baseline
		t.mu.Unlock()
		if t.calibrated != nil {
			close(t.calibrated)
		}
	})
}

// skipCalibration lets batches start without the probes' baseline, and turns the
// signal off even if the baseline came first: for a backfill too small to need it, or a
// watcher too slow to measure it in time.
func (t *throttle) skipCalibration() {
	t.mu.Lock()
	t.baseline = 0
	t.mu.Unlock()
	t.calibrateDone(0)
}

// awaitCalibration waits until the watcher has the probes' baseline, or has given up on
// it, for at most calibrationWait: then the backfill goes on without the signal.
func (t *throttle) awaitCalibration(ctx context.Context) error {
	if t.calibrated == nil {
		return nil
	}
	select {
	case <-t.calibrated:
		return nil
	default:
	}
	timer := time.NewTimer(calibrationWait)
	defer timer.Stop()
	select {
	case <-t.calibrated:
	case <-timer.C:
		t.skipCalibration()
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// probing returns the baseline the watcher compares its probes with, under mu; 0: the
// signal is off.
func (t *throttle) probing() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.baseline
}

// slowProbeLocked is slowProbe, taking mu.
func (t *throttle) slowProbeLocked() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slowProbe()
}

// slowProbe is the probes' p90 over which the server counts as slow to answer, under
// mu; 0 while there is no baseline.
func (t *throttle) slowProbe() time.Duration {
	if t.baseline == 0 || t.p.probeFactor == 0 {
		return 0
	}
	return max(time.Duration(float64(t.baseline)*t.p.probeFactor), t.baseline+t.p.probeSlack)
}

// now is the throttle's clock.
func (t *throttle) now() time.Time {
	if t.clock != nil {
		return t.clock()
	}
	return time.Now()
}

// state returns the throttle's state, under mu.
func (t *throttle) state() BackfillThrottle {
	workers, duty := t.slots()
	s := BackfillThrottle{Impact: t.impact.String(), Workers: workers, Duty: math.Round(duty*1000) / 1000,
		BatchTarget: t.batchTarget(), RateCap: t.rate, Reason: t.reason}
	s.HoldingBack = t.p.watch && t.level < t.ceiling
	if s.HoldingBack && t.now().Sub(t.lastPressure) > throttleCalm {
		s.Reason = "recovering from: " + t.reason
	}
	return s
}

// slots returns how many batches may run at once and the share of its time each of them
// works, under mu.
func (t *throttle) slots() (int, float64) {
	units := t.level * float64(t.maxWorkers)
	workers := max(1, min(t.maxWorkers, int(math.Floor(units+1e-9))))
	return workers, min(1, units/float64(workers))
}

// batchTarget is the duration batches are sized for, under mu: a quarter while the
// backfill holds back, or sessions have waited on its locks lately. (On a busy server, a
// batch's statements wait for the CPU too: a batch holds its rows longer than it works.)
func (t *throttle) batchTarget() time.Duration {
	d := time.Duration(float64(t.batchTime) * t.p.batchShare)
	if t.p.watch && (t.level < t.ceiling || !t.lockWaitsAt.IsZero() && t.now().Sub(t.lockWaitsAt) < 5*throttleCalm) {
		d /= 4
	}
	return max(d, 5*time.Millisecond)
}

// pressure records a sign of pressure, under mu: the level halves, at most once per
// sample period, down to the floor.
func (t *throttle) pressure(reason string) {
	now := t.now()
	t.reason, t.lastPressure = reason, now
	if now.Sub(t.lastCut) >= throttleSample {
		t.level = max(t.floor, t.level/2)
		t.lastCut = now
	}
	t.changed()
}

// calm raises the level when no pressure was seen for a while, under mu: by the time
// since the last sample over throttleRecovery.
func (t *throttle) calm() {
	now := t.now()
	if now.Sub(t.lastPressure) > throttleCalm && !t.lastRise.IsZero() {
		t.level = min(t.ceiling, t.level+float64(now.Sub(t.lastRise))/float64(throttleRecovery))
	}
	t.lastRise = now
	t.changed()
}

// changed reports a change between holding back and not, under mu.
func (t *throttle) changed() {
	holding := t.p.watch && t.level < t.ceiling
	if holding != t.holding {
		t.holding = holding
		if t.report != nil {
			t.report(t.state())
		}
	}
}

// setReport sets the function called when the throttle starts or stops holding back.
func (t *throttle) setReport(fn func(BackfillThrottle)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report = fn
}

// conflict records a batch that gave up on the application's row locks, and frees its
// slot.
func (t *throttle) conflict() {
	t.mu.Lock()
	if t.p.watch {
		t.lockWaitsAt = t.now()
		t.pressure("a batch met the application's row locks and gave up, to retry smaller")
	}
	t.mu.Unlock()
	t.release()
}

// register records worker w's backend, whose lock waiters the watcher looks for.
func (t *throttle) register(w int, pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pids[w] = pid
}

// before waits until a batch may run: a slot free, the rate cap respected. It returns the
// batch target and the most pages the batch may take (0: no limit). Every before that
// succeeds must be followed by after or release.
func (t *throttle) before(ctx context.Context) (time.Duration, int64, error) {
	if err := t.awaitCalibration(ctx); err != nil {
		return 0, 0, err
	}
	for {
		t.mu.Lock()
		workers, _ := t.slots()
		if t.busy < workers {
			t.busy++
			wait := t.nextStart.Sub(t.now())
			target := t.batchTarget()
			var pages int64
			if t.rate > 0 && t.rowsPerPage > 0 {
				// A batch of no more rows than the cap allows in a batch's time.
				pages = max(1, int64(t.rate*target.Seconds()/t.rowsPerPage))
			}
			if t.p.watch && t.level < t.ceiling {
				// Holding back, a batch stays small whatever its pages hold: a batch grown
				// on pages with little to do (a catch-up over rows nobody wrote) would
				// hold many rows locked on pages with much.
				if pages == 0 || pages > heldBackPages {
					pages = heldBackPages
				}
			}
			t.mu.Unlock()
			if wait > 0 {
				if err := sleep(ctx, wait); err != nil {
					t.release()
					return 0, 0, err
				}
			}
			return target, pages, nil
		}
		wake := t.wake
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-wake:
		case <-time.After(throttleSample):
		}
	}
}

// release frees a slot.
func (t *throttle) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy--
	close(t.wake)
	t.wake = make(chan struct{})
}

// after records a batch of pages, sized for target, that took elapsed and updated rows;
// it pauses as the level asks, and frees the slot. Batches are sized from the last one's
// time: a batch that overruns its target threefold met a slowdown, and two such in a row
// are a sign of pressure (one may be a checkpoint, or the pages it met).
func (t *throttle) after(ctx context.Context, pages, rows int64, elapsed, target time.Duration) error {
	defer t.release()
	t.mu.Lock()
	if t.p.watch && pages > 0 {
		if elapsed > 3*target {
			t.overruns++
		} else {
			t.overruns = 0
		}
		if t.overruns >= 2 {
			t.pressure(fmt.Sprintf("batches overran their target of %s (the last took %s)", target, elapsed.Round(time.Millisecond)))
		} else {
			t.calm()
		}
	}
	if pages > 0 && rows > 0 {
		t.rowsPerPage = float64(rows) / float64(pages)
	}
	if t.rate > 0 {
		// The cap holds on average: each batch's rows push the next start back.
		now := t.now()
		if t.nextStart.Before(now) {
			t.nextStart = now
		}
		t.nextStart = t.nextStart.Add(time.Duration(float64(rows) / t.rate * float64(time.Second)))
	}
	_, duty := t.slots()
	t.mu.Unlock()
	if duty < 1 {
		return sleep(ctx, time.Duration(float64(elapsed)*(1-duty)/duty))
	}
	return nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// signals is one sample of the database's state.
type signals struct {
	active      int           // other active client sessions
	waiters     int           // sessions waiting on a lock a backfill worker holds
	longestWait time.Duration // of those, the longest wait so far
	// replayLag is the longest replay lag of the replicas (0: none, or not visible to
	// the role: pg_stat_replication shows it to superusers and pg_read_all_stats).
	replayLag time.Duration
	// probe is the p90 of a trivial query's answer time over the last probeWindow
	// samples (0: not measured), and appActive says whether any of those samples saw
	// another client session active: a server slow to answer counts only then (the
	// backfill's own batches alone may slow a small idle server, and hold back for nobody).
	probe     time.Duration
	appActive bool
}

// observe takes one sample of the database into account.
func (t *throttle) observe(s signals) {
	t.mu.Lock()
	defer t.mu.Unlock()
	slow := t.slowProbe()
	switch {
	case s.waiters > 0:
		t.lockWaitsAt = t.now()
		t.pressure(fmt.Sprintf("%d session(s) waiting on the backfill's row locks (longest %s so far)", s.waiters, s.longestWait.Round(time.Millisecond)))
	case s.replayLag >= t.p.replayLag && t.p.replayLag > 0:
		t.pressure(fmt.Sprintf("replicas replay %s behind (holding back from %s)", s.replayLag.Round(time.Millisecond), t.p.replayLag))
	case s.active >= t.p.busy:
		t.pressure(fmt.Sprintf("%d other active sessions (busy at %d)", s.active, t.p.busy))
	case s.appActive && slow > 0 && s.probe > slow:
		t.pressure(fmt.Sprintf("the server is slow to answer: a trivial query takes %s (p90 of the last second), %s (median) before the backfill",
			roundProbe(s.probe), roundProbe(t.baseline)))
	default:
		t.calm()
	}
}

// watchQuery samples the signals: $1 are the backfill's backends (and the watcher's).
// Only sessions waiting on a lock are checked with pg_blocking_pids, which is costly.
const watchQuery = `
	WITH waiting AS MATERIALIZED (
		SELECT pid, query_start FROM pg_stat_activity
		 WHERE wait_event_type = 'Lock' AND pid <> ALL ($1::int[]))
	SELECT (SELECT count(*) FROM pg_stat_activity
	         WHERE state = 'active' AND backend_type = 'client backend' AND pid <> ALL ($1::int[]))::int,
	       count(*)::int,
	       coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)::float8,
	       (SELECT coalesce(extract(epoch FROM max(replay_lag)), 0) FROM pg_stat_replication)::float8
	  FROM waiting WHERE pg_blocking_pids(pid) && $1::int[]`

// watch samples the database until ctx is done, on a connection of its own, feeding the
// throttle. It records the throttle's state for status when it changes, and every second
// while it holds back: batches record it too, but while one batch is stuck the others may
// not run. A watcher that cannot connect or query leaves the throttle to the batches'
// latency.
func (t *throttle) watch(ctx context.Context, r *run) {
	defer t.calibrateDone(0) // whatever happens, batches may start
	m := r.m
	conn, err := pgx.ConnectConfig(ctx, m.conn.Config())
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("the backfill's watcher cannot connect; it paces by batch latency alone", "err", err)
		}
		return
	}
	defer func() {
		closeCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		conn.Close(closeCtx)
	}()
	self := conn.PgConn().PID()
	var probes []time.Duration // the latest, oldest first
	var active []bool          // whether each of those samples saw another active session
	var base time.Duration     // 0: the backfill does not watch the answer time
	if t.p.probeFactor > 0 && t.calibrated != nil {
		measured, err := calibrateProbe(ctx, conn, t.calibrated)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("the backfill's watcher failed; it paces by batch latency alone", "err", err)
			}
			return
		}
		t.calibrateDone(measured)
		// The backfill may have started without it (skipCalibration): read it back.
		if base = t.probing(); base > 0 {
			m.log.Debug("the backfill's watcher measured the server's answer time", "median", base, "slow_over", t.slowProbeLocked())
		}
	}
	var recorded BackfillThrottle
	var recordedAt time.Time
	ticker := time.NewTicker(throttleSample)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		t.mu.Lock()
		pids := []int32{int32(self)}
		for _, p := range t.pids {
			pids = append(pids, int32(p))
		}
		t.mu.Unlock()
		var s signals
		var secs, lag float64
		if err := conn.QueryRow(ctx, watchQuery, pids).Scan(&s.active, &s.waiters, &secs, &lag); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("the backfill's watcher failed; it paces by batch latency alone", "err", err)
			}
			return
		}
		s.longestWait = time.Duration(secs * float64(time.Second))
		s.replayLag = time.Duration(lag * float64(time.Second))
		if base > 0 {
			d, err := probe(ctx, conn)
			if err != nil {
				if ctx.Err() == nil {
					m.log.Warn("the backfill's watcher failed; it paces by batch latency alone", "err", err)
				}
				return
			}
			probes, active = append(probes, d), append(active, s.active > 0)
			if len(probes) > probeWindow {
				probes, active = probes[1:], active[1:]
			}
			if len(probes) == probeWindow {
				s.probe, s.appActive = quantile(probes, 0.9), slices.Contains(active, true)
			}
		}
		t.observe(s)
		t.mu.Lock()
		st := t.state()
		t.mu.Unlock()
		if st.HoldingBack != recorded.HoldingBack || st.Workers != recorded.Workers || st.HoldingBack && time.Since(recordedAt) >= time.Second {
			if err := recordThrottle(ctx, conn, r, st); err != nil && ctx.Err() == nil {
				m.log.Warn("record the backfill's pace", "err", err)
			}
			recorded, recordedAt = st, time.Now()
		}
	}
}

// probe times a trivial query on conn: how long the server takes to answer at all.
func probe(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	var one int
	t0 := time.Now()
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return 0, fmt.Errorf("probe the server's answer time: %w", err)
	}
	return time.Since(t0), nil
}

// calibrateProbe measures the median of probeCalibration probes, probeGap apart: the
// server's answer time before the backfill loads it. It stops early, with 0, once done
// is closed (the backfill was too small to wait for it).
func calibrateProbe(ctx context.Context, conn *pgx.Conn, done <-chan struct{}) (time.Duration, error) {
	var ds []time.Duration
	for range probeCalibration {
		select {
		case <-done:
			return 0, nil
		default:
		}
		d, err := probe(ctx, conn)
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
		if len(ds) == probeCalibration {
			break
		}
		if err := sleep(ctx, probeGap); err != nil {
			return 0, err
		}
	}
	if len(ds) == 0 {
		return 0, nil
	}
	return quantile(ds, 0.5), nil
}

// quantile is the q-quantile of ds (nearest rank; 0 < q <= 1), 0 for none; ds is not
// changed.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// roundProbe rounds an answer time for a message: to 10µs under a millisecond.
func roundProbe(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

// recordThrottle records the throttle's state on the backfill's chunks that no batch
// holds (a batch records it itself), with a short lock_timeout all the same.
func recordThrottle(ctx context.Context, conn *pgx.Conn, r *run, st BackfillThrottle) error {
	state := qi(r.m.opts.StateSchema, "backfill_chunks")
	bt := &pgx.Batch{}
	bt.Queue("SELECT set_config('lock_timeout', '100ms', true)")
	bt.Queue("UPDATE "+state+" SET throttle = $4, updated_at = now() WHERE (schema, migration, op, chunk) IN"+
		" (SELECT schema, migration, op, chunk FROM "+state+" WHERE schema = $1 AND migration = $2 AND op = $3 FOR UPDATE SKIP LOCKED)",
		r.m.opts.Schema, r.rec.Name, r.op, throttleJSON(st))
	return conn.SendBatch(ctx, bt).Close()
}

// throttleJSON encodes a throttle state for the state schema.
func throttleJSON(s BackfillThrottle) []byte {
	b, _ := json.Marshal(s) // a plain struct: cannot fail
	return b
}

// checkBackfill refuses impossible backfill options.
func (o *Options) checkBackfill() error {
	if _, ok := impactNames[o.BackfillImpact]; !ok {
		return &InputError{Op: -1, Field: "backfill impact", Err: fmt.Errorf("unknown backfill impact %d: want ImpactLow, ImpactNormal or ImpactMax", int(o.BackfillImpact))}
	}
	if o.BackfillRate < 0 || math.IsNaN(o.BackfillRate) || math.IsInf(o.BackfillRate, 0) {
		return &InputError{Op: -1, Field: "backfill rate", Err: fmt.Errorf("backfill rate %v rows/s: want a positive number, or 0 for no cap", o.BackfillRate)}
	}
	return nil
}
