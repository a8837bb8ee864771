package migrate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// loadStats counts the statements a set of load workers ran, and keeps the first
// failures for the test's message.
type loadStats struct {
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []string
}

func (s *loadStats) record(who, sql string, err error) {
	if err == nil {
		s.ok.Add(1)
		return
	}
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, fmt.Sprintf("%s: %s: %v", who, firstLine(sql), err))
	}
}

// loadGroup is a set of workers running statements in a loop until stopped.
type loadGroup struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// runLoad starts n workers that each run step in a loop on pool until the group is
// stopped. step returns the statement it ran and its error.
func runLoad(pool *pgxpool.Pool, n int, who string, stats *loadStats, step func(ctx context.Context, rng *rand.Rand, pool *pgxpool.Pool) (string, error)) *loadGroup {
	ctx, cancel := context.WithCancel(context.Background())
	g := &loadGroup{cancel: cancel}
	for i := 0; i < n; i++ {
		g.wg.Add(1)
		go func(seed uint64) {
			defer g.wg.Done()
			rng := rand.New(rand.NewPCG(seed, 42))
			for ctx.Err() == nil {
				// Statements run on their own context: stopping the group lets the
				// statement in flight finish instead of counting it as failed.
				sql, err := step(context.Background(), rng, pool)
				stats.record(who, sql, err)
			}
		}(uint64(i))
	}
	return g
}

func (g *loadGroup) stop() {
	g.cancel()
	g.wg.Wait()
}

// waitForStatements blocks until stats has counted at least n more successful statements
// than it had when called (so every phase of the test really runs under load).
func waitForStatements(t *testing.T, stats *loadStats, n int64) {
	t.Helper()
	target := stats.ok.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for stats.ok.Load() < target && stats.failed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("load made no progress: %d statements ok, want %d", stats.ok.Load(), target)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func loadPool(t *testing.T, e *testEnv, version string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	if version != "" {
		PinConnConfig(cfg.ConnConfig, VersionSchema("public", version))
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestConcurrentLoadDuringStartAndComplete runs start and complete of an add_column NOT
// NULL with up and a rename_column while the old version and, once start returned, the
// new version write and read the table continuously. Not one statement may fail, and
// every row must end up with the value its writer meant.
func TestConcurrentLoadDuringStartAndComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	ctx := context.Background()
	const rows = 30000
	// A small batch target makes the backfill take many batches, so the load overlaps it.
	var batches atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.BackfillBatchTime = 20 * time.Millisecond
		o.Progress = func(BackfillProgress) { batches.Add(1) }
	})
	e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)`)
	e.exec(`INSERT INTO items (name, qty) SELECT 'n' || i, i % 1000 FROM generate_series(1, $1::int) i`, rows)
	e.exec(`ANALYZE items`)

	old := loadPool(t, e, "", 8)
	var oldStats, newStats loadStats

	stopOld := oldVersionLoad(old, rows, &oldStats, nil)
	defer stopOld()
	waitForStatements(t, &oldStats, 200)

	doc := `{"name": "02_price", "operations": [
		{"add_column": {"table": "items", "up": "qty * 1.25", "column": {"name": "price", "type": "numeric"}}},
		{"rename_column": {"table": "items", "from": "name", "to": "title"}}]}`
	e.start(doc)
	if n := batches.Load(); n < 3 {
		t.Errorf("the backfill ran %d batches; the test wants several to overlap the load", n)
	}

	v2 := loadPool(t, e, "02_price", 6)
	stopNew := newVersionLoad(v2, rows, &newStats, nil)
	defer stopNew()
	waitForStatements(t, &newStats, 200)
	waitForStatements(t, &oldStats, 200)

	// The rollout is over: the old version's instances are gone before complete.
	stopOld()
	e.complete()
	waitForStatements(t, &newStats, 200)
	stopNew()

	for _, s := range []*loadStats{&oldStats, &newStats} {
		if n := s.failed.Load(); n > 0 {
			t.Errorf("%d of %d statements failed; first failures:\n%s", n, n+s.ok.Load(), strings.Join(s.errs, "\n"))
		}
	}
	t.Logf("statements: old version %d, new version %d; backfill batches %d", oldStats.ok.Load(), newStats.ok.Load(), batches.Load())

	if cols := e.columns("public", "items"); cols != "id bigint not null, title text not null, qty integer not null, note text, price numeric not null" {
		t.Errorf("after complete: %s", cols)
	}
	e.assertNoLeftovers("public_02_price")
	// Rows last written by the old version (or never written) carry up's value; rows
	// last written by the new version carry their own.
	var bad, total, byOld, byNew int64
	if err := e.db.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE price IS DISTINCT FROM CASE WHEN note = 'new' THEN qty * 2 ELSE qty * 1.25 END),
		       count(*), count(*) FILTER (WHERE note = 'old'), count(*) FILTER (WHERE note = 'new')
		  FROM items`).Scan(&bad, &total, &byOld, &byNew); err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		sample := queryStrings(t, e.db, `SELECT format('id %s qty %s price %s note %s', id, qty, price, note) FROM items
			WHERE price IS DISTINCT FROM CASE WHEN note = 'new' THEN qty * 2 ELSE qty * 1.25 END ORDER BY id LIMIT 5`)
		t.Errorf("%d of %d rows have a wrong price, e.g. %s", bad, total, strings.Join(sample, "; "))
	}
	if byOld == 0 || byNew == 0 {
		t.Errorf("rows written by the old version: %d, by the new: %d; want both", byOld, byNew)
	}
}

