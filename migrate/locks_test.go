package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

// logBuffer collects a Migrator's log lines, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func withLog(b *logBuffer) func(*Options) {
	return func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(b, nil)) }
}

// lockWaitLines are the log messages of the engine waiting for a table lock.
func lockWaits(b *logBuffer) int {
	return b.count("waiting for lock") + b.count("long transaction holds a lock")
}

// blocker is another session holding an open transaction with a lock on a table.
type blocker struct {
	t    *testing.T
	conn *pgx.Conn
	pid  int
	open bool
}

// block opens a session that runs stmts in a transaction and keeps it open.
func block(t *testing.T, url string, stmts ...string) *blocker {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	b := &blocker{t: t, conn: conn, pid: int(conn.PgConn().PID()), open: true}
	t.Cleanup(func() { conn.Close(context.Background()) })
	mustExec(t, conn, "BEGIN")
	for _, s := range stmts {
		mustExec(t, conn, s)
	}
	return b
}

// release ends the blocker's transaction.
func (b *blocker) release() {
	b.t.Helper()
	if b.open {
		mustExec(b.t, b.conn, "ROLLBACK")
		b.open = false
	}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const lockTestTable = `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
	INSERT INTO items (name, qty) SELECT 'n' || i, i FROM generate_series(1, 100) i;
	CREATE TABLE other (id bigserial PRIMARY KEY, label text);
	INSERT INTO other (label) SELECT 'l' || i FROM generate_series(1, 10) i`

// The blocking transactions of the lock tests: each holds a lock that conflicts with the
// ACCESS EXCLUSIVE lock ALTER TABLE needs.
var blockingTxns = []struct {
	name  string
	stmts []string
}{
	{"lock table", []string{"LOCK TABLE items IN ACCESS SHARE MODE"}},
	{"open transaction that read the table", []string{"SELECT count(*) FROM items"}},
}

func TestStartWaitsForLockThenSucceeds(t *testing.T) {
	for _, bt := range blockingTxns {
		t.Run(bt.name, func(t *testing.T) {
			ctx := context.Background()
			var logs logBuffer
			e := newEnv(t, withLog(&logs))
			e.exec(lockTestTable)
			b := block(t, e.url, bt.stmts...)

			done := make(chan error, 1)
			go func() {
				done <- e.m.Start(ctx, e.parse(`{"name": "02_price", "operations": [{"add_column": {"table": "items",
					"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`))
			}()
			// Let start meet the lock and back off at least twice, then release it.
			waitFor(t, "start to wait for the lock", func() bool { return lockWaits(&logs) >= 2 })
			// Behind a long transaction start waits outside the lock queue: a queued ACCESS
			// EXCLUSIVE request would block every reader and writer of the table.
			pid := e.m.Conn().PgConn().PID()
			for range 20 {
				if n := queryString(t, e.db, "SELECT count(*)::text FROM pg_locks WHERE pid = $1 AND NOT granted", pid); n != "0" {
					t.Fatalf("start queues for a lock behind a long transaction")
				}
				time.Sleep(10 * time.Millisecond)
			}
			mustExec(t, e.db, "INSERT INTO items (name, qty) VALUES ('during', 1)")
			select {
			case err := <-done:
				t.Fatalf("start returned while the table was locked: %v", err)
			default:
			}
			b.release()
			if err := <-done; err != nil {
				t.Fatalf("start after the lock was released: %v", err)
			}
			if n := queryString(t, e.version("02_price"), "SELECT count(*)::text FROM items WHERE price = qty * 2"); n != "101" {
				t.Fatalf("%s rows backfilled, want 100", n)
			}
			mustExec(t, e.db, "INSERT INTO items (name, qty) VALUES ('old', 3)")
			e.complete()
			e.assertNoLeftovers("public_02_price")
		})
	}
}

func TestStartGivesUpOnLockAndRollsBackCleanly(t *testing.T) {
	for _, bt := range blockingTxns {
		t.Run(bt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, func(o *Options) { o.LockAttempts = 4 })
			e.exec(lockTestTable)
			beforeItems, beforeOther := e.columns("public", "items"), e.columns("public", "other")
			b := block(t, e.url, bt.stmts...)

			// Operation 0 (on other) goes through; operation 1 (on items) cannot get its lock.
			mig := e.parse(`{"name": "02_two", "operations": [
				{"add_column": {"table": "other", "up": "upper(label)", "column": {"name": "code", "type": "text"}}},
				{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`)
			err := e.m.Start(ctx, mig)
			var le *LockError
			if !errors.As(err, &le) {
				t.Fatalf("start: err = %v, want a *LockError", err)
			}
			if want := fmt.Sprintf("pid %d", b.pid); !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name the blocking session (%s): %v", want, err)
			}
			if len(le.Blockers) == 0 || le.Blockers[0].PID != b.pid {
				t.Errorf("LockError.Blockers = %+v, want pid %d first", le.Blockers, b.pid)
			}
			// Nothing of the failed step is applied; the old version keeps working.
			if cols := e.columns("public", "items"); cols != beforeItems {
				t.Errorf("items changed by the failed step: %s", cols)
			}
			mustExec(t, e.db, "INSERT INTO items (name, qty) VALUES ('old', 1)")
			mustExec(t, e.db, "INSERT INTO other (label) VALUES ('old')")
			mustExec(t, e.db, "UPDATE other SET label = 'x' WHERE id = 1")
			if v := queryString(t, e.db, "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'public_02_two'"); v != "0" {
				t.Errorf("the version schema exists after a failed start")
			}

			// Rollback meets the same lock and gives up too, leaving a state it can resume.
			if err := e.m.Rollback(ctx); !errors.As(err, &le) {
				t.Errorf("rollback while the table is locked: err = %v, want a *LockError", err)
			}
			b.release()
			e.rollback()
			e.assertNoLeftovers()
			if cols := e.columns("public", "items"); cols != beforeItems {
				t.Errorf("items after rollback: %s, want %s", cols, beforeItems)
			}
			if cols := e.columns("public", "other"); cols != beforeOther {
				t.Errorf("other after rollback: %s, want %s", cols, beforeOther)
			}
			if v := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_two' ORDER BY id DESC LIMIT 1"); v != StatusRolledBack {
				t.Errorf("status after rollback = %s", v)
			}
			// And the migration can be started again once the table is free.
			e.start(`{"name": "02_two", "operations": [
				{"add_column": {"table": "other", "up": "upper(label)", "column": {"name": "code", "type": "text"}}},
				{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`)
			if n := queryString(t, e.version("02_two"), "SELECT count(*)::text FROM other WHERE code IS DISTINCT FROM upper(label)"); n != "0" {
				t.Errorf("%s rows of other not backfilled", n)
			}
		})
	}
}

