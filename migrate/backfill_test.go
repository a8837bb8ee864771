package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
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