// oldVersionLoad starts the old version's load on items (id, name, qty, note) with ids up
// to rows: inserts, updates of random rows, reads, through pool (search_path public, no
// version setting). Its writes mark note 'old'; inserts, if set, counts its inserts. It
// returns the function that stops the load.
func oldVersionLoad(old *pgxpool.Pool, rows int, oldStats *loadStats, inserts *atomic.Int64) func() {
	// The old version: inserts, updates of random rows, reads; search_path public, no
	// version setting. Its writes mark note 'old'.
	writers := runLoad(old, 4, "old", oldStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		var sql string
		var err error
		switch rng.IntN(3) {
		case 0:
			sql = `INSERT INTO items (name, qty, note) VALUES ($1, $2, 'old')`
			if _, err = p.Exec(ctx, sql, fmt.Sprintf("o%d", rng.IntN(1e6)), rng.IntN(1000)); err == nil && inserts != nil {
				inserts.Add(1)
			}
		case 1:
			sql = `UPDATE items SET qty = $2, note = 'old' WHERE id = $1`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows), rng.IntN(1000))
		default:
			sql = `UPDATE items SET name = name || '.', note = 'old' WHERE id = $1`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows))
		}
		return sql, err
	})
	readers := runLoad(old, 2, "old", oldStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		sql := `SELECT id, name, qty, note FROM items WHERE id BETWEEN $1 AND $1 + 20`
		rs, err := p.Query(ctx, sql, 1+rng.IntN(rows))
		if err == nil {
			for rs.Next() {
			}
			rs.Close()
			err = rs.Err()
		}
		return sql, err
	})
	return func() { writers.stop(); readers.stop() }
}

// newVersionLoad starts the new version's load on items (id, title, qty, price, note)
// through pool: its writes set price themselves (qty * 2, so they can be told apart from
// up) and mark note 'new'.
func newVersionLoad(v2 *pgxpool.Pool, rows int, newStats *loadStats, inserts *atomic.Int64) func() {
	writers := runLoad(v2, 3, "new", newStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		var sql string
		var err error
		qty := rng.IntN(1000)
		if rng.IntN(2) == 0 {
			sql = `INSERT INTO items (title, qty, price, note) VALUES ($1, $2, $2 * 2, 'new')`
			if _, err = p.Exec(ctx, sql, fmt.Sprintf("n%d", rng.IntN(1e6)), qty); err == nil && inserts != nil {
				inserts.Add(1)
			}
		} else {
			sql = `UPDATE items SET qty = $2, price = $2 * 2, note = 'new' WHERE id = $1`
			_, err = p.Exec(ctx, sql, 1+rng.IntN(rows), qty)
		}
		return sql, err
	})
	readers := runLoad(v2, 2, "new", newStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		sql := `SELECT id, title, qty, price, note FROM items WHERE id BETWEEN $1 AND $1 + 20`
		rs, err := p.Query(ctx, sql, 1+rng.IntN(rows))
		if err == nil {
			for rs.Next() {
			}
			rs.Close()
			err = rs.Err()
		}
		return sql, err
	})
	return func() { writers.stop(); readers.stop() }
}