// TestConcurrentStarts runs two starts at the same moment: exactly one takes the schema's
// lock and proceeds; the other fails at once with ErrBusy naming the holder. A table lock
// held by a third session keeps the winner busy long enough to look.
func TestConcurrentStarts(t *testing.T) {
	const first = `{"name": "02_price", "operations": [{"add_column": {"table": "items",
		"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`
	for _, tc := range []struct {
		name   string
		second string
	}{
		{"same migration", first},
		{"different migration", `{"name": "02_other", "operations": [{"add_column": {"table": "items",
			"column": {"name": "note", "type": "text", "nullable": true}}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.exec(lockTestTable)
			b := block(t, e.url, "LOCK TABLE items IN ACCESS SHARE MODE")

			ms := []*Migrator{e.m, e.open()}
			migs := []*Migration{e.parse(first), e.parse(tc.second)}
			errs := make([]chan error, 2)
			var ready sync.WaitGroup
			ready.Add(2)
			gate := make(chan struct{})
			for i := range ms {
				errs[i] = make(chan error, 1)
				go func() {
					ready.Done()
					<-gate
					errs[i] <- ms[i].Start(ctx, migs[i])
				}()
			}
			ready.Wait()
			close(gate)

			// One of them holds the advisory lock and waits for the table lock.
			holder := -1
			waitFor(t, "a start to take the migration lock", func() bool {
				for i, m := range ms {
					var n int
					if err := e.db.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1",
						m.Conn().PgConn().PID()).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n > 0 {
						holder = i
						return true
					}
				}
				return false
			})
			loser := 1 - holder
			var err error
			select {
			case err = <-errs[loser]:
			case <-time.After(30 * time.Second):
				t.Fatalf("the second start did not fail at once: it waits for the first")
			}
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("second start: err = %v, want ErrBusy", err)
			}
			if want := fmt.Sprintf("pid %d", ms[holder].Conn().PgConn().PID()); !strings.Contains(err.Error(), want) {
				t.Errorf("ErrBusy does not name the holder (%s): %v", want, err)
			}
			// Complete and rollback are refused the same way while the holder runs.
			other := ms[loser]
			if err := other.Complete(ctx); !errors.Is(err, ErrBusy) {
				t.Errorf("complete during a start: err = %v, want ErrBusy", err)
			}
			if err := other.Rollback(ctx); !errors.Is(err, ErrBusy) {
				t.Errorf("rollback during a start: err = %v, want ErrBusy", err)
			}
			select {
			case err := <-errs[holder]:
				t.Fatalf("the holder returned while the table was locked: %v", err)
			default:
			}

			b.release()
			if err := <-errs[holder]; err != nil {
				t.Fatalf("the start holding the lock: %v", err)
			}
			var names []string
			names = queryStrings(t, e.db, "SELECT name || ':' || status FROM tandem.migrations ORDER BY id")
			if want := migs[holder].Name + ":" + StatusStarted; len(names) != 1 || names[0] != want {
				t.Errorf("migrations = %v, want [%s]", names, want)
			}
			if err := other.Complete(ctx); err != nil {
				t.Fatalf("complete once the start is done: %v", err)
			}
			e.assertNoLeftovers(VersionSchema("public", migs[holder].Name))
		})
	}
}

// TestStartGivesUpOnExclusiveLock: a session holding an ACCESS EXCLUSIVE lock (an ALTER
// TABLE left in an open transaction) blocks even reading the table's definition. Start
// must not wait for it forever, nor blame the file: it fails with a *LockError naming the
// session, and nothing is applied.
func TestStartGivesUpOnExclusiveLock(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockAttempts = 3 })
	e.exec(lockTestTable)
	before := e.columns("public", "items")
	b := block(t, e.url, "LOCK TABLE items IN ACCESS EXCLUSIVE MODE")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := e.m.Start(ctx, e.parse(`{"name": "02_price", "operations": [{"add_column": {"table": "items",
		"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`))
	var le *LockError
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		t.Fatalf("a lock held by another session is reported as a problem of the file: %v", err)
	case !errors.As(err, &le):
		t.Fatalf("start: err = %v, want a *LockError", err)
	}
	if want := fmt.Sprintf("pid %d", b.pid); !strings.Contains(err.Error(), want) {
		t.Errorf("error does not name the blocking session (%s): %v", want, err)
	}
	b.release()
	if err := e.m.Rollback(context.Background()); err != nil && !errors.Is(err, ErrNoActiveMigration) {
		t.Fatalf("rollback: %v", err)
	}
	e.assertNoLeftovers()
	if cols := e.columns("public", "items"); cols != before {
		t.Errorf("items: %s, want %s", cols, before)
	}
}

// TestLongReaderOfAnotherTableDoesNotBlockStart: a long read-only transaction (a report, a
// pg_dump) holds ACCESS SHARE locks; they conflict with nothing a migration of another
// table needs, so start must not wait for it.
func TestLongReaderOfAnotherTableDoesNotBlockStart(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockAttempts = 3 })
	e.exec(lockTestTable)
	b := block(t, e.url, "SELECT count(*) FROM other")
	defer b.release()
	// Old enough to count as a long transaction for the lock policy.
	time.Sleep(2 * e.m.opts.LockTimeout)
	e.start(`{"name": "02_price", "operations": [{"add_column": {"table": "items",
		"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`)
	// Reading through the new version works while the reader is still there.
	if n := queryString(t, e.version("02_price"), "SELECT count(*)::text FROM other"); n != "10" {
		t.Errorf("new version sees %s rows of other", n)
	}
}

// TestBusyNamesTheHolderInThisDatabase: advisory locks are per database, so a run on the
// same schema name in another database of the server neither blocks a start nor is named
// as its holder.
func TestBusyNamesTheHolderInThisDatabase(t *testing.T) {
	ctx := context.Background()
	const doc = `{"name": "02_price", "operations": [{"add_column": {"table": "items",
		"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`
	var envs []*testEnv
	var blockers []*blocker
	var done []chan error
	for range 2 {
		e := newEnv(t)
		e.exec(lockTestTable)
		b := block(t, e.url, "LOCK TABLE items IN ACCESS SHARE MODE")
		ch := make(chan error, 1)
		go func() { ch <- e.m.Start(ctx, e.parse(doc)) }()
		waitFor(t, "the start to take the migration lock", func() bool {
			var n int
			if err := e.db.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1",
				e.m.Conn().PgConn().PID()).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		})
		envs, blockers, done = append(envs, e), append(blockers, b), append(done, ch)
	}
	for i, e := range envs {
		err := e.open().Start(ctx, e.parse(doc))
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("database %d: err = %v, want ErrBusy", i, err)
		}
		holder, other := e.m.Conn().PgConn().PID(), envs[1-i].m.Conn().PgConn().PID()
		if !strings.Contains(err.Error(), fmt.Sprintf("pid %d ", holder)) || strings.Contains(err.Error(), fmt.Sprintf("pid %d ", other)) {
			t.Errorf("database %d: ErrBusy should name pid %d (not %d of the other database): %v", i, holder, other, err)
		}
	}
	for i := range envs {
		blockers[i].release()
		if err := <-done[i]; err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
}

// TestCompleteGivesUpOnLockAndResumes: complete meets a session of the old version in a
// long transaction (its views are locked) or a lock on the table; it gives up with a
// *LockError naming the session, and a rerun finishes once the session is gone.
func TestCompleteGivesUpOnLockAndResumes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stmts []string
	}{
		{"old version reading its view", []string{"SET search_path = public_01_items", "SELECT count(*) FROM items"}},
		{"lock on the table", []string{"LOCK TABLE public.items IN ACCESS SHARE MODE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, func(o *Options) { o.LockAttempts = 3 })
			e.start(`{"name": "01_items", "operations": [{"create_table": {"name": "items", "columns": [
				{"name": "id", "type": "bigserial", "pk": true}, {"name": "qty", "type": "int"}]}}]}`)
			e.complete()
			mustExec(t, e.version("01_items"), "INSERT INTO items (qty) SELECT i FROM generate_series(1, 100) i")
			e.start(`{"name": "02_price", "operations": [{"add_column": {"table": "items",
				"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`)
			b := block(t, e.url, tc.stmts...)

			err := e.m.Complete(ctx)
			var le *LockError
			if !errors.As(err, &le) {
				t.Fatalf("complete: err = %v, want a *LockError", err)
			}
			if want := fmt.Sprintf("pid %d", b.pid); !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name the blocking session (%s): %v", want, err)
			}
			// The new version keeps working meanwhile.
			mustExec(t, e.version("02_price"), "INSERT INTO items (qty, price) VALUES (1, 5)")
			b.release()
			e.complete()
			if cols := e.columns("public", "items"); cols != "id bigint not null, qty integer not null, price numeric not null" {
				t.Errorf("after complete: %s", cols)
			}
			e.assertNoLeftovers("public_02_price")
		})
	}
}

