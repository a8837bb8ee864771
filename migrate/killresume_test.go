package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The kill tests run the engine in a child process (this test binary, re-executed to run
// only TestHelperProcess), stop it at a failpoint, kill it with SIGKILL and then finish
// the job from the test process.
const (
	helperCmdEnv = "TANDEM_TEST_HELPER"    // start, complete or rollback
	helperURLEnv = "TANDEM_TEST_URL"       // the database
	helperMigEnv = "TANDEM_TEST_MIGRATION" // the migration document, for start
)

// TestHelperProcess is the child process of the kill tests; it does nothing in a normal
// test run.
func TestHelperProcess(t *testing.T) {
	cmd := os.Getenv(helperCmdEnv)
	if cmd == "" {
		t.Skip("the child process of the kill tests")
	}
	// Should the parent die without killing us, do not linger.
	time.AfterFunc(2*time.Minute, func() { os.Exit(4) })
	ctx := context.Background()
	m, err := Open(ctx, os.Getenv(helperURLEnv), Options{LockTimeout: 200 * time.Millisecond, BackfillBatchTime: 10 * time.Millisecond})
	if err == nil {
		fmt.Fprintln(os.Stderr, helperReady)
		switch cmd {
		case "start":
			var mig *Migration
			if mig, err = Parse("test.json", "test", []byte(os.Getenv(helperMigEnv))); err == nil {
				err = m.Start(ctx, mig)
			}
		case "complete":
			err = m.Complete(ctx)
		case "rollback":
			err = m.Rollback(ctx)
		default:
			err = fmt.Errorf("unknown helper command %q", cmd)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: %s: %v\n", cmd, err)
		os.Exit(3)
	}
	os.Exit(0)
}

const helperReady = "helper: connected"

// killAt runs cmd in a child process until it reaches failpoint, then kills it with
// SIGKILL. It fails the test if the child ends before reaching the failpoint.
func killAt(t *testing.T, url, cmd, migration, failpoint string) {
	t.Helper()
	killWhen(t, url, cmd, migration, failpoint, "tandem: failpoint "+failpoint+" reached", nil)
}

// killWhen runs cmd in a child process until it prints the line want on stderr, calls
// wait (if set) and kills it with SIGKILL, wherever it is then. It fails the test if the
// child ends before printing want; a child that ends during wait is not an error.
func killWhen(t *testing.T, url, cmd, migration, failpoint, want string, wait func()) {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	c.Env = append(os.Environ(),
		helperCmdEnv+"="+cmd, helperURLEnv+"="+url, helperMigEnv+"="+migration,
		"TANDEM_FAILPOINT="+failpoint)
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan bool, 1)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if sc.Text() == want {
				reached <- true
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		reached <- false
	}()
	ok := false
	select {
	case ok = <-reached:
	case <-time.After(60 * time.Second):
	}
	if ok && wait != nil {
		wait()
	}
	_ = c.Process.Kill()
	_ = c.Wait()
	if !ok {
		t.Fatalf("%s did not reach failpoint %s; its output:\n%s", cmd, failpoint, out.String())
	}
}

// untilNotBusy runs fn until it does not fail with ErrBusy, and returns its result: the
// killed child's advisory lock is released once PostgreSQL notices that its connection is
// gone.
func untilNotBusy(fn func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func retryBusy(t *testing.T, what string, fn func() error) {
	t.Helper()
	if err := untilNotBusy(fn); err != nil {
		t.Fatalf("%s after the kill: %v", what, err)
	}
}

const (
	killV1 = `{"name": "01_items", "operations": [{"create_table": {"name": "items", "columns": [
		{"name": "id", "type": "bigserial", "pk": true},
		{"name": "name", "type": "text"},
		{"name": "qty", "type": "int"}]}}]}`
	killV2 = `{"name": "02_price", "operations": [
		{"add_column": {"table": "items", "up": "qty * 1.25", "column": {"name": "price", "type": "numeric"}}},
		{"rename_column": {"table": "items", "from": "name", "to": "title"}}]}`
	killRows         = 6000
	killBefore       = "id bigint not null, name text not null, qty integer not null"
	killAfterStart   = "id bigint not null, name text not null, qty integer not null, price numeric"
	killAfterComplte = "id bigint not null, title text not null, qty integer not null, price numeric not null"
)

// killEnv is a database at version 01_items with killRows rows.
func killEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	e.start(killV1)
	e.complete()
	mustExec(t, e.version("01_items"), `INSERT INTO items (name, qty) SELECT 'n' || i, i FROM generate_series(1, $1::int) i`, killRows)
	return e
}

// checkStarted asserts that 02_price is started and both versions work.
func checkStarted(t *testing.T, e *testEnv) {
	t.Helper()
	if s := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_price' ORDER BY id DESC LIMIT 1"); s != StatusStarted {
		t.Fatalf("status = %s, want %s", s, StatusStarted)
	}
	if cols := e.columns("public", "items"); cols != killAfterStart {
		t.Errorf("items: %s, want %s", cols, killAfterStart)
	}
	if cols := e.columns("public_02_price", "items"); cols != "id bigint, title text, qty integer, price numeric" {
		t.Errorf("new version's items: %s", cols)
	}
	if cols := e.columns("public_01_items", "items"); cols != "id bigint, name text, qty integer" {
		t.Errorf("old version's items: %s", cols)
	}
	v1, v2 := e.version("01_items"), e.version("02_price")
	mustExec(t, v1, "INSERT INTO items (name, qty) VALUES ('old', 8)")
	mustExec(t, v1, "UPDATE items SET qty = 4 WHERE id = 2")
	mustExec(t, v2, "INSERT INTO items (title, qty, price) VALUES ('new', 1, 7)")
	if n := queryString(t, v2, "SELECT count(*)::text FROM items WHERE price IS DISTINCT FROM qty * 1.25 AND title <> 'new'"); n != "0" {
		t.Errorf("%s rows have a price that is not qty * 1.25", n)
	}
	if o, n := queryString(t, v1, "SELECT count(*)::text FROM items"), queryString(t, v2, "SELECT count(*)::text FROM items"); o != n {
		t.Errorf("the old version sees %s rows, the new one %s", o, n)
	}
}

