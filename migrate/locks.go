package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session describes a database session, for messages about who blocks whom.
type Session struct {
	PID             int
	ApplicationName string
	User            string
	ClientAddr      string
	State           string
	XactAge         time.Duration
	Query           string

	// vxid is the virtual transaction holding a lock, and ageHidden is set when
	// PostgreSQL hides its transaction's start from us (a session of another role,
	// without pg_read_all_stats): lockedTx then times the lock itself.
	vxid      string
	ageHidden bool
}

func (s Session) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", s.PID)
	if s.User != "" {
		fmt.Fprintf(&b, " (user %s", s.User)
		if s.ApplicationName != "" {
			fmt.Fprintf(&b, ", application %q", s.ApplicationName)
		}
		if s.ClientAddr != "" {
			fmt.Fprintf(&b, ", from %s", s.ClientAddr)
		}
		b.WriteString(")")
	}
	if s.State != "" {
		fmt.Fprintf(&b, ", %s", s.State)
	}
	if s.XactAge > 0 {
		fmt.Fprintf(&b, ", transaction open for %s", s.XactAge.Round(time.Millisecond))
	}
	if q := strings.Join(strings.Fields(s.Query), " "); q != "" {
		if len(q) > 120 {
			q = q[:120] + "…"
		}
		fmt.Fprintf(&b, ", last query: %s", q)
	}
	return b.String()
}

// LockError is returned when a table could not be locked within the retry budget. Nothing
// of the step that needed the lock was applied.
type LockError struct {
	Tables   []string
	Attempts int
	// Timeout is the longest lock_timeout of an attempt: the first attempts wait less
	// (see Options.LockTimeout).
	Timeout  time.Duration
	Blockers []Session
}

func (e *LockError) Error() string {
	msg := fmt.Sprintf("could not lock %s after %d attempts (lock_timeout up to %s each)",
		strings.Join(e.Tables, ", "), e.Attempts, e.Timeout)
	if len(e.Blockers) == 0 {
		return msg + "; the table is busy: retry later, or raise --lock-timeout"
	}
	var bs []string
	for _, b := range e.Blockers {
		bs = append(bs, b.String())
	}
	return msg + "; blocked by " + strings.Join(bs, "; ") +
		fmt.Sprintf(". Retry when it has finished, or end it with SELECT pg_terminate_backend(%d)", e.Blockers[0].PID)
}

// lockPolicy says how DDL waits for locks.
//
// A queued ACCESS EXCLUSIVE request blocks every statement on the table behind it for as
// long as it waits: an attempt that waits its whole lock_timeout stalls the application
// that long. So attempts begin short (firstTimeout) and are retried after a jittered
// backoff, their lock_timeout doubling every two attempts up to timeout: on a busy table
// of short statements the lock comes within a short wait, and only a table whose
// statements run longer makes the waits grow.
type lockPolicy struct {
	firstTimeout time.Duration // lock_timeout of the first attempts
	timeout      time.Duration // the longest lock_timeout of an attempt
	attempts     int           // attempts in all
	backoffBase  time.Duration
	backoffMax   time.Duration
	// longTxn: a session that has held a lock on the table for longer than this makes
	// us wait without queueing (a queued ACCESS EXCLUSIVE request blocks everyone).
	longTxn time.Duration
}

// attemptTimeout is the lock_timeout of attempt (0-based): firstTimeout, doubled every
// two attempts, at most timeout.
func (p lockPolicy) attemptTimeout(attempt int) time.Duration {
	d := p.firstTimeout
	if d <= 0 || d > p.timeout {
		return p.timeout
	}
	for i := 1; i < attempt/2+1 && d < p.timeout; i++ {
		d *= 2
	}
	return min(d, p.timeout)
}