// TestStartResumesAfterLockError: a start that gave up on a lock half-way (operation 0
// applied, operation 1 not) is finished by running start again once the lock is gone.
func TestStartResumesAfterLockError(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.LockAttempts = 3 })
	e.exec(lockTestTable)
	const doc = `{"name": "02_two", "operations": [
		{"add_column": {"table": "other", "up": "upper(label)", "column": {"name": "code", "type": "text"}}},
		{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`
	b := block(t, e.url, "LOCK TABLE items IN ACCESS SHARE MODE")
	var le *LockError
	if err := e.m.Start(ctx, e.parse(doc)); !errors.As(err, &le) {
		t.Fatalf("start: err = %v, want a *LockError", err)
	}
	if err := e.m.Complete(ctx); err == nil {
		t.Fatalf("complete of a start that did not finish succeeded")
	}
	// The old version writes in between: rows the resumed start must fill too.
	mustExec(t, e.db, "INSERT INTO items (name, qty) VALUES ('old', 7)")
	mustExec(t, e.db, "INSERT INTO other (label) VALUES ('old')")
	b.release()
	e.start(doc)
	v2 := e.version("02_two")
	if n := queryString(t, v2, "SELECT count(*)::text FROM items WHERE price IS DISTINCT FROM qty * 2"); n != "0" {
		t.Errorf("%s rows of items not backfilled", n)
	}
	if n := queryString(t, v2, "SELECT count(*)::text FROM other WHERE code IS DISTINCT FROM upper(label)"); n != "0" {
		t.Errorf("%s rows of other not backfilled", n)
	}
	e.complete()
	if cols := e.columns("public", "items"); cols != "id bigint not null, name text not null, qty integer not null, price numeric not null" {
		t.Errorf("items after complete: %s", cols)
	}
	e.assertNoLeftovers("public_02_two")
}

