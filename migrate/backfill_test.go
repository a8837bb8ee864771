package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBackfillChunks: a backfill splits the table's pages into one chunk per worker (a
// small table gets fewer) and fills every row of every chunk, with or without a primary
// key, reporting progress that only grows and ends done.
func TestBackfillChunks(t *testing.T) {
	const rows = 20000
	for _, c := range []struct {
		name    string
		table   string
		workers int
		chunks  string // want
	}{
		{"primary key, one worker", "id int PRIMARY KEY, qty int NOT NULL, pad text", 1, "1"},
		{"primary key, three workers", "id int PRIMARY KEY, qty int NOT NULL, pad text", 3, "3"},
		{"composite key, two workers", "id int, k text, qty int NOT NULL, pad text, PRIMARY KEY (k, id)", 2, "2"},
		{"no primary key, three workers", "id int NOT NULL, qty int NOT NULL, pad text", 3, "3"},
		{"more workers than the table is worth", "id int PRIMARY KEY, qty int NOT NULL, pad text", 64, "5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reports []BackfillProgress
			e := newEnv(t, func(o *Options) {
				o.BackfillWorkers = c.workers
				o.Progress = func(p BackfillProgress) { reports = append(reports, p) }
			})
			e.exec("CREATE TABLE items (" + c.table + ")")
			cols, vals := "id, qty, pad", "i, i, repeat('x', 100)"
			if strings.Contains(c.table, "k text") {
				cols, vals = "id, k, qty, pad", "i, 'k' || (i % 7), i, repeat('x', 100)"
			}
			e.exec(fmt.Sprintf("INSERT INTO items (%s) SELECT %s FROM generate_series(1, %d) i", cols, vals, rows))
			e.exec("ANALYZE items")
			var pages int64
			if err := e.db.QueryRow(context.Background(), "SELECT pg_relation_size('items') / 8192").Scan(&pages); err != nil {
				t.Fatal(err)
			}
			if pages < 5*minChunkPages || pages >= 6*minChunkPages {
				t.Fatalf("the table has %d pages; the cases assume 5 to 6 chunks' worth", pages)
			}
			e.start(`{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty * 2", "down": "(qty / 2)::int"}}]}`)

			expectString(t, e.db, "SELECT count(*)::text FROM tandem.backfill_chunks WHERE next_page > last_page", c.chunks)
			expectString(t, e.db, "SELECT count(*)::text FROM tandem.backfill_chunks", c.chunks)
			// The chunks cover every page once.
			expectString(t, e.db, "SELECT (min(first_page) = 0 AND max(last_page) + 1 = sum(last_page - first_page + 1))::text FROM tandem.backfill_chunks", "true")
			new := e.version("02")
			expectString(t, new, "SELECT count(*)::text FROM items WHERE qty = id * 2", fmt.Sprint(rows))

			if len(reports) == 0 {
				t.Fatal("no progress reported")
			}
			for i := 1; i < len(reports); i++ {
				if reports[i].RowsDone < reports[i-1].RowsDone {
					t.Fatalf("progress went back: %+v after %+v", reports[i], reports[i-1])
				}
			}
			last := reports[len(reports)-1]
			if !last.Done || last.RowsDone != rows || last.RowsTotal != rows {
				t.Errorf("last progress report %+v, want done with %d of %d rows", last, rows, rows)
			}
			for _, p := range reports[:len(reports)-1] {
				if p.Done {
					t.Errorf("progress report %+v says done before the last one", p)
				}
			}
			new.Close()
			e.complete()
			expectString(t, e.db, "SELECT count(*)::text FROM tandem.backfill_chunks", "0")
			expectString(t, e.version("02"), "SELECT sum(qty)::text FROM items", fmt.Sprint(rows*(rows+1)))
		})
	}
}