// checkRolledBack asserts that 02_price left nothing behind and version 01 works.
func checkRolledBack(t *testing.T, e *testEnv) {
	t.Helper()
	e.assertNoLeftovers("public_01_items")
	if cols := e.columns("public", "items"); cols != killBefore {
		t.Errorf("items after rollback: %s, want %s", cols, killBefore)
	}
	if s := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_price' ORDER BY id DESC LIMIT 1"); s != StatusRolledBack {
		t.Errorf("status = %s, want %s", s, StatusRolledBack)
	}
	v1 := e.version("01_items")
	mustExec(t, v1, "INSERT INTO items (name, qty) VALUES ('old', 8)")
	if n := queryString(t, v1, "SELECT count(*)::text FROM items WHERE id <= $1", killRows); n != fmt.Sprint(killRows) {
		t.Errorf("%s of the %d rows are left after rollback", n, killRows)
	}
}

// checkCompleted asserts that 02_price is completed: final schema, data, no leftovers.
func checkCompleted(t *testing.T, e *testEnv) {
	t.Helper()
	if s := queryString(t, e.db, "SELECT status FROM tandem.migrations WHERE name = '02_price' ORDER BY id DESC LIMIT 1"); s != StatusCompleted {
		t.Fatalf("status = %s, want %s", s, StatusCompleted)
	}
	if cols := e.columns("public", "items"); cols != killAfterComplte {
		t.Errorf("items after complete: %s, want %s", cols, killAfterComplte)
	}
	e.assertNoLeftovers("public_02_price")
	v2 := e.version("02_price")
	mustExec(t, v2, "INSERT INTO items (title, qty, price) VALUES ('after', 1, 2)")
	if n := queryString(t, v2, "SELECT count(*)::text FROM items WHERE price IS DISTINCT FROM qty * 1.25 AND title NOT IN ('new', 'after')"); n != "0" {
		t.Errorf("%s rows have a price that is not qty * 1.25", n)
	}
}

