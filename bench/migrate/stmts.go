package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// loadKinds are the load's statements, by the start of their text as pg_stat_statements
// shows it (constants replaced by parameters).
var loadKinds = []struct{ kind, prefix string }{
	{"select", "SELECT name, qty FROM items"},
	{"update", "UPDATE items SET qty = qty +"},
	{"insert", "INSERT INTO items (name, qty)"},
}

// stmtKind is what pg_stat_statements recorded of one kind of the load's statements over
// a window.
type stmtKind struct {
	kind           string
	calls          int64
	execMs         float64 // total execution time
	hit, read      int64   // shared buffers found, and read in
	dirtied        int64   // shared buffers the statements dirtied
	walRecords     int64
	walBytes       float64
	hotUpd, tupUpd int64 // of the items table, all sessions: HOT and all row updates
}

// tableCounts are the items table's cumulative update counters and its sizes.
type tableCounts struct{ upd, hotUpd, heap, indexes int64 }

// windowStatements are the load's statements' figures over a window, from
// pg_stat_statements (-statements) and pg_stat_user_tables.
type windowStatements struct {
	kinds  []stmtKind
	table0 tableCounts
	table  tableCounts // the counters over the window
	end    tableCounts // at the window's end
}

func (w windowStatements) String() string {
	if len(w.kinds) == 0 {
		return "no statement figures"
	}
	var parts []string
	for _, k := range w.kinds {
		n := float64(max(k.calls, 1))
		parts = append(parts, fmt.Sprintf("%s %d calls, %.1fµs/call, %.1f buffers hit/call, %.2f read/call, %.2f dirtied/call, %.2f WAL records/call, %.0f WAL bytes/call",
			k.kind, k.calls, 1000*k.execMs/n, float64(k.hit)/n, float64(k.read)/n, float64(k.dirtied)/n, float64(k.walRecords)/n, k.walBytes/n))
	}
	hot := 0.0
	if w.table.upd > 0 {
		hot = float64(w.table.hotUpd) / float64(w.table.upd)
	}
	return strings.Join(parts, "; ") + fmt.Sprintf("; items table (all sessions): %d row updates, %.0f%% HOT; heap %dMB → %dMB, indexes %dMB → %dMB",
		w.table.upd, 100*hot, w.table0.heap>>20, w.end.heap>>20, w.table0.indexes>>20, w.end.indexes>>20)
}

// startStatements begins a window: it empties pg_stat_statements (the whole server's:
// the bench runs one database at a time) and reads the items table's counters.
func (b *bench) startStatements(ctx context.Context, pool *pgxpool.Pool) (windowStatements, error) {
	var w windowStatements
	if _, err := pool.Exec(ctx, "SELECT pgss.pg_stat_statements_reset()"); err != nil {
		return w, fmt.Errorf("reset pg_stat_statements (the server needs -statements): %w", err)
	}
	var err error
	w.table0, err = itemsCounts(ctx, pool)
	return w, err
}

// endStatements ends a window begun by startStatements.
func (b *bench) endStatements(ctx context.Context, pool *pgxpool.Pool, w windowStatements) (windowStatements, error) {
	rows, err := pool.Query(ctx, `SELECT query, calls, total_exec_time, shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_records, wal_bytes
		FROM pgss.pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return w, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	byKind := map[string]*stmtKind{}
	var k stmtKind
	var query string
	_, err = pgx.ForEachRow(rows, []any{&query, &k.calls, &k.execMs, &k.hit, &k.read, &k.dirtied, &k.walRecords, &k.walBytes}, func() error {
		for _, lk := range loadKinds {
			if strings.HasPrefix(query, lk.prefix) {
				s := byKind[lk.kind]
				if s == nil {
					s = &stmtKind{kind: lk.kind}
					byKind[lk.kind] = s
				}
				s.calls += k.calls
				s.execMs += k.execMs
				s.hit += k.hit
				s.read += k.read
				s.dirtied += k.dirtied
				s.walRecords += k.walRecords
				s.walBytes += k.walBytes
			}
		}
		return nil
	})
	if err != nil {
		return w, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	for _, lk := range loadKinds {
		if s := byKind[lk.kind]; s != nil {
			w.kinds = append(w.kinds, *s)
		}
	}
	end, err := itemsCounts(ctx, pool)
	w.end = end
	w.table = tableCounts{upd: end.upd - w.table0.upd, hotUpd: end.hotUpd - w.table0.hotUpd}
	return w, err
}

// itemsCounts reads the items table's update counters.
func itemsCounts(ctx context.Context, pool *pgxpool.Pool) (tableCounts, error) {
	var c tableCounts
	err := pool.QueryRow(ctx, "SELECT n_tup_upd, n_tup_hot_upd, pg_relation_size(relid), pg_indexes_size(relid) FROM pg_stat_user_tables WHERE relid = 'items'::regclass").
		Scan(&c.upd, &c.hotUpd, &c.heap, &c.indexes)
	if err != nil {
		return c, fmt.Errorf("read the items table's counters: %w", err)
	}
	return c, nil
}