// TestBackfillBadRowInAChunk: a row up cannot convert stops every worker; the error names
// the row (by primary key, or by ctid without one); the chunks done stay done, and start
// resumes once the data is fixed.
func TestBackfillBadRowInAChunk(t *testing.T) {
	for _, pk := range []bool{true, false} {
		t.Run(fmt.Sprintf("primary key %t", pk), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.BackfillWorkers = 3 })
			key := ""
			if pk {
				key = " PRIMARY KEY"
			}
			e.exec("CREATE TABLE items (id int" + key + ", code text NOT NULL, pad text)")
			e.exec("INSERT INTO items SELECT i, i::text, repeat('x', 100) FROM generate_series(1, 20000) i")
			// A bad row in the last chunk.
			e.exec("UPDATE items SET code = 'x19000' WHERE id = 19000")
			var ctid string
			if err := e.db.QueryRow(context.Background(), "SELECT ctid::text FROM items WHERE id = 19000").Scan(&ctid); err != nil {
				t.Fatal(err)
			}
			doc := `{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "code", "type": "int", "up": "code::int", "down": "code::text"}}]}`
			err := e.m.Start(context.Background(), e.parse(doc))
			want, what := "(19000)", "primary key"
			if !pk {
				want, what = ctid, "ctid"
			}
			var be *BackfillError
			if !errors.As(err, &be) || be.Row != want || !strings.Contains(err.Error(), "at the row with "+what+" "+want) {
				t.Fatalf("start: %v, want a BackfillError at the row with %s %s", err, what, want)
			}
			// The chunks before the bad row are done or under way; the migration is in progress.
			expectString(t, e.db, "SELECT count(*)::text FROM tandem.backfill_chunks", "3")
			expectString(t, e.db, "SELECT bool_and(next_page > last_page)::text FROM tandem.backfill_chunks", "false")

			e.exec("UPDATE items SET code = '19000' WHERE id = 19000")
			e.start(doc)
			expectString(t, e.version("02"), "SELECT (sum(code) = sum(id))::text FROM items", "true")
			e.complete()
			e.assertNoLeftovers("public_02")
		})
	}
}