func (p lockPolicy) backoff(attempt int) time.Duration {
	d := p.backoffBase << attempt
	if d > p.backoffMax || d <= 0 {
		d = p.backoffMax
	}
	// Jitter in [d/2, d): two runs retrying together spread out.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// holders returns the other sessions holding a granted lock on any of the tables, oldest
// transaction first; with minAge > 0 only those whose transaction is older than minAge
// or of unknown age (ageHidden), autovacuum aside;
// with modes, only locks of those modes (e.g. "AccessExclusiveLock").
func holders(ctx context.Context, q querier, tables []string, minAge time.Duration, modes ...string) ([]Session, error) {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
		       coalesce(host(a.client_addr), ''), coalesce(a.state, ''),
		       coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8, coalesce(a.query, ''),
		       coalesce(l.virtualtransaction, ''), a.xact_start IS NULL
		  FROM pg_locks l
		  JOIN pg_stat_activity a ON a.pid = l.pid
		 WHERE l.granted AND l.locktype = 'relation'
		   AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)
		   AND a.pid <> pg_backend_pid()
		   AND (a.xact_start IS NULL OR extract(epoch FROM now() - a.xact_start) >= $2)
		   -- Looking for long transactions, leave out autovacuum (a process without a role):
		   -- it gives way to a lock request, unless it runs to prevent wraparound.
		   AND ($2 = 0 OR a.usesysid IS NOT NULL OR coalesce(a.query, '') LIKE '%to prevent wraparound%')
		   AND (coalesce(cardinality($3::text[]), 0) = 0 OR l.mode = ANY ($3::text[]))
		 ORDER BY 6 DESC`, tables, minAge.Seconds(), modes)
	if err != nil {
		return nil, fmt.Errorf("look for sessions holding locks on %s: %w", strings.Join(tables, ", "), err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var s Session
		var age float64
		if err := rows.Scan(&s.PID, &s.ApplicationName, &s.User, &s.ClientAddr, &s.State, &age, &s.Query, &s.vxid, &s.ageHidden); err != nil {
			return nil, err
		}
		s.XactAge = time.Duration(age * float64(time.Second))
		out = append(out, s)
	}
	return out, rows.Err()
}

// lockedTx runs fn in a transaction whose statements wait at most the policy's
// lock_timeout for each lock. On a lock timeout the transaction is rolled back (so nothing
// of it is applied) and retried after a backoff, up to the policy's number of attempts.
// Before each attempt it looks for long transactions holding locks on the tables and waits
// for them instead of queueing behind them. tables are qualified, quoted table names.
func (m *Migrator) lockedTx(ctx context.Context, tables []string, fn func(tx pgx.Tx) error) error {
	return m.lockedTxConflicting(ctx, tables, nil, fn)
}

// sharedOnly are the lock modes that conflict with an ACCESS SHARE lock: what reading a
// table, or creating a view over it, must wait for.
var sharedOnly = []string{"AccessExclusiveLock"}

// shareRowExclusive are the lock modes that conflict with a SHARE ROW EXCLUSIVE lock:
// what creating a trigger must wait for (writers, not readers).
var shareRowExclusive = []string{"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
	"ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}

// lockCheck is what a locking transaction waits for on some of its tables: the locks
// others hold there in the given modes (nil: any mode, as ACCESS EXCLUSIVE does).
type lockCheck struct {
	tables, modes []string
}

// lockedTxConflicting is lockedTx for a transaction whose locks on the tables conflict
// only with locks of the given modes held by others (nil: with every mode, as ACCESS
// EXCLUSIVE does): only those make it wait, and only those are named as blockers.
func (m *Migrator) lockedTxConflicting(ctx context.Context, tables, modes []string, fn func(tx pgx.Tx) error) error {
	if m.dry != nil {
		m.dry.transaction([]lockCheck{{tables, modes}}, []string{"-- statements computed while the transaction runs"})
		return nil
	}
	return m.retryLocked(ctx, []lockCheck{{tables, modes}}, func(timeout time.Duration) error {
		return pgx.BeginFunc(ctx, m.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", fmt.Sprintf("%dms", timeout.Milliseconds())); err != nil {
				return err
			}
			return fn(tx)
		})
	})
}

// retryLocked runs attempt, a transaction that waits at most the lock_timeout it is given
// for each lock, under the lock policy: on a lock timeout (the transaction rolled back,
// nothing of it applied) it is retried after a backoff, up to the policy's number of
// attempts. Before each attempt it looks for long transactions holding locks on the
// checks' tables (of their modes) and waits for them instead of queueing behind them.
func (m *Migrator) retryLocked(ctx context.Context, checks []lockCheck, attempt func(timeout time.Duration) error) error {
	p := m.locks
	var tables []string
	for _, c := range checks {
		tables = append(tables, c.tables...)
	}
	held := func(minAge time.Duration) ([]Session, error) {
		var all []Session
		for _, c := range checks {
			if len(c.tables) == 0 {
				continue
			}
			hs, err := holders(ctx, m.conn, c.tables, minAge, c.modes...)
			if err != nil {
				return nil, err
			}
			all = append(all, hs...)
		}
		return all, nil
	}
	var blockers []Session
	// When the holders' transaction start is hidden from us, a holder is long once it has
	// held its lock for longTxn under our eyes: when each was first seen.
	seen := map[string]time.Time{}
	mayCancel := true
	for n := 0; n < p.attempts; n++ {
		if n > 0 {
			wait := p.backoff(n - 1)
			m.log.Info("waiting for lock", "tables", tables, "attempt", n+1, "of", p.attempts, "backoff", wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		if len(tables) > 0 {
			hs, err := held(p.longTxn)
			if err != nil {
				return err
			}
			var long []Session
			for _, h := range hs {
				if !h.ageHidden {
					long = append(long, h)
				} else if first, ok := seen[h.vxid]; !ok {
					seen[h.vxid] = time.Now()
				} else if time.Since(first) >= p.longTxn {
					long = append(long, h)
				}
			}
			if len(long) > 0 {
				blockers = long
				m.log.Info("long transaction holds a lock on the table; not queueing behind it", "tables", tables, "blocker", long[0].String())
				continue
			}
		}
		// Only right before an attempt: a vacuum cancelled while we wait for a long
		// transaction would have done its work for nothing.
		if len(tables) > 0 && mayCancel {
			for _, c := range checks {
				if len(c.tables) == 0 {
					continue
				}
				ok, err := m.cancelAutovacuum(ctx, c.tables, c.modes)
				if err != nil {
					return err
				}
				mayCancel = mayCancel && ok
			}
		}
		err := attempt(p.attemptTimeout(n))
		if err == nil {
			return nil
		}
		if !isLockTimeout(err) {
			return err
		}
		if bs, herr := held(0); herr == nil && len(bs) > 0 {
			blockers = bs
		}
	}
	return &LockError{Tables: tables, Attempts: p.attempts, Timeout: p.timeout, Blockers: blockers}
}

// cancelAutovacuum cancels the autovacuum workers that hold a lock on any of the tables
// in one of modes (nil: any), except those that run to prevent wraparound. It returns
// false when the role may not cancel them (only a superuser may, before PostgreSQL 18's
// pg_signal_autovacuum_worker). A role that may not see other roles' sessions (neither
// superuser nor pg_read_all_stats) sees no worker and cancels none.
//
// PostgreSQL cancels such a worker itself once a lock request has waited on it for
// deadlock_timeout (1s by default). Our attempts wait less than that, to keep the
// application from queueing behind them, so they would time out again and again behind
// a vacuum that was ready to give way: after a backfill has updated every row of a table,
// autovacuum is all but certain to be at work on it when the rules go in.
//
// The workers are found and cancelled in one statement, so that a process ID cannot pass
// from a worker that has just ended to another session in between.
func (m *Migrator) cancelAutovacuum(ctx context.Context, tables, modes []string) (bool, error) {
	rows, err := m.conn.Query(ctx, `
		SELECT w.pid, w.query, pg_cancel_backend(w.pid)
		  FROM (SELECT DISTINCT a.pid, a.query
		          FROM pg_locks l
		          JOIN pg_stat_activity a ON a.pid = l.pid
		         WHERE l.granted AND l.locktype = 'relation'
		           AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)
		           AND a.backend_type = 'autovacuum worker'
		           AND a.query LIKE 'autovacuum:%'
		           AND a.query NOT LIKE '%to prevent wraparound%'
		           AND (coalesce(cardinality($2::text[]), 0) = 0 OR l.mode = ANY ($2::text[]))) w`, tables, modes)
	if err != nil {
		return false, fmt.Errorf("cancel autovacuum workers holding locks on %s: %w", strings.Join(tables, ", "), err)
	}
	type worker struct {
		pid       int
		query     string
		cancelled bool
	}
	workers, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (worker, error) {
		var w worker
		return w, row.Scan(&w.pid, &w.query, &w.cancelled)
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" {
			m.log.Info("autovacuum holds a lock on the table and this role may not cancel it; waiting for it", "tables", tables)
			return false, nil
		}
		return false, fmt.Errorf("cancel autovacuum workers holding locks on %s: %w", strings.Join(tables, ", "), err)
	}
	for _, w := range workers {
		if w.cancelled {
			m.log.Info("cancelled autovacuum holding a lock on the table (the server would, after deadlock_timeout)", "tables", tables, "pid", w.pid, "query", w.query)
		}
	}
	return true, nil
}

// execLocked runs statements in one lock-safe transaction (see lockedTx).
func (m *Migrator) execLocked(ctx context.Context, tables []string, stmts ...string) error {
	return m.execLockedConflicting(ctx, tables, nil, stmts...)
}

// execLockedConflicting is execLocked for statements whose locks conflict only with the
// given modes (see lockedTxConflicting).
//
// The statements go to the server in one round trip, as one implicit transaction that
// commits at its end (see execPipelined): the locks they take are held for as long as
// the server takes to run them, not for round trips to the client besides.
func (m *Migrator) execLockedConflicting(ctx context.Context, tables, modes []string, stmts ...string) error {
	checks := []lockCheck{{tables, modes}}
	if m.dry != nil {
		m.dry.transaction(checks, stmts)
		return nil
	}
	for _, s := range stmts {
		m.log.Debug("exec", "sql", s)
	}
	return m.retryLocked(ctx, checks, func(timeout time.Duration) error {
		return execPipelined(ctx, m.conn, timeout, stmts...)
	})
}

// execPipelined runs stmts (each a single statement without parameters) in one round
// trip, as one implicit transaction with the given lock_timeout: the extended protocol's
// messages of every statement, then one Sync, which commits. A failing statement rolls
// the whole transaction back; its error names it.
func execPipelined(ctx context.Context, conn *pgx.Conn, lockTimeout time.Duration, stmts ...string) error {
	if len(stmts) == 0 {
		return nil
	}
	b := &pgconn.Batch{}
	b.ExecParams("SELECT set_config('lock_timeout', $1, true)", [][]byte{[]byte(fmt.Sprintf("%dms", max(lockTimeout.Milliseconds(), 1)))}, nil, nil, nil)
	for _, s := range stmts {
		b.ExecParams(s, nil, nil, nil, nil)
	}
	what := func(i int) string {
		if i == 0 {
			return "set lock_timeout"
		}
		if i-1 < len(stmts) {
			return firstLine(stmts[i-1])
		}
		return "commit"
	}
	mrr := conn.PgConn().ExecBatch(ctx, b)
	var first error
	i := 0
	for mrr.NextResult() {
		if _, err := mrr.ResultReader().Close(); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", what(i), err)
		}
		i++
	}
	if err := mrr.Close(); err != nil && first == nil {
		first = fmt.Errorf("%s: %w", what(i), err)
	}
	return first
}

// execConcurrently runs a CREATE/DROP INDEX CONCURRENTLY statement outside a transaction,
// retrying on lock timeouts. Before each attempt an INVALID index of that name, left by an
// earlier failed or killed build, is dropped.
func (m *Migrator) execConcurrently(ctx context.Context, schema, index, stmt string) error {
	if m.dry != nil {
		m.dry.concurrently(stmt)
		return nil
	}
	return m.execOutsideTx(ctx, stmt,
		func() error { return m.dropInvalidIndex(ctx, schema, index) },
		// A failed build leaves an INVALID index; drop it so a rerun starts clean.
		func() { _ = m.dropInvalidIndex(ctx, schema, index) })
}

// execOutsideTx runs one statement outside a transaction under the policy's lock_timeout,
// retrying it after a backoff on a lock timeout, up to the policy's number of attempts.
// before (if not nil) runs before each attempt; failed (if not nil) after an attempt that
// failed for another reason than a lock timeout, before the error is returned.
func (m *Migrator) execOutsideTx(ctx context.Context, stmt string, before func() error, failed func()) error {
	p := m.locks
	var lastErr error
	for attempt := 0; attempt < p.attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(p.backoff(attempt - 1)):
			}
		}
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		if _, err := m.conn.Exec(ctx, "SELECT set_config('lock_timeout', $1, false)", fmt.Sprintf("%dms", p.timeout.Milliseconds())); err != nil {
			return err
		}
		m.log.Debug("exec", "sql", stmt)
		_, err := m.conn.Exec(ctx, stmt)
		_, _ = m.conn.Exec(ctx, "RESET lock_timeout")
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("%s: %w", firstLine(stmt), err)
		if !isLockTimeout(err) {
			if failed != nil {
				failed()
			}
			return lastErr
		}
	}
	return fmt.Errorf("after %d attempts: %w", p.attempts, lastErr)
}

// indexState reports whether an index exists and whether it is valid.
func (m *Migrator) indexState(ctx context.Context, schema, index string) (exists, valid bool, err error) {
	err = m.conn.QueryRow(ctx, `
		SELECT true, x.indisvalid FROM pg_index x
		  JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
		 WHERE n.nspname = $1 AND i.relname = $2`, schema, index).Scan(&exists, &valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	return exists, valid, err
}

func (m *Migrator) dropInvalidIndex(ctx context.Context, schema, index string) error {
	exists, valid, err := m.indexState(ctx, schema, index)
	if err != nil || !exists || valid {
		return err
	}
	m.log.Info("dropping INVALID index left by an earlier failed build", "index", index)
	if _, err := m.conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(schema, index)); err != nil {
		return fmt.Errorf("drop invalid index %s: %w", index, err)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// readSchemaLocked reads the logical schema's tables (see readSchema) under the lock
// policy: reading a column default takes an ACCESS SHARE lock on its table, so a session
// holding an ACCESS EXCLUSIVE lock must make the read give up with a *LockError naming it,
// not wait for it forever.
func (m *Migrator) readSchemaLocked(ctx context.Context) (*Schema, error) {
	rows, err := m.conn.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, m.opts.Schema)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var s *Schema
	err = m.lockedTxConflicting(ctx, tables, sharedOnly, func(tx pgx.Tx) error {
		var err error
		s, err = readSchema(ctx, tx, m.opts.Schema)
		return err
	})
	return s, err
}