// TestConcurrentLoadDuringStartAndRollback runs start and then rollback while the old
// version writes and reads continuously (and the new version, until the rollout is
// abandoned): not one statement may fail, no row may be lost, and nothing of the
// migration may remain.
func TestConcurrentLoadDuringStartAndRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const rows = 20000
	e := newEnv(t, func(o *Options) { o.BackfillBatchTime = 20 * time.Millisecond })
	e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text)`)
	e.exec(`INSERT INTO items (name, qty) SELECT 'n' || i, i % 1000 FROM generate_series(1, $1::int) i`, rows)
	before := e.columns("public", "items")

	var oldStats, newStats loadStats
	var inserted atomic.Int64
	stopOld := oldVersionLoad(loadPool(t, e, "", 8), rows, &oldStats, &inserted)
	defer stopOld()
	waitForStatements(t, &oldStats, 200)

	e.start(`{"name": "02_price", "operations": [
		{"add_column": {"table": "items", "up": "qty * 1.25", "column": {"name": "price", "type": "numeric"}}},
		{"rename_column": {"table": "items", "from": "name", "to": "title"}}]}`)
	stopNew := newVersionLoad(loadPool(t, e, "02_price", 6), rows, &newStats, &inserted)
	defer stopNew()
	waitForStatements(t, &newStats, 200)
	waitForStatements(t, &oldStats, 200)

	// The new version is abandoned: its instances are gone before rollback; the old
	// version keeps running through it.
	stopNew()
	e.rollback()
	waitForStatements(t, &oldStats, 200)
	stopOld()

	for _, s := range []*loadStats{&oldStats, &newStats} {
		if n := s.failed.Load(); n > 0 {
			t.Errorf("%d of %d statements failed; first failures:\n%s", n, n+s.ok.Load(), strings.Join(s.errs, "\n"))
		}
	}
	e.assertNoLeftovers()
	if cols := e.columns("public", "items"); cols != before {
		t.Errorf("after rollback: %s, want %s", cols, before)
	}
	if n, want := queryString(t, e.db, "SELECT count(*)::text FROM items"), fmt.Sprint(rows+inserted.Load()); n != want {
		t.Errorf("%s rows after rollback, want %s", n, want)
	}
}

// TestConcurrentLoadDuringDropColumnIndexAndRename runs a drop_column with down, a
// create_index and a rename of the indexed column under load from both versions.
func TestConcurrentLoadDuringDropColumnIndexAndRename(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const rows = 20000
	e := newEnv(t)
	e.exec(`CREATE TABLE tags (id bigserial PRIMARY KEY, label text NOT NULL, legacy text NOT NULL)`)
	e.exec(`INSERT INTO tags (label, legacy) SELECT 'l' || i, 'x' FROM generate_series(1, $1::int) i`, rows)
	old := loadPool(t, e, "", 6)
	var oldStats, newStats loadStats
	oldLoad := runLoad(old, 4, "old", &oldStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		sql := `UPDATE tags SET label = label || '.', legacy = 'old' WHERE id = $1`
		args := []any{1 + rng.IntN(rows)}
		switch rng.IntN(3) {
		case 0:
			sql, args = `INSERT INTO tags (label, legacy) VALUES ($1, 'old')`, []any{fmt.Sprint("o", rng.IntN(1e6))}
		case 1:
			sql = `SELECT label, legacy FROM tags WHERE id = $1`
		}
		_, err := p.Exec(ctx, sql, args...)
		return sql, err
	})
	defer oldLoad.stop()
	waitForStatements(t, &oldStats, 200)

	e.start(`{"name": "02_drop", "operations": [
		{"drop_column": {"table": "tags", "column": "legacy", "down": "upper(label)"}},
		{"create_index": {"name": "tags_label", "table": "tags", "columns": ["label"]}},
		{"rename_column": {"table": "tags", "from": "label", "to": "name"}}]}`)
	newLoad := runLoad(loadPool(t, e, "02_drop", 6), 3, "new", &newStats, func(ctx context.Context, rng *rand.Rand, p *pgxpool.Pool) (string, error) {
		sql := `UPDATE tags SET name = name || '+' WHERE id = $1`
		args := []any{1 + rng.IntN(rows)}
		switch rng.IntN(3) {
		case 0:
			sql, args = `INSERT INTO tags (name) VALUES ($1)`, []any{fmt.Sprint("n", rng.IntN(1e6))}
		case 1:
			sql = `SELECT name FROM tags WHERE id = $1`
		}
		_, err := p.Exec(ctx, sql, args...)
		return sql, err
	})
	defer newLoad.stop()
	waitForStatements(t, &newStats, 200)
	waitForStatements(t, &oldStats, 200)
	// The old version reads what down computed for the rows the new version wrote.
	if n := queryString(t, old, "SELECT count(*)::text FROM tags WHERE legacy NOT IN ('x', 'old') AND legacy <> upper(label)"); n != "0" {
		t.Errorf("%s rows written by the new version have a legacy value that is not down's", n)
	}
	if n := queryString(t, old, "SELECT count(*)::text FROM tags WHERE label LIKE 'n%' AND legacy <> upper(label)"); n != "0" {
		t.Errorf("%s rows inserted by the new version have a legacy value that is not down's", n)
	}

	oldLoad.stop()
	e.complete()
	waitForStatements(t, &newStats, 200)
	newLoad.stop()
	for _, s := range []*loadStats{&oldStats, &newStats} {
		if n := s.failed.Load(); n > 0 {
			t.Errorf("%d of %d statements failed; first failures:\n%s", n, n+s.ok.Load(), strings.Join(s.errs, "\n"))
		}
	}
	if cols := e.columns("public", "tags"); cols != "id bigint not null, name text not null" {
		t.Errorf("after complete: %s", cols)
	}
	if def := queryString(t, e.db, "SELECT pg_get_indexdef('public.tags_label'::regclass)"); !strings.Contains(def, "(name)") {
		t.Errorf("index after complete: %s", def)
	}
	e.assertNoLeftovers("public_02_drop")
}