// TestBackfillHeldToTheRules: a value up computes that breaks the column's NOT NULL or
// check stops start with the row named, though the checks themselves go in only after the
// bulk fill; fixing the data resumes.
func TestBackfillHeldToTheRules(t *testing.T) {
	for _, c := range []struct {
		name, op, want string
	}{
		{"add_column NOT NULL", `{"add_column": {"table": "items", "up": "nullif(qty, 5)", "column": {"name": "dbl", "type": "int", "nullable": false}}}`, "the value breaks NOT NULL"},
		{"add_column check", `{"add_column": {"table": "items", "up": "qty", "column": {"name": "dbl", "type": "int", "check": {"name": "not_five", "constraint": "dbl <> 5"}}}}`, `the value breaks check "not_five"`},
		{"alter_column NOT NULL", `{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "nullable": false, "up": "nullif(qty, 5)", "down": "qty"}}`, "the value breaks NOT NULL"},
		{"alter_column kept check", `{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty - 10", "down": "qty + 10"}}`, `the value breaks check "qty_positive"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.BackfillWorkers = 3 })
			e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int CONSTRAINT qty_positive CHECK (qty > 0), pad text)")
			e.exec("INSERT INTO items SELECT i, i + 10, repeat('x', 100) FROM generate_series(1, 20000) i")
			e.exec("UPDATE items SET qty = 5 WHERE id = 7000")
			doc := `{"name": "02", "operations": [` + c.op + `]}`
			err := e.m.Start(context.Background(), e.parse(doc))
			var be *BackfillError
			if !errors.As(err, &be) || be.Row != "(7000)" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("start: %v, want a BackfillError at row (7000) saying %q", err, c.want)
			}
			if err := e.m.Conn().Ping(context.Background()); err != nil {
				t.Fatalf("the Migrator's connection after a failed backfill: %v", err)
			}
			// The old version keeps writing meanwhile.
			mustExec(t, e.db, "INSERT INTO items VALUES (30000, 42, 'during')")
			e.exec("UPDATE items SET qty = 15 WHERE id = 7000")
			e.start(doc)
			new := e.version("02")
			expectString(t, new, "SELECT count(*)::text FROM items WHERE id IN (7000, 30000)", "2")
			new.Close()
			e.complete()
			e.assertNoLeftovers("public_02")
		})
	}
}

// TestBackfillCatchUpOnce: start resumed after the version schema exists (killed before
// it recorded started) does not compute again what the new version wrote meanwhile.
func TestBackfillCatchUpOnce(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, pad text)")
	e.exec("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, 20000) i")
	doc := `{"name": "02", "operations": [
		{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "least(qty, 2147483647)::int"}},
		{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "dbl", "type": "bigint"}}}]}`
	e.start(doc)
	// As if start had been killed after making the version schema.
	e.exec("UPDATE tandem.migrations SET status = 'starting' WHERE name = '02'")
	new := e.version("02")
	mustExec(t, new, "UPDATE items SET qty = 6000000000, dbl = 777 WHERE id = 1")
	e.start(doc)
	expectString(t, new, "SELECT qty || ',' || dbl FROM items WHERE id = 1", "6000000000,777")
	expectString(t, e.version(""), "SELECT qty::text FROM items WHERE id = 1", "2147483647")
	// The triggers were armed at once: the new version's writes still reach the old one.
	mustExec(t, new, "UPDATE items SET qty = 9 WHERE id = 2")
	expectString(t, e.version(""), "SELECT qty::text FROM items WHERE id = 2", "9")
	new.Close()
	e.complete()
}

// TestBackfillPartitions: every partition of a partitioned table is filled and held to
// the column's rules; a table with inheritance children is refused before any DDL (a
// trigger on it would not see the writes made to them).
func TestBackfillPartitions(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.BackfillWorkers = 3 })
	e.exec(`CREATE TABLE items (id int NOT NULL, qty int NOT NULL, pad text) PARTITION BY RANGE (id);
		CREATE TABLE items_low PARTITION OF items FOR VALUES FROM (0) TO (10000);
		CREATE TABLE items_high PARTITION OF items FOR VALUES FROM (10000) TO (MAXVALUE)`)
	e.exec("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, 20000) i")
	e.start(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "dbl", "type": "int", "nullable": false}}}]}`)
	expectString(t, e.version("02"), "SELECT count(*) FILTER (WHERE dbl = qty * 2)::text || '/' || count(*) FROM items", "20000/20000")
	mustExec(t, e.version(""), "UPDATE items SET qty = 7 WHERE id IN (5, 15000)")
	expectString(t, e.version("02"), "SELECT string_agg(dbl::text, ',' ORDER BY id) FROM items WHERE id IN (5, 15000)", "14,14")
	e.complete()
	expectString(t, e.db, "SELECT count(*)::text FROM items WHERE dbl IS DISTINCT FROM qty * 2", "0")

	e.exec("CREATE TABLE parts (id int NOT NULL, qty int NOT NULL); CREATE TABLE parts_child () INHERITS (parts)")
	err := e.m.Start(context.Background(), e.parse(`{"name": "03", "operations": [{"add_column": {"table": "parts", "up": "qty * 2", "column": {"name": "dbl", "type": "int"}}}]}`))
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "table" || !strings.Contains(err.Error(), "inheritance children") {
		t.Fatalf("start on a table with inheritance children: %v, want an InputError on field table", err)
	}
	expectCols(t, e, "public", "parts", "id integer not null, qty integer not null")
}

// TestBackfillKeptChecks: a type change keeps a NO INHERIT check (guarded with its
// options) and a check that was never validated, which stays so.
func TestBackfillKeptChecks(t *testing.T) {
	e := newEnv(t)
	e.exec(`CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL CONSTRAINT qty_positive CHECK (qty > 0) NO INHERIT, pad text)`)
	e.exec("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, 20000) i")
	e.exec("ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 100000) NOT VALID")
	e.start(`{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint", "up": "qty", "down": "qty::int"}}]}`)
	expectSQLState(t, e.version("02"), "INSERT INTO items VALUES (0, -5, 'x')", "23514")
	expectSQLState(t, e.version("02"), "INSERT INTO items VALUES (0, 500000, 'x')", "23514")
	e.complete()
	expectString(t, e.db, "SELECT string_agg(conname || ':' || convalidated || ':' || connoinherit, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'",
		"qty_positive:true:true,qty_small:false:false")
	e.assertNoLeftovers("public_02")
}