func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kill tests")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		cmd, failpoint string
		then           string // the command rerun after the kill
	}{
		{"start", "start:recorded", "start"},
		{"start", "start:recorded", "rollback"},
		{"start", "start:op0", "start"},
		{"start", "start:op0", "rollback"},
		{"start", "start:backfill-batch", "start"},
		{"start", "start:backfill-batch", "rollback"},
		{"start", "start:backfill-trigger", "start"},
		{"start", "start:backfill-trigger", "rollback"},
		{"start", "start:backfill-rules", "start"},
		{"start", "start:backfill-rules", "rollback"},
		{"start", "start:op1", "start"},
		{"start", "start:views", "start"},
		{"start", "start:views", "rollback"},
		{"complete", "complete:old-schema-dropped", "complete"},
		{"complete", "complete:op0", "complete"},
		{"complete", "complete:op1", "complete"},
		{"rollback", "rollback:op1", "rollback"},
		{"rollback", "rollback:op0", "rollback"},
	} {
		t.Run(tc.failpoint+"/"+tc.then, func(t *testing.T) {
			e := killEnv(t)
			if tc.cmd != "start" {
				e.start(killV2)
				// Rows the old version writes after start, through the trigger.
				mustExec(t, e.version("01_items"), "INSERT INTO items (name, qty) VALUES ('during', 3)")
			}
			killAt(t, e.url, tc.cmd, killV2, tc.failpoint)
			if tc.cmd == "start" {
				// The old version writes on while nothing runs: whatever the trigger's
				// state, resuming (or rolling back) must account for these rows.
				old := e.version("01_items")
				mustExec(t, old, "INSERT INTO items (name, qty) VALUES ('after the kill', 5)")
				mustExec(t, old, "UPDATE items SET qty = qty + 1000 WHERE id IN (1, 3000, $1)", killRows)
			}

			// The first batch the rerun reports, if it backfills.
			var first *BackfillProgress
			m := e.open(func(o *Options) {
				o.Progress = func(p BackfillProgress) {
					if first == nil {
						first = &p
					}
				}
			})
			var pagesDone, doneAtKill int64
			if tc.failpoint == "start:backfill-batch" {
				// The killed backfill saved its cursor.
				var done bool
				if err := e.db.QueryRow(ctx, "SELECT sum(next_page - first_page)::bigint, sum(rows_done)::bigint, bool_and(next_page > last_page) FROM tandem.backfill_chunks").
					Scan(&pagesDone, &doneAtKill, &done); err != nil {
					t.Fatalf("backfill state after the kill: %v", err)
				}
				if pagesDone == 0 || doneAtKill == 0 || done {
					t.Fatalf("backfill state after the kill: %d pages done, rows done %d, done %v; want pages and rows done, not done", pagesDone, doneAtKill, done)
				}
			}

			switch tc.then {
			case "start":
				retryBusy(t, "start", func() error { return m.Start(ctx, e.parse(killV2)) })
				if pagesDone > 0 {
					// Resumed after the cursor, the first batch has rows to fill; started
					// over, it would walk the rows already done and fill none.
					if first == nil || first.RowsDone <= doneAtKill {
						t.Errorf("the backfill did not resume after %d pages (%d rows done at the kill): first batch of the rerun %+v", pagesDone, doneAtKill, first)
					}
				}
				checkStarted(t, e)
				e.complete()
				checkCompleted(t, e)
			case "rollback":
				retryBusy(t, "rollback", func() error { return m.Rollback(ctx) })
				checkRolledBack(t, e)
				// The migration can be started afresh.
				e.start(killV2)
				checkStarted(t, e)
			case "complete":
				// Once complete has begun, rollback is refused: complete must finish.
				if err := untilNotBusy(func() error { return m.Rollback(ctx) }); err == nil || errors.Is(err, ErrBusy) {
					t.Fatalf("rollback after a killed complete: err = %v, want a refusal", err)
				}
				retryBusy(t, "complete", func() error { return m.Complete(ctx) })
				checkCompleted(t, e)
			}
		})
	}
}

// TestKillAtRandomMoments kills start, complete and rollback after a delay, wherever they
// are then (mid-statement, mid-transaction, between batches), and finishes the job.
func TestKillAtRandomMoments(t *testing.T) {
	if testing.Short() {
		t.Skip("kill tests")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		cmd   string
		delay time.Duration
		then  string
	}{
		{"start", 0, "start"},
		{"start", 15 * time.Millisecond, "rollback"},
		{"start", 40 * time.Millisecond, "start"},
		{"start", 80 * time.Millisecond, "rollback"},
		{"start", 150 * time.Millisecond, "start"},
		{"start", 300 * time.Millisecond, "rollback"},
		{"complete", 0, "complete"},
		{"complete", 20 * time.Millisecond, "complete"},
		{"complete", 60 * time.Millisecond, "complete"},
		{"rollback", 0, "rollback"},
		{"rollback", 20 * time.Millisecond, "rollback"},
		{"rollback", 60 * time.Millisecond, "rollback"},
	} {
		t.Run(fmt.Sprintf("%s/after %s/%s", tc.cmd, tc.delay, tc.then), func(t *testing.T) {
			e := killEnv(t)
			if tc.cmd != "start" {
				e.start(killV2)
			}
			killWhen(t, e.url, tc.cmd, killV2, "", helperReady, func() { time.Sleep(tc.delay) })
			m := e.open()
			switch tc.then {
			case "start":
				retryBusy(t, "start", func() error { return m.Start(ctx, e.parse(killV2)) })
				checkStarted(t, e)
				e.complete()
				checkCompleted(t, e)
			case "rollback":
				retryBusy(t, "rollback", func() error {
					if err := m.Rollback(ctx); !errors.Is(err, ErrNoActiveMigration) {
						return err
					}
					return nil // killed before it recorded anything, or after it finished
				})
				if queryString(t, e.db, "SELECT to_regclass('tandem.migrations')::text") != "<null>" &&
					queryString(t, e.db, "SELECT count(*)::text FROM tandem.migrations WHERE name = '02_price'") != "0" {
					checkRolledBack(t, e)
				} else {
					e.assertNoLeftovers("public_01_items")
				}
			case "complete":
				retryBusy(t, "complete", func() error {
					if err := m.Complete(ctx); !errors.Is(err, ErrNoActiveMigration) {
						return err
					}
					return nil // it had finished
				})
				checkCompleted(t, e)
			}
		})
	}
}