// TestStartDoesNotQueueBehindAnotherRolesLongTransaction: the application usually runs as
// another role than the migration, and PostgreSQL hides the start of other roles'
// transactions from a role without pg_read_all_stats. Start must still recognise a long
// transaction of the application and wait outside the lock queue, not queue behind it
// attempt after attempt (blocking every reader and writer of the table each time).
func TestStartDoesNotQueueBehindAnotherRolesLongTransaction(t *testing.T) {
	ctx := context.Background()
	var logs logBuffer
	e := newEnv(t, withLog(&logs))
	e.exec(lockTestTable)
	db := queryString(t, e.db, "SELECT current_database()")
	admin, err := pgx.Connect(ctx, pgtest.WithDatabase(t, pgtest.AdminURL(t), db))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	app := db + "_app"
	mustExec(t, admin, "CREATE ROLE "+qi(app)+" LOGIN")
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, pgtest.WithDatabase(t, pgtest.AdminURL(t), db))
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP OWNED BY "+qi(app))
		_, _ = c.Exec(ctx, "DROP ROLE "+qi(app))
	})
	e.exec("GRANT SELECT ON items TO " + qi(app))
	b := block(t, pgtest.WithUser(t, e.url, app, ""), "SELECT count(*) FROM items")
	if s := queryString(t, e.db, "SELECT xact_start::text FROM pg_stat_activity WHERE pid = $1", b.pid); s != "<null>" {
		t.Skip("the migration role sees other roles' transactions; nothing to test")
	}

	done := make(chan error, 1)
	go func() {
		done <- e.m.Start(ctx, e.parse(`{"name": "02_price", "operations": [{"add_column": {"table": "items",
			"up": "qty * 2", "column": {"name": "price", "type": "numeric"}}}]}`))
	}()
	waitFor(t, "start to see the long transaction", func() bool { return logs.count("long transaction holds a lock") > 0 })
	pid := e.m.Conn().PgConn().PID()
	for range 30 {
		if n := queryString(t, e.db, "SELECT count(*)::text FROM pg_locks WHERE pid = $1 AND NOT granted", pid); n != "0" {
			t.Fatalf("start queues for a lock behind another role's long transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.release()
	if err := <-done; err != nil {
		t.Fatalf("start: %v", err)
	}
}

func TestLockPolicyAttemptTimeout(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name         string
		first, limit time.Duration
		want         []time.Duration // of attempts 0, 1, 2, ...
	}{
		{"default", 50 * ms, 500 * ms, []time.Duration{50 * ms, 50 * ms, 100 * ms, 100 * ms, 200 * ms, 200 * ms, 400 * ms, 400 * ms, 500 * ms, 500 * ms, 500 * ms}},
		{"limit below first", 50 * ms, 20 * ms, []time.Duration{20 * ms, 20 * ms, 20 * ms}},
		{"no first", 0, 300 * ms, []time.Duration{300 * ms, 300 * ms}},
		{"long limit", 50 * ms, 2 * time.Second, []time.Duration{50 * ms, 50 * ms, 100 * ms, 100 * ms, 200 * ms, 200 * ms, 400 * ms, 400 * ms, 800 * ms, 800 * ms, 1600 * ms, 1600 * ms, 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := lockPolicy{firstTimeout: tc.first, timeout: tc.limit}
			for i, want := range tc.want {
				if got := p.attemptTimeout(i); got != want {
					t.Errorf("attempt %d: lock_timeout %s, want %s", i, got, want)
				}
			}
		})
	}
}

// TestExecPipelined: the statements run as one transaction in one round trip: a failing
// statement is named in the error and nothing of the others is applied; a lock timeout
// is recognised as one.
func TestExecPipelined(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(lockTestTable)
	conn := e.m.Conn()
	err := execPipelined(ctx, conn, time.Second,
		"CREATE TABLE made (id int)",
		"ALTER TABLE items ADD COLUMN price numeric",
		"ALTER TABLE items ADD COLUMN nope no_such_type",
		"CREATE TABLE after_failure (id int)")
	if err == nil || !strings.Contains(err.Error(), "ADD COLUMN nope no_such_type") {
		t.Fatalf("err = %v, want it to name the failing statement", err)
	}
	for _, rel := range []string{"made", "after_failure"} {
		if v := queryString(t, e.db, "SELECT (to_regclass($1) IS NOT NULL)::text", rel); v != "false" {
			t.Errorf("table %s exists after the transaction failed", rel)
		}
	}
	if cols := e.columns("public", "items"); strings.Contains(cols, "price") {
		t.Errorf("items has the column of the failed transaction: %s", cols)
	}
	if err := execPipelined(ctx, conn, time.Second, "CREATE TABLE made (id int)", "ALTER TABLE made ADD COLUMN x int"); err != nil {
		t.Fatalf("pipelined transaction: %v", err)
	}
	if cols := e.columns("public", "made"); !strings.Contains(cols, "x") {
		t.Errorf("made: %s, want its column x", cols)
	}
	b := block(t, e.url, "LOCK TABLE items IN ACCESS SHARE MODE")
	err = execPipelined(ctx, conn, 20*time.Millisecond, "ALTER TABLE items ADD COLUMN price numeric")
	if !isLockTimeout(err) {
		t.Errorf("behind a lock: err = %v, want a lock timeout", err)
	}
	b.release()
	// The lock_timeout was the transaction's own.
	if v := queryString(t, conn, "SHOW lock_timeout"); v != "0" {
		t.Errorf("lock_timeout after the transaction = %s, want the session's (0)", v)
	}
}

// TestStartCancelsAutovacuum: an autovacuum worker holding its lock on the table is
// cancelled, as the server itself would cancel it once a lock request had waited on it
// for deadlock_timeout. The server here has a deadlock_timeout far longer than Tandem's
// attempts, and a vacuum slowed to a crawl: without the cancel, every attempt times out
// behind it.
func TestStartCancelsAutovacuum(t *testing.T) {
	if os.Getenv("TANDEM_TEST_POSTGRES_URL") != "" {
		t.Skip("needs a server of its own, with autovacuum every second")
	}
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, pgserver.Options{Settings: map[string]string{
		"autovacuum_naptime": "1", "deadlock_timeout": "1min"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	url := srv.URL("postgres")
	db := pgtest.NewPool(t, url)
	for _, q := range []string{
		"CREATE TABLE items (id int PRIMARY KEY, name text)",
		"INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20000) i",
		// Vacuum at once, and crawl: 100ms of sleep for every page it reads.
		"ALTER TABLE items SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1)",
		"DELETE FROM items WHERE id % 2 = 0",
	} {
		mustExec(t, db, q)
	}
	// Wait for autovacuum to hold its lock on the table: the launcher sees the dead rows
	// once the deleting session's statistics are flushed, which an idle session may do
	// only seconds later, and then within a naptime; generously more on a busy machine.
	held := "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = 'items'::regclass AND l.granted AND a.backend_type = 'autovacuum worker'"
	const vacuumWait = 90 * time.Second
	deadline := time.Now().Add(vacuumWait)
	for queryString(t, db, held) == "0" {
		if time.Now().After(deadline) {
			t.Fatalf("autovacuum did not start on the table within %s", vacuumWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var log logBuffer
	m, err := Open(ctx, url, Options{LockTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	mig, err := Parse("02_note.json", "02_note", []byte(`{"operations": [{"add_column": {"table": "items", "column": {"name": "note", "type": "text", "nullable": true}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := m.Start(sctx, mig); err != nil {
		t.Fatalf("start behind autovacuum: %v\nlog:\n%s", err, log.buf.String())
	}
	if log.count("cancelled autovacuum") == 0 {
		t.Fatalf("no autovacuum was cancelled; log:\n%s", log.buf.String())
	}
}
