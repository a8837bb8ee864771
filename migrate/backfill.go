package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BackfillProgress reports a backfill's progress after each batch.
type BackfillProgress struct {
	Migration string `json:"migration"`
	Table     string `json:"table"`
	Column    string `json:"column"`
	RowsDone  int64  `json:"rows_done"`
	// RowsTotal is the rows the backfill fills: those of the pages the table had when it
	// began (the rows written since get their value from the catch-up or the trigger).
	// Until a chunk of pages is done, its share is the planner's estimate
	// (pg_class.reltuples), never below the rows done; then it is exact.
	RowsTotal int64 `json:"rows_total"`
	// Estimate says RowsTotal is (partly) an estimate: some chunk is not done yet.
	Estimate bool    `json:"estimate"`
	Rate     float64 `json:"rows_per_second"`
	// ETA is the time left at the rate so far; 0 (none) until the backfill has run for
	// etaAfter, since a first batch or two say little about the rate.
	ETA  time.Duration `json:"eta_ns"`
	Done bool          `json:"done"`
	// Throttle says how the backfill paces itself, and why it holds back when it does;
	// nil when unknown (a backfill recorded before Tandem had a throttle).
	Throttle *BackfillThrottle `json:"throttle,omitempty"`
}

// backfill fills column target of existing rows with expr, in batches, and then installs
// the rules (the dual-write trigger and the constraints) that keep it filled.
//
// The bulk of the work runs before the trigger exists: a BEFORE UPDATE trigger costs
// every row a backfill writes a tuple lock, about a quarter of the time. The table's pages
// are split into chunks, contiguous page ranges that workers fill side by side, each on
// its own connection. Each batch is one set-based UPDATE of a range of pages (a TID range
// scan) that only touches rows whose target is still NULL; a chunk's cursor, and the
// batch's transaction ID, are saved in the same transaction as the batch, so an
// interrupted backfill resumes where it stopped.
//
// Meanwhile the old version keeps writing, without the trigger: a row it inserts has no
// value, a row it updates keeps the value computed from its former contents. Only the old
// version writes until the version schema exists, and it cannot see the target. So once
// the bulk is done, the rules go in, and a catch-up pass computes the value again for
// every row whose current version a transaction other than the backfill's wrote (its xmin
// is none of the batches' transaction IDs). Rows written after the trigger went in are
// computed twice, to the same value.
//
// That is for impact max, on a database the application leaves alone. An impact that
// yields to the application (normal, low) installs the rules before the fill instead:
// under a steady write load most rows are written during a long, held-back fill, and the
// catch-up would redo nearly all of them, as slowly. With the trigger in place, every
// write of the old version computes the target itself, and the catch-up redoes only the
// rows still without a value (those the fill skipped because the application held them
// locked). The chunks record which way they were made (rules_first): a fill resumed under
// another impact keeps the catch-up its chunks need.
type backfill struct {
	table  *Table // the old version's table (names in expr resolve to its physical columns)
	target string // physical column
	typ    string // the target's type (see castTo)
	expr   string
	// trigger are the statements that install the dual-write trigger, and rules those
	// that install the target's checks in place of their guards, on ruleTables: each
	// set in a short transaction of its own, the trigger first, between the bulk fill
	// and the catch-up (see finish).
	trigger    []string
	rules      []string
	ruleTables []string
	// guards name the checks that hold the bulk fill to the target's rules meanwhile
	// (see guardedCheck), and the checks themselves, with what each stands for.
	guards map[string]string
}

// guardedCheck adds the check constraint name, def ("CHECK (expr)", maybe followed by
// options), to the rules, and until then a guard, added with the column, that holds only
// the backfill's writes to it: the old version writes without the trigger until the
// rules go in, and a NULL it inserts may break the check. what says what the check
// stands for, in an error. (Foreign keys need no guard: a NULL passes them.)
func (b *backfill) guardedCheck(ctx context.Context, r *run, column *[]string, table, name, def, what string) error {
	exists, err := constraintExists(ctx, r, table, name)
	if err != nil || exists {
		return err // the rules went in already: the bulk fill is done
	}
	open, end := strings.Index(def, "("), strings.LastIndex(def, ")")
	if open < 0 || end < open {
		return fmt.Errorf("check %s: unexpected definition %q", name, def)
	}
	// The guard keeps the check's options (NO INHERIT).
	guard := guardName(r, name)
	if err := r.addNotValid(ctx, column, table, guard, fmt.Sprintf("CHECK ((%s) OR coalesce(current_setting(%s, true), '') <> 'on')%s",
		def[open+1:end], ql(BackfillSetting), def[end+1:])); err != nil {
		return err
	}
	b.rules = append(b.rules, "ALTER TABLE "+table+" ADD CONSTRAINT "+qi(name)+" "+def+" NOT VALID",
		"ALTER TABLE "+table+" DROP CONSTRAINT IF EXISTS "+qi(guard))
	if b.guards == nil {
		b.guards = map[string]string{}
	}
	b.guards[guard], b.guards[name] = what, what
	return nil
}