// TestKillDuringConcurrentIndexBuild kills start while CREATE INDEX CONCURRENTLY runs, which
// leaves an INVALID index behind: a rerun must drop and rebuild it, a rollback drop it.
func TestKillDuringConcurrentIndexBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("kill tests")
	}
	ctx := context.Background()
	const doc = `{"name": "02_idx", "operations": [
		{"create_index": {"name": "items_name", "table": "items", "columns": ["name"]}}]}`
	for _, then := range []string{"start", "rollback"} {
		t.Run(then, func(t *testing.T) {
			e := newEnv(t)
			e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL)`)
			e.exec(`INSERT INTO items (name) SELECT md5(i::text) FROM generate_series(1, 200000) i`)
			building := false
			killWhen(t, e.url, "start", doc, "", helperReady, func() {
				// The build's first phase commits the index, INVALID, to the catalog.
				deadline := time.Now().Add(30 * time.Second)
				for !building && time.Now().Before(deadline) {
					building = queryString(t, e.db, "SELECT count(*)::text FROM pg_index WHERE indexrelid = to_regclass('public.items_name') AND NOT indisvalid") == "1"
				}
			})
			if !building {
				t.Skip("the index was built before it could be killed during the build")
			}
			m := e.open()
			index := func() string {
				return strings.Join(queryStrings(t, e.db, "SELECT indexrelid::regclass::text || CASE WHEN indisvalid THEN '' ELSE ' (invalid)' END FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY 1"), ", ")
			}
			switch then {
			case "start":
				retryBusy(t, "start", func() error { return m.Start(ctx, e.parse(doc)) })
				if got := index(); got != "items_name, items_pkey" {
					t.Errorf("indexes after the rerun: %s", got)
				}
				e.complete()
				e.assertNoLeftovers("public_02_idx")
			case "rollback":
				retryBusy(t, "rollback", func() error { return m.Rollback(ctx) })
				if got := index(); got != "items_pkey" {
					t.Errorf("indexes after rollback: %s", got)
				}
				e.assertNoLeftovers()
			}
		})
	}
}

// TestKillUnderLoad kills start at arbitrary moments while the old version writes
// continuously: not one of its statements may fail, before the kill, after it or while
// the job is finished, and the data must be right.
func TestKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kill tests")
	}
	ctx := context.Background()
	const rows = 20000
	for _, tc := range []struct {
		delay time.Duration
		then  string
	}{
		{20 * time.Millisecond, "start"},
		{60 * time.Millisecond, "rollback"},
		{120 * time.Millisecond, "start"},
		{200 * time.Millisecond, "rollback"},
	} {
		t.Run(fmt.Sprintf("after %s/%s", tc.delay, tc.then), func(t *testing.T) {
			e := newEnv(t)
			e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)`)
			e.exec(`INSERT INTO items (name, qty) SELECT 'n' || i, i % 1000 FROM generate_series(1, $1::int) i`, rows)
			before := e.columns("public", "items")
			var stats loadStats
			stop := oldVersionLoad(loadPool(t, e, "", 6), rows, &stats, nil)
			defer stop()
			waitForStatements(t, &stats, 100)
			doc := killV2
			killWhen(t, e.url, "start", doc, "", helperReady, func() { time.Sleep(tc.delay) })
			waitForStatements(t, &stats, 100)
			m := e.open()
			switch tc.then {
			case "start":
				retryBusy(t, "start", func() error { return m.Start(ctx, e.parse(doc)) })
			case "rollback":
				retryBusy(t, "rollback", func() error {
					if err := m.Rollback(ctx); !errors.Is(err, ErrNoActiveMigration) {
						return err
					}
					return nil // killed before it recorded anything
				})
			}
			waitForStatements(t, &stats, 100)
			stop()
			if n := stats.failed.Load(); n > 0 {
				t.Errorf("%d of %d statements failed; first failures:\n%s", n, n+stats.ok.Load(), strings.Join(stats.errs, "\n"))
			}
			switch tc.then {
			case "start":
				if n := queryString(t, e.version("02_price"), "SELECT count(*)::text FROM items WHERE price IS DISTINCT FROM qty * 1.25"); n != "0" {
					t.Errorf("%s rows have a price that is not qty * 1.25", n)
				}
			case "rollback":
				e.assertNoLeftovers()
				if cols := e.columns("public", "items"); cols != before {
					t.Errorf("items after rollback: %s, want %s", cols, before)
				}
			}
		})
	}
}