// TestBackfillNewExpression: a start resumed with a corrected up computes every row with
// it, also the rows filled before with the former one.
func TestBackfillNewExpression(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.BackfillWorkers = 3 })
	e.exec("CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL, pad text)")
	e.exec("INSERT INTO items SELECT i, i::text, repeat('x', 100) FROM generate_series(1, 20000) i")
	e.exec("UPDATE items SET code = 'x19000' WHERE id = 19000")
	doc := `{"name": "02", "operations": [{"alter_column": {"table": "items", "column": "code", "type": "int", "up": "code::int", "down": "code::text"}}]}`
	var be *BackfillError
	if err := e.m.Start(context.Background(), e.parse(doc)); !errors.As(err, &be) {
		t.Fatalf("start: %v, want a BackfillError", err)
	}
	e.start(strings.Replace(doc, `"code::int"`, `"regexp_replace(code, '[^0-9]', '', 'g')::int + 1"`, 1))
	expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE code = id + 1", "20000")
}

// TestTriggerSeesEveryOldColumn: the trigger of an operation fires for the old
// version's writes of any of its columns, also one a previous operation changes.
func TestTriggerSeesEveryOldColumn(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE items (id int PRIMARY KEY, a int NOT NULL)")
	e.exec("INSERT INTO items SELECT i, i FROM generate_series(1, 100) i")
	e.start(`{"name": "02", "operations": [
		{"alter_column": {"table": "items", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}},
		{"add_column": {"table": "items", "up": "a * 2", "column": {"name": "x", "type": "bigint"}}}]}`)
	mustExec(t, e.version(""), "UPDATE items SET a = 1000 WHERE id = 1")
	expectString(t, e.version("02"), "SELECT a || ',' || x FROM items WHERE id = 1", "1000,2000")
	e.complete()
}

func TestProgressTotalsAndETA(t *testing.T) {
	for _, tc := range []struct {
		name      string
		chunks    []*chunk
		elapsed   time.Duration
		rate      float64
		wantTotal int64
		wantETA   time.Duration
	}{
		{name: "estimate below done", chunks: []*chunk{{last: 9, next: 5, rowsDone: 700, rowsTotal: 500}}, elapsed: 10 * time.Second, rate: 70, wantTotal: 700},
		{name: "done chunk exact", chunks: []*chunk{{last: 9, next: 10, rowsDone: 480, rowsTotal: 500}, {last: 19, first: 10, next: 15, rowsDone: 100, rowsTotal: 500}},
			elapsed: 10 * time.Second, rate: 50, wantTotal: 980, wantETA: 8 * time.Second},
		{name: "no ETA at first", chunks: []*chunk{{last: 99, next: 1, rowsDone: 10, rowsTotal: 10000}}, elapsed: 200 * time.Millisecond, rate: 50, wantTotal: 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bp := BackfillProgress{Rate: tc.rate}
			bp.RowsDone, bp.RowsTotal, bp.Done = sumChunks(tc.chunks)
			if bp.RowsTotal != tc.wantTotal {
				t.Errorf("total = %d, want %d", bp.RowsTotal, tc.wantTotal)
			}
			if got := eta(bp, tc.elapsed); got != tc.wantETA {
				t.Errorf("eta = %s, want %s", got, tc.wantETA)
			}
		})
	}
}