// guardName names the guard of check name (see guardedCheck).
func guardName(r *run, name string) string {
	return shortName("_tandem_guard_", r.rec.Name, fmt.Sprint(r.op), name)
}

// minChunkPages is the fewest pages worth a chunk (and a connection) of their own.
const minChunkPages = 64

// chunk is a share of a backfill: the pages first..last of one relation (the table, or
// one of its partitions or inheritance children).
type chunk struct {
	id          int
	relation    string // quoted and qualified
	rulesFirst  bool   // made with the rules in place (see backfill)
	first, last int64
	next        int64 // the first page not done yet
	rowsDone    int64
	rowsTotal   int64 // an estimate
}

func (c *chunk) done() bool { return c.next > c.last }

// run fills the table (resuming a fill an earlier run began), installs the rules and
// catches up.
func (b *backfill) run(ctx context.Context, r *run) error {
	m := r.m
	if m.dry != nil {
		return b.plan(ctx, r)
	}
	th, stop := b.pace(ctx, r)
	defer stop()
	rulesIn := false
	if th.p.watch {
		// Yielding to the application: the rules go in first (see backfill).
		if err := b.installRules(ctx, r); err != nil {
			return err
		}
		rulesIn = true
	}
	chunks, err := b.load(ctx, r, rulesIn)
	if err != nil {
		return err
	}
	var pending []*chunk
	for _, c := range chunks {
		if !c.done() {
			pending = append(pending, c)
		}
	}
	if len(pending) == 0 {
		return b.finish(ctx, r, th, chunks, rulesIn) // a resumed start: the bulk was done
	}
	var left int64 // pages
	for _, c := range pending {
		left += c.last - c.next + 1
	}
	if left < probeMinPages {
		th.skipCalibration()
	}
	p := &backfillProgress{b: b, r: r, chunks: chunks, started: time.Now(), th: th}
	p.doneAtStart = p.rowsDone()
	th.setReport(p.throttled)
	queue := make(chan *chunk, len(pending))
	for _, c := range pending {
		queue <- c
	}
	close(queue)
	err = onWorkers(ctx, m, min(len(pending), m.opts.BackfillWorkers), func(ctx context.Context, w int, conn *pgx.Conn) error {
		th.register(w, conn.PgConn().PID())
		for c := range queue {
			if err := b.fill(ctx, r, conn, c, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	th.setReport(nil)
	return b.finish(ctx, r, th, chunks, rulesIn)
}

// plan records the backfill, and the rules that follow it, in the plan being made.
func (b *backfill) plan(ctx context.Context, r *run) error {
	rels, err := b.relations(ctx, r)
	if err != nil {
		return err
	}
	pb := &PlanBackfill{Table: b.table.Name, Column: b.target, Expression: b.expr}
	for _, rel := range rels {
		pb.Rows += rel.rows
	}
	// The rules' transactions are recorded in the plan, not applied.
	rulesFirst := profileOf(r.m.opts.BackfillImpact).watch
	if rulesFirst {
		if err := b.installRules(ctx, r); err != nil {
			return err
		}
	}
	r.m.dry.add(PlanStep{Type: "backfill", Backfill: pb})
	if !rulesFirst {
		return b.installRules(ctx, r)
	}
	return nil
}

// pace returns the throttle of the backfill and, for an impact that watches the
// database, starts its watcher; stop stops the watcher.
func (b *backfill) pace(ctx context.Context, r *run) (th *throttle, stop func()) {
	th = newThrottle(&r.m.opts)
	if !th.p.watch {
		return th, func() {}
	}
	if th.p.probeFactor > 0 {
		th.calibrated = make(chan struct{}) // the watcher closes it
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { th.watch(ctx, r) })
	return th, func() { cancel(); wg.Wait() }
}

// onWorkers runs fn on n workers side by side, each on a connection of its own (one
// worker alone uses the Migrator's connection). The first failure stops the others, and is
// the one returned. A worker that cannot connect (the server's connection limit, say)
// leaves its share to the others; fn must take its work from a shared queue.
func onWorkers(ctx context.Context, m *Migrator, n int, fn func(ctx context.Context, w int, conn *pgx.Conn) error) error {
	if n <= 1 {
		return fn(ctx, 0, m.conn)
	}
	// A stopped worker's connection may be closed mid-query: never the Migrator's.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once      sync.Once
		first     error
		connected atomic.Int32
		mu        sync.Mutex
		connErr   error // a failure to connect, should every worker fail so
		wg        sync.WaitGroup
	)
	for w := range n {
		wg.Go(func() {
			c, err := pgx.ConnectConfig(ctx, m.conn.Config())
			if err != nil {
				m.log.Warn("a backfill worker cannot connect; the others do its share", "worker", w, "err", err)
				mu.Lock()
				connErr = err
				mu.Unlock()
				return
			}
			connected.Add(1)
			defer func() {
				closeCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer done()
				c.Close(closeCtx)
			}()
			if err := fn(ctx, w, c); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && connected.Load() == 0 {
		return fmt.Errorf("backfill: no worker could connect: %w", connErr)
	}
	return first
}

// finish installs the trigger, then the rules, and catches up with the rows the old
// version wrote during the bulk fill, on the workers side by side.
//
// The trigger and the checks go in apart, each in a transaction as short as it can be:
// every statement on the table queues behind a transaction waiting for its lock, and
// creating the trigger waits only for the writers (SHARE ROW EXCLUSIVE), where replacing
// the guards by the checks takes an ACCESS EXCLUSIVE lock. The trigger goes first: the
// checks without it would refuse the old version's rows that lack the target. A row
// written between the two has its target from the trigger but is not yet held to the
// checks: it is like the rows written during the bulk fill, which the catch-up computes
// again after the checks are in, under them.
//
// rulesIn says the rules went in already, in this run; chunks are the fill's.
func (b *backfill) finish(ctx context.Context, r *run, th *throttle, chunks []*chunk, rulesIn bool) error {
	m := r.m
	if !rulesIn {
		if err := b.installRules(ctx, r); err != nil {
			return err
		}
	}
	// Rows written after the rules went in are right; if the rules went in before the
	// chunks were made, only the rows the fill skipped lack their value.
	byXmin := false
	for _, c := range chunks {
		byXmin = byXmin || !c.rulesFirst
	}
	// Once done, the catch-up is never run again: after the version schema exists, it
	// would overwrite what the new version writes.
	state := qi(m.opts.StateSchema, "backfill_chunks")
	var caughtUpBefore bool
	if err := m.conn.QueryRow(ctx, "SELECT coalesce(bool_and(caught_up), false) FROM "+state+" WHERE schema = $1 AND migration = $2 AND op = $3",
		m.opts.Schema, r.rec.Name, r.op).Scan(&caughtUpBefore); err != nil {
		return err
	}
	if caughtUpBefore {
		return nil
	}
	// The bulk's transactions: the rows they wrote are done.
	xidRows, err := m.conn.Query(ctx, "SELECT x::text FROM "+state+", unnest(xids) AS x WHERE schema = $1 AND migration = $2 AND op = $3",
		m.opts.Schema, r.rec.Name, r.op)
	if err != nil {
		return err
	}
	xids, err := pgx.CollectRows(xidRows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the backfill's transactions: %w", err)
	}
	// Every relation's pages as they are now, in ranges the workers take in turn.
	rels, err := b.relations(ctx, r)
	if err != nil {
		return err
	}
	var ranges []*chunk
	for _, rel := range rels {
		n := max(min(int64(m.opts.BackfillWorkers), rel.pages/minChunkPages), 1)
		for i := range n {
			ranges = append(ranges, &chunk{relation: rel.name, first: rel.pages * i / n, last: rel.pages*(i+1)/n - 1})
		}
	}
	queue := make(chan *chunk, len(ranges))
	for _, c := range ranges {
		queue <- c
	}
	close(queue)
	var caughtUp atomic.Int64
	err = onWorkers(ctx, m, min(len(ranges), m.opts.BackfillWorkers), func(ctx context.Context, w int, conn *pgx.Conn) error {
		th.register(w, conn.PgConn().PID())
		own := slices.Clone(xids)
		for c := range queue {
			updated, err := b.catchUp(ctx, r, conn, c, byXmin, &own, th)
			caughtUp.Add(updated)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := m.conn.Exec(ctx, "UPDATE "+state+" SET caught_up = true, updated_at = now() WHERE schema = $1 AND migration = $2 AND op = $3",
		m.opts.Schema, r.rec.Name, r.op); err != nil {
		return fmt.Errorf("record the backfill's catch-up: %w", err)
	}
	m.log.Info("backfill caught up with the rows written during it", "table", b.table.Name, "column", b.target, "rows", caughtUp.Load())
	return nil
}

// installRules installs the dual-write trigger, then the checks in place of their
// guards, each in a short transaction of its own.
//
// Every statement on the table queues behind a transaction waiting for its lock, and
// creating the trigger waits only for the writers (SHARE ROW EXCLUSIVE), where replacing
// the guards by the checks takes an ACCESS EXCLUSIVE lock. The trigger goes first: the
// checks without it would refuse the old version's rows that lack the target. A row
// written between the two has its target from the trigger but is not yet held to the
// checks: it is like the rows written before the trigger, which the catch-up computes
// again after the checks are in, under them.
func (b *backfill) installRules(ctx context.Context, r *run) error {
	m := r.m
	if len(b.trigger) > 0 {
		if err := m.execLockedConflicting(ctx, b.ruleTables, shareRowExclusive, b.trigger...); err != nil {
			return fmt.Errorf("install the dual-write trigger: %w", err)
		}
	}
	failpoint("start:backfill-trigger")
	if len(b.rules) > 0 {
		if err := m.execLocked(ctx, b.ruleTables, b.rules...); err != nil {
			return fmt.Errorf("install the checks of the backfilled column: %w", err)
		}
	}
	failpoint("start:backfill-rules")
	return nil
}

// catchUp computes the target again for the rows of the pages of range c that need it,
// and returns how many it updated: byXmin, the rows the transactions xids did not write
// (it adds its own transactions to xids); otherwise the rows without a value.
func (b *backfill) catchUp(ctx context.Context, r *run, conn *pgx.Conn, c *chunk, byXmin bool, xids *[]string, th *throttle) (int64, error) {
	cond := pageRange + " AND " + qi(b.target) + " IS NULL"
	args := func(from, to int64) []any { return []any{from, to} }
	if byXmin {
		// NOT IN a subquery, for a hashed lookup whatever the plan and the version.
		cond = pageRange + " AND xmin NOT IN (SELECT unnest($3::text[]::xid[]))"
		args = func(from, to int64) []any { return []any{from, to, *xids} }
	}
	// Most pages hold no row to redo. One read, without locks or throttle, finds the
	// pages that do; the batches, paced by the throttle, go only over them. A row written
	// after the read went through the rules already, so the pages found are all the work.
	pages, err := pagesToRedo(ctx, conn, c, cond, args(c.first, c.last+1))
	if err != nil {
		return 0, err
	}
	var caughtUp int64
	size := int64(1)
	conflicts := 0
	for len(pages) > 0 {
		from := pages[0]
		target, pageCap, err := th.before(ctx)
		if err != nil {
			return caughtUp, err
		}
		if pageCap > 0 {
			size = min(size, pageCap)
		}
		to := min(from+size-1, c.last)
		t0 := time.Now()
		var updated int64
		var xid *string
		retry, err := th.attempt(ctx, &conflicts, func(lockTimeout time.Duration) error {
			bt := batchOf(r, lockTimeout)
			bt.Queue(b.update(c.relation, cond), args(from, to+1)...).Exec(func(tag pgconn.CommandTag) error {
				updated = tag.RowsAffected()
				return nil
			})
			// This batch's own rows, should a later page hold some, are done too.
			bt.Queue("SELECT pg_current_xact_id_if_assigned()::xid::text").QueryRow(func(row pgx.Row) error { return row.Scan(&xid) })
			return conn.SendBatch(ctx, bt).Close()
		})
		if retry {
			size = max(size/4, 1)
			continue
		}
		elapsed := time.Since(t0)
		if err != nil {
			th.release()
			return caughtUp, b.explain(ctx, conn, c.relation, cond, args(from, to+1), err)
		}
		if err := th.after(ctx, to-from+1, updated, elapsed, target); err != nil {
			return caughtUp, err
		}
		if xid != nil {
			*xids = append(*xids, *xid)
		}
		caughtUp += updated
		for len(pages) > 0 && pages[0] <= to {
			pages = pages[1:]
		}
		size = resize(target, size, elapsed)
	}
	return caughtUp, nil
}

// pagesToRedo returns, in order, the pages of range c that hold a row matching cond (a
// condition over the page range $1-$2, with args).
func pagesToRedo(ctx context.Context, conn *pgx.Conn, c *chunk, cond string, args []any) ([]int64, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT (ctid::text::point)[0]::bigint AS page FROM ONLY "+c.relation+
		" WHERE "+cond+" ORDER BY 1", args...)
	if err != nil {
		return nil, fmt.Errorf("find the pages of %s the catch-up must redo: %w", c.relation, err)
	}
	pages, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("find the pages of %s the catch-up must redo: %w", c.relation, err)
	}
	return pages, nil
}

// batchOf begins a backfill batch: statements sent together in one round trip, which
// PostgreSQL runs as one (implicit) transaction, so that a batch holds its row locks for
// no longer than its statements take. Its first statement sets the marker setting, and a
// lock_timeout for the rows the application holds (lockTimeout, or when 0 the default
// for batches). A batch commits without waiting for its WAL to be flushed: a crash may
// lose the last batches, but each saves its cursor in its own transaction, so a lost
// batch is redone.
func batchOf(r *run, lockTimeout time.Duration) *pgx.Batch {
	if lockTimeout <= 0 {
		lockTimeout = max(2*r.m.opts.LockTimeout, time.Second)
	}
	bt := &pgx.Batch{}
	bt.Queue("SELECT set_config($1, 'on', true), set_config('lock_timeout', $2, true), set_config('synchronous_commit', 'off', true)",
		BackfillSetting, fmt.Sprintf("%dms", max(lockTimeout.Milliseconds(), 1)))
	return bt
}

// resize adapts a batch size (in pages) to the target batch duration, given how long
// the last batch took: it doubles a batch that took under half the target, and cuts one
// that overran by the overrun.
func resize(target time.Duration, size int64, elapsed time.Duration) int64 {
	const maxBatch = 25_000 // pages: about 200MB
	switch {
	case elapsed < target/2:
		return min(size*2, maxBatch)
	case elapsed > target*3/2 && size > 1:
		return max(int64(float64(size)*float64(target)/float64(elapsed)), 1)
	}
	return size
}

// maxConflicts is how many times in a row a batch may give up on the application's row
// locks, under an impact's short lock_timeout, before it waits with the default one.
const maxConflicts = 10

// attempt runs a batch, fn, with the lock_timeout it is given. Under an impact with a
// short lock_timeout, a batch that meets the application's row lock gives up soon,
// releasing the rows it locked: attempt frees the batch's slot and says to retry it
// smaller. After maxConflicts in a row (counted in conflicts), or at impact max, the
// batch waits the default lock_timeout, retried by retryTransient.
func (t *throttle) attempt(ctx context.Context, conflicts *int, fn func(lockTimeout time.Duration) error) (retry bool, err error) {
	if *conflicts < maxConflicts && t.p.lockTimeout > 0 {
		err = fn(t.p.lockTimeout)
		if isTransient(err) {
			*conflicts++
			t.conflict()
			return true, nil
		}
	} else {
		err = retryTransient(ctx, func() error { return fn(0) })
	}
	if err == nil {
		*conflicts = 0
	}
	return false, err
}

// fill walks one chunk in batches of pages, adapting the batch size to the target batch
// duration.
func (b *backfill) fill(ctx context.Context, r *run, conn *pgx.Conn, c *chunk, p *backfillProgress) error {
	table := c.relation
	cond := pageRange + " AND " + qi(b.target) + " IS NULL"
	if p.th.p.watch {
		// A batch that yields to the application locks its rows first, skipping those the
		// application holds: it never waits on the application's row locks while holding
		// its own. The rows it skips are filled by the catch-up pass (their last writer
		// is not the backfill), or, if the application updates them, by the trigger.
		cond = "ctid = ANY (ARRAY(SELECT ctid FROM ONLY " + table + " WHERE " + cond + " FOR UPDATE SKIP LOCKED))"
	}
	size := int64(1) // pages; it grows as fast as batches stay short
	th := p.th
	conflicts := 0
	for !c.done() {
		target, pageCap, err := th.before(ctx)
		if err != nil {
			return err
		}
		if pageCap > 0 {
			size = min(size, pageCap)
		}
		from, to := c.next, min(c.next+size-1, c.last)
		t0 := time.Now()
		var updated int64
		retry, err := th.attempt(ctx, &conflicts, func(lockTimeout time.Duration) error {
			var err error
			updated, err = b.batch(ctx, r, conn, table, cond, c, from, to, th, lockTimeout)
			return err
		})
		if retry {
			size = max(size/4, 1)
			continue
		}
		elapsed := time.Since(t0)
		if err != nil {
			th.release()
			return b.explain(ctx, conn, table, cond, []any{from, to + 1}, err)
		}
		r.m.log.Debug("backfill batch", "table", b.table.Name, "chunk", c.id, "pages", to-from+1, "updated", updated, "elapsed", elapsed)
		if err := th.after(ctx, to-from+1, updated, elapsed, target); err != nil {
			return err
		}
		p.advance(c, to+1, updated)
		failpoint("start:backfill-batch")
		size = resize(target, size, elapsed)
	}
	return nil
}

// batch fills the rows of pages from..to and saves the chunk's cursor, the batch's
// transaction ID and the throttle's state, in one transaction. It returns the rows
// updated. It waits on the application's row locks for lockTimeout (0: the default for
// batches).
func (b *backfill) batch(ctx context.Context, r *run, conn *pgx.Conn, table, cond string, c *chunk, from, to int64, th *throttle, lockTimeout time.Duration) (int64, error) {
	m := r.m
	var updated int64
	th.mu.Lock()
	state := throttleJSON(th.state())
	th.mu.Unlock()
	bt := batchOf(r, lockTimeout)
	// The catch-up of a chunk filled before the rules went in redoes the rows the
	// batches' transactions did not write: their IDs are kept. With the rules in place it
	// looks for the rows without a value, and the list, rewritten whole by every batch,
	// would only grow. (Should a chunk made without the rules join them, after a resume
	// at another impact, the catch-up goes by transaction and computes these rows again,
	// to the same values.)
	xids := "xids || pg_current_xact_id()::xid"
	if c.rulesFirst {
		xids = "xids"
	}
	// One statement fills the rows and saves the cursor with the count of rows filled.
	bt.Queue("WITH filled AS ("+b.update(table, cond)+" RETURNING 1), saved AS (UPDATE "+qi(m.opts.StateSchema, "backfill_chunks")+
		" SET next_page = $3, rows_done = rows_done + (SELECT count(*) FROM filled), xids = "+xids+", updated_at = now(), throttle = $8"+
		" WHERE schema = $4 AND migration = $5 AND op = $6 AND chunk = $7)"+
		" SELECT count(*) FROM filled",
		from, to+1, to+1, m.opts.Schema, r.rec.Name, r.op, c.id, state).QueryRow(func(row pgx.Row) error { return row.Scan(&updated) })
	err := conn.SendBatch(ctx, bt).Close()
	return updated, err
}

// pageRange is the condition of a batch: the rows of pages $1 up to (not including) $2.
const pageRange = "ctid >= format('(%s,0)', $1::bigint)::tid AND ctid < format('(%s,0)', $2::bigint)::tid"

// update is a batch's UPDATE of the rows of table (a relation, without its descendants)
// matching cond. When the names the expression
// uses are the physical ones, the expression is computed in place; otherwise (a column
// renamed by an earlier operation of the migration) it is computed over the rows as the
// operation sees them and joined back by ctid.
func (b *backfill) update(table, cond string) string {
	target := qi(b.target)
	renamed := false
	var cols []string
	for _, c := range b.table.Columns {
		renamed = renamed || c.Name != c.Physical
		cols = append(cols, qi(c.Physical)+" AS "+qi(c.Name))
	}
	if !renamed {
		return fmt.Sprintf("UPDATE ONLY %s SET %s = %s WHERE %s", table, target, castTo(b.expr, b.typ), cond)
	}
	return fmt.Sprintf(`UPDATE ONLY %[1]s SET %[2]s = s._tandem_v
		FROM (SELECT _tandem_ctid, %[3]s AS _tandem_v
		        FROM (SELECT ctid AS _tandem_ctid, %[4]s FROM ONLY %[1]s WHERE %[5]s) AS %[6]s) AS s
		WHERE %[1]s.ctid = s._tandem_ctid`, table, target, castTo(b.expr, b.typ), strings.Join(cols, ", "), cond, qi(b.table.Name))
}

// backfillProgress sums the chunks' progress for the Progress callback, which workers
// call one at a time.
type backfillProgress struct {
	b           *backfill
	r           *run
	mu          sync.Mutex
	chunks      []*chunk
	started     time.Time
	doneAtStart int64
	th          *throttle
}

func (p *backfillProgress) rowsDone() int64 {
	var n int64
	for _, c := range p.chunks {
		n += c.rowsDone
	}
	return n
}

// advance records a batch of chunk c and reports the backfill's progress.
func (p *backfillProgress) advance(c *chunk, next, updated int64) {
	p.th.mu.Lock()
	th := p.th.state()
	p.th.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	c.next, c.rowsDone = next, c.rowsDone+updated
	p.report(th)
}

// throttled reports the progress when the throttle starts or stops holding back. The
// throttle calls it holding its own lock (never taken under p.mu).
func (p *backfillProgress) throttled(th BackfillThrottle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.chunks {
		if !c.done() {
			p.report(th)
			return
		}
	}
	// Done was reported already: a report after it would say so again.
}

// report calls the Progress callback, under p.mu.
func (p *backfillProgress) report(th BackfillThrottle) {
	report := p.r.m.opts.Progress
	if report == nil {
		return
	}
	bp := BackfillProgress{Migration: p.r.rec.Name, Table: p.b.table.Name, Column: p.b.target, Throttle: &th}
	bp.RowsDone, bp.RowsTotal, bp.Done = sumChunks(p.chunks)
	bp.Estimate = !bp.Done
	elapsed := time.Since(p.started)
	if secs := elapsed.Seconds(); secs > 0 {
		bp.Rate = float64(bp.RowsDone-p.doneAtStart) / secs
	}
	bp.ETA = eta(bp, elapsed)
	report(bp)
}

// sumChunks sums a backfill's chunks: the rows done, the total (see chunk.total), and
// whether every chunk is done.
func sumChunks(chunks []*chunk) (done, total int64, finished bool) {
	finished = true
	for _, c := range chunks {
		done += c.rowsDone
		total += c.total()
		finished = finished && c.done()
	}
	return done, total, finished
}

// total is the chunk's share of a backfill's total: exact once it is done, the
// estimate until then, never below the rows done.
func (c *chunk) total() int64 {
	if c.done() {
		return c.rowsDone
	}
	return max(c.rowsTotal, c.rowsDone)
}

// etaAfter is how long a backfill runs before its progress gives an ETA: its first
// batches are small (their size grows to the target batch time), and a rate measured
// on them would make the first ETA absurdly long.
const etaAfter = 5 * time.Second

// eta is the time left to backfill bp, at its rate after elapsed; 0 when unknown.
func eta(bp BackfillProgress, elapsed time.Duration) time.Duration {
	if bp.Done || elapsed < etaAfter || bp.Rate <= 0 || bp.RowsTotal <= bp.RowsDone {
		return 0
	}
	return time.Duration(float64(bp.RowsTotal-bp.RowsDone) / bp.Rate * float64(time.Second))
}

// explain turns a failed batch (of the rows matching cond, with args) into an error the
// user can act on: for a row the expression cannot convert, it finds that row (by
// bisecting the batch's rows) and names it by its primary key, or by its ctid in a table
// without one.
func (b *backfill) explain(ctx context.Context, conn *pgx.Conn, table, cond string, args []any, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || isTransient(err) {
		return err
	}
	msg := pe.Message
	if what, ok := b.guards[pe.ConstraintName]; ok {
		msg = "the value breaks " + what
	}
	row := b.badRow(ctx, conn, table, cond, args)
	where := ""
	switch {
	case row != "" && len(b.table.PrimaryKey) > 0:
		where = " at the row with primary key " + row
	case row != "":
		where = " at the row with ctid " + row + " of " + table
	}
	return &BackfillError{Table: b.table.Name, Column: b.target, Expr: b.expr, Row: row,
		Err: fmt.Errorf("backfill of %s.%s with %q failed%s: %s; fix the expression or the data, then run tandem start again to resume (or tandem rollback): %w",
			b.table.Name, b.target, b.expr, where, msg, err)}
}

// BackfillError is returned when the backfill meets a row its expression cannot convert.
// The migration stays in progress: fix the data (or the expression in the file) and run
// start again to resume from where the backfill stopped.
type BackfillError struct {
	Table, Column, Expr string
	// Row names the failing row: its primary key, as "(v1, v2)", or, in a table without
	// one, its ctid, as "(page,item)"; "" when it could not be told.
	Row string
	Err error
}

func (e *BackfillError) Error() string { return e.Err.Error() }
func (e *BackfillError) Unwrap() error { return e.Err }

// badRow returns the first row (in page order) matching cond for which the expression
// fails, or "" when it cannot tell: the row's primary key as text, or its ctid. It tries
// the expression on halves of the rows, never keeping the changes.
func (b *backfill) badRow(ctx context.Context, conn *pgx.Conn, table, cond string, args []any) string {
	name := "ctid::text"
	if pk := b.table.PrimaryKey; len(pk) > 0 {
		var keys []string
		for _, c := range pk {
			keys = append(keys, "coalesce("+qi(c)+"::text, 'NULL')")
		}
		name = "'(' || concat_ws(', ', " + strings.Join(keys, ", ") + ") || ')'"
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT ctid::text, %s FROM ONLY %s WHERE %s ORDER BY ctid LIMIT 200000", name, table, cond), args...)
	if err != nil {
		return ""
	}
	var ctids, names []string
	for rows.Next() {
		var c, n string
		if rows.Scan(&c, &n) != nil {
			rows.Close()
			return ""
		}
		ctids, names = append(ctids, c), append(names, n)
	}
	if rows.Err() != nil || len(ctids) == 0 {
		return ""
	}
	// fails reports whether the expression fails for one of the rows ctids[lo:hi].
	fails := func(lo, hi int) bool {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config($1, 'on', true)", BackfillSetting); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, b.update(table, "ctid = ANY ($1::tid[])"), ctids[lo:hi]); err != nil {
				return err
			}
			return errRollback // a trial: never keep the changes
		})
		return !errors.Is(err, errRollback)
	}
	lo, hi := 0, len(ctids) // the first failing row is in [lo, hi)
	if !fails(lo, hi) {
		return ""
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(lo, mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return names[lo]
}

var errRollback = errors.New("rollback")

// load reads the backfill's chunks, creating them on first use: they cover the pages
// the table has then, and every row in them lacks a value (the rows written later get
// theirs from the catch-up or the trigger).
//
// rulesFirst says the rules are in place: chunks made now record it (see backfill).
func (b *backfill) load(ctx context.Context, r *run, rulesFirst bool) ([]*chunk, error) {
	m := r.m
	state := qi(m.opts.StateSchema, "backfill_chunks")
	read := func() ([]*chunk, error) {
		rows, err := m.conn.Query(ctx, "SELECT chunk, relation, first_page, last_page, next_page, rows_done, rows_total, rules_first FROM "+state+
			" WHERE schema = $1 AND migration = $2 AND op = $3 ORDER BY chunk", m.opts.Schema, r.rec.Name, r.op)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*chunk, error) {
			c := &chunk{}
			err := row.Scan(&c.id, &c.relation, &c.first, &c.last, &c.next, &c.rowsDone, &c.rowsTotal, &c.rulesFirst)
			return c, err
		})
	}
	chunks, err := read()
	if err != nil || len(chunks) > 0 {
		return chunks, err
	}
	rels, err := b.relations(ctx, r)
	if err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, m.conn, func(tx pgx.Tx) error {
		id := 0
		for _, rel := range rels {
			n := max(min(int64(m.opts.BackfillWorkers), rel.pages/minChunkPages), 1)
			for i := range n {
				// An empty relation gets one chunk with no pages: done from the start.
				first, last := rel.pages*i/n, rel.pages*(i+1)/n-1
				share := int64(float64(rel.rows) * float64(last-first+1) / float64(max(rel.pages, 1)))
				if _, err := tx.Exec(ctx, "INSERT INTO "+state+
					" (schema, migration, op, chunk, table_name, column_name, relation, first_page, last_page, next_page, rows_total, rules_first)"+
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, $11)",
					m.opts.Schema, r.rec.Name, r.op, id, b.table.Name, b.target, rel.name, first, last, share, rulesFirst); err != nil {
					return err
				}
				id++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record backfill: %w", err)
	}
	return read()
}

// relation is a table with storage that a backfill fills: the table itself, or one of
// its partitions or inheritance children.
type relation struct {
	name        string // quoted and qualified
	pages, rows int64  // rows: an estimate
}

// relations returns the table and its descendants that hold rows, with their sizes.
func (b *backfill) relations(ctx context.Context, r *run) ([]relation, error) {
	rows, err := r.m.conn.Query(ctx, `
		WITH RECURSIVE tree(oid) AS (
			SELECT $1::regclass::oid
			UNION ALL
			SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
		SELECT n.nspname, c.relname, pg_relation_size(c.oid) / current_setting('block_size')::bigint, greatest(c.reltuples, 0)::bigint
		  FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind = 'r'
		 ORDER BY c.oid`, r.table(b.table.Physical))
	if err != nil {
		return nil, fmt.Errorf("size up the backfill of %s: %w", b.table.Name, err)
	}
	rels, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (relation, error) {
		var schema, name string
		var rel relation
		err := row.Scan(&schema, &name, &rel.pages, &rel.rows)
		rel.name = qi(schema, name)
		return rel, err
	})
	if err != nil {
		return nil, fmt.Errorf("size up the backfill of %s: %w", b.table.Name, err)
	}
	for i, rel := range rels {
		if rel.rows == 0 && rel.pages > 0 {
			// Never analyzed: count.
			if err := r.m.conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+rel.name).Scan(&rels[i].rows); err != nil {
				return nil, err
			}
		}
	}
	return rels, nil
}

func isTransient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "55P03", "40P01", "40001": // lock timeout, deadlock, serialization failure
		return true
	}
	return false
}

// retryTransient retries fn on lock timeouts and deadlocks, a bounded number of times.
func retryTransient(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = fn(); err == nil || !isTransient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}