// TestBackfillRulesFirst: at an impact that yields to the application, the trigger and
// the checks are in place before the fill, so a row the application writes during the
// fill gets its value from the trigger and is not computed again by the catch-up; at
// impact max they follow the fill, and the catch-up computes such a row again.
func TestBackfillRulesFirst(t *testing.T) {
	const rows = 10000
	for _, c := range []struct {
		impact     BackfillImpact
		rulesFirst bool
	}{{ImpactNormal, true}, {ImpactMax, false}} {
		t.Run(c.impact.String(), func(t *testing.T) {
			// One worker, about 2s from the first page to the last.
			e := newEnv(t, func(o *Options) { o.BackfillWorkers, o.BackfillRate, o.BackfillImpact = 1, rows/2, c.impact })
			ctx := context.Background()
			e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL)")
			e.exec(fmt.Sprintf("INSERT INTO items SELECT i, i FROM generate_series(1, %d) i", rows))
			e.exec("ANALYZE items")
			startErr := make(chan error, 1)
			go func() {
				startErr <- e.m.Start(ctx, e.parse(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty * 2",
					"column": {"name": "q2", "type": "int", "nullable": false}}}]}`))
			}()
			// Once the fill is under way, the application updates a row at the table's end,
			// before the fill gets there.
			for _, q := range []string{"SELECT (to_regclass('tandem.backfill_chunks') IS NOT NULL)::text",
				"SELECT (coalesce(sum(rows_done), 0) > 0)::text FROM tandem.backfill_chunks"} {
				for deadline := time.Now().Add(60 * time.Second); queryString(t, e.db, q) != "true"; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for the fill: %s", q)
					}
				}
			}
			expectString(t, e.db, "SELECT bool_and(rules_first)::text FROM tandem.backfill_chunks", fmt.Sprint(c.rulesFirst))
			xid := queryString(t, e.db, fmt.Sprintf("UPDATE items SET qty = 7 WHERE id = %d RETURNING xmin::text", rows))
			if err := <-startErr; err != nil {
				t.Fatalf("start: %v", err)
			}
			expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q2 = qty * 2", fmt.Sprint(rows))
			// Was the application's row version kept (rules first), or written again by the
			// catch-up (rules after the fill)?
			kept := queryString(t, e.db, fmt.Sprintf("SELECT (xmin::text = $1)::text FROM items WHERE id = %d", rows), xid)
			if want := fmt.Sprint(c.rulesFirst); kept != want {
				t.Errorf("the application's row version kept: %s, want %s", kept, want)
			}
			e.complete()
			e.assertNoLeftovers("public_02")
		})
	}
}

// TestBackfillResumedUnderAnotherImpact: a fill begun at impact max (without the trigger)
// and resumed at the default impact still computes again the rows the application
// updated meanwhile: the chunks say how they were made.
func TestBackfillResumedUnderAnotherImpact(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.BackfillImpact = ImpactMax })
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, pad text)")
	e.exec("INSERT INTO items SELECT i, i + 10, repeat('x', 100) FROM generate_series(1, 20000) i")
	e.exec("UPDATE items SET qty = -5 WHERE id = 15000")
	doc := `{"name": "02", "operations": [{"add_column": {"table": "items", "up": "100 / (qty + 5)",
		"column": {"name": "q", "type": "int", "nullable": false}}}]}`
	// The fill stops at the row that divides by zero, after filling the rows before it.
	if err := e.m.Start(context.Background(), e.parse(doc)); err == nil {
		t.Fatal("start: no error, want the backfill to fail at row 15000")
	}
	expectString(t, e.db, "SELECT (count(q) > 0)::text FROM items WHERE id < 15000", "true")
	// Meanwhile the old version updates a row the fill did: no trigger recomputes it.
	e.exec("UPDATE items SET qty = 45 WHERE id = 1")
	e.exec("UPDATE items SET qty = 15 WHERE id = 15000")
	m := e.open() // the default impact
	if err := m.Start(context.Background(), e.parse(doc)); err != nil {
		t.Fatalf("start resumed at the default impact: %v", err)
	}
	expectString(t, e.version("02"), "SELECT q::text FROM items WHERE id = 1", "2")
	expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q = 100 / (qty + 5)", "20000")
}
