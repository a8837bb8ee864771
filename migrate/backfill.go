package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BackfillProgress reports a backfill's progress after each batch.
type BackfillProgress struct {
	Migration string        `json:"migration"`
	Table     string        `json:"table"`
	Column    string        `json:"column"`
	RowsDone  int64         `json:"rows_done"`
	RowsTotal int64         `json:"rows_total"` // an estimate
	Rate      float64       `json:"rows_per_second"`
	ETA       time.Duration `json:"eta_ns"`
	Done      bool          `json:"done"`
}

// backfill fills column target of existing rows with expr, in batches.
//
// Batches walk the primary key in order (or, for a table without one, ranges of pages by
// ctid). The walk stops at the last key (page) that existed when the dual-write trigger was
// installed: rows inserted later already went through the trigger, so a steady stream of
// inserts cannot make the backfill run forever. Each batch computes the new values itself,
// set-based, with the triggers standing aside, and only touches rows whose target is still
// NULL, so rows written since by either version keep their values. The cursor is saved in
// the same transaction as the batch: an interrupted backfill resumes where it stopped.
type backfill struct {
	table  *Table // the old version's table (names in expr resolve to its physical columns)
	target string // physical column
	typ    string // the target's type (see castTo)
	expr   string
}

type backfillState struct {
	cursor    []string // last key done (primary key values as text, or a page number)
	bound     []string // last key to do; nil: nothing to do
	rowsDone  int64
	rowsTotal int64
	done      bool
}

func (b backfill) run(ctx context.Context, r *run) error {
	m := r.m
	st, err := b.load(ctx, r)
	if err != nil {
		return err
	}
	if st.done {
		return nil
	}
	table := r.table(b.table.Physical)
	usePK := len(b.table.PrimaryKey) > 0
	batch := 1000
	if !usePK {
		batch = 8 // pages
	}
	const maxBatch = 200_000
	started := time.Now()
	doneAtStart := st.rowsDone
	for !st.done {
		t0 := time.Now()
		var scanned, updated int64
		var last []string
		err := retryTransient(ctx, func() error {
			var err error
			scanned, updated, last, err = b.batch(ctx, r, table, usePK, st, batch)
			return err
		})
		if err != nil {
			return err
		}
		elapsed := time.Since(t0)
		m.log.Debug("backfill batch", "table", b.table.Name, "size", batch, "updated", updated, "elapsed", elapsed)
		if scanned == 0 {
			st.done = true
		} else {
			st.cursor = last
			st.rowsDone += updated
		}
		if st.done {
			if _, err := m.conn.Exec(ctx, "UPDATE "+qi(m.opts.StateSchema, "backfills")+
				" SET done = true, updated_at = now() WHERE schema = $1 AND migration = $2 AND op = $3",
				m.opts.Schema, r.rec.Name, r.op); err != nil {
				return fmt.Errorf("record backfill done: %w", err)
			}
		}
		if m.opts.Progress != nil {
			p := BackfillProgress{Migration: r.rec.Name, Table: b.table.Name, Column: b.target,
				RowsDone: st.rowsDone, RowsTotal: max(st.rowsTotal, st.rowsDone), Done: st.done}
			if secs := time.Since(started).Seconds(); secs > 0 {
				p.Rate = float64(st.rowsDone-doneAtStart) / secs
				if p.Rate > 0 && p.RowsTotal > p.RowsDone {
					p.ETA = time.Duration(float64(p.RowsTotal-p.RowsDone) / p.Rate * float64(time.Second))
				}
			}
			m.opts.Progress(p)
		}
		failpoint("start:backfill-batch")
		// Adapt the batch size to the target batch duration.
		target := m.opts.BackfillBatchTime
		switch {
		case elapsed < target/2:
			batch = min(batch*2, maxBatch)
		case elapsed > target*3/2 && batch > 1:
			batch = max(batch/2, 1)
		}
	}
	return nil
}

// batch runs one batch and returns the rows scanned and updated, and the new cursor.
func (b backfill) batch(ctx context.Context, r *run, table string, usePK bool, st *backfillState, size int) (scanned, updated int64, last []string, err error) {
	m := r.m
	err = pgx.BeginFunc(ctx, m.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config($1, 'on', true), set_config('lock_timeout', $2, true)",
			BackfillSetting, fmt.Sprintf("%dms", max(2*m.opts.LockTimeout, time.Second).Milliseconds())); err != nil {
			return err
		}
		if usePK {
			// The batch is the key range (cursor, upper], where upper is the size-th key
			// after the cursor (found with an index-only scan), or the bound. The UPDATE
			// then walks that range of the primary key index.
			if st.cursor != nil && slices.Equal(st.cursor, st.bound) {
				return nil // nothing left
			}
			pk := b.table.PrimaryKey
			var keyCols, keyText []string
			for _, c := range pk {
				keyCols = append(keyCols, qi(c))
				keyText = append(keyText, qi(c)+"::text")
			}
			cols := "(" + strings.Join(keyCols, ", ") + ")"
			tuple := func(offset int) string {
				var ps []string
				for i, c := range pk {
					ps = append(ps, fmt.Sprintf("$%d::text::%s", offset+i, b.table.ColumnByPhysical(c).Type))
				}
				return "(" + strings.Join(ps, ", ") + ")"
			}
			var args []any
			lower := ""
			if st.cursor != nil {
				lower = cols + " > " + tuple(1) + " AND "
				for _, v := range st.cursor {
					args = append(args, v)
				}
			}
			n := len(args)
			for _, v := range st.bound {
				args = append(args, v)
			}
			findUpper := fmt.Sprintf("SELECT ARRAY[%s] FROM %s WHERE %s%s <= %s ORDER BY %s OFFSET %d LIMIT 1",
				strings.Join(keyText, ", "), table, lower, cols, tuple(n+1), strings.Join(keyCols, ", "), size-1)
			err := tx.QueryRow(ctx, findUpper, args...).Scan(&last)
			if errors.Is(err, pgx.ErrNoRows) {
				last = st.bound // fewer than size keys are left: the last batch
			} else if err != nil {
				return err
			}
			upd := append(args[:n:n], anySlice(last)...)
			tag, err := tx.Exec(ctx, b.update(table, lower+cols+" <= "+tuple(n+1)), upd...)
			if err != nil {
				return err
			}
			updated = tag.RowsAffected()
			scanned = max(updated, 1)
		} else {
			from := int64(0)
			if st.cursor != nil {
				if _, err := fmt.Sscan(st.cursor[0], &from); err != nil {
					return fmt.Errorf("stored backfill cursor %q: %w", st.cursor[0], err)
				}
				from++
			}
			var bound int64
			if _, err := fmt.Sscan(st.bound[0], &bound); err != nil {
				return fmt.Errorf("stored backfill bound %q: %w", st.bound[0], err)
			}
			if from > bound {
				return nil
			}
			to := min(from+int64(size)-1, bound)
			tag, err := tx.Exec(ctx, b.update(table, "ctid >= format('(%s,0)', $1::bigint)::tid AND ctid < format('(%s,0)', $2::bigint)::tid"), from, to+1)
			if err != nil {
				return err
			}
			updated = tag.RowsAffected()
			scanned = to - from + 1
			last = []string{fmt.Sprint(to)}
		}
		if scanned == 0 {
			return nil
		}
		cur, _ := json.Marshal(last)
		_, err := tx.Exec(ctx, "UPDATE "+qi(m.opts.StateSchema, "backfills")+
			" SET cursor = $4, rows_done = rows_done + $5, updated_at = now() WHERE schema = $1 AND migration = $2 AND op = $3",
			m.opts.Schema, r.rec.Name, r.op, cur, updated)
		return err
	})
	if err != nil {
		return 0, 0, nil, b.explain(ctx, r, table, usePK, st, err)
	}
	return scanned, updated, last, nil
}

// update is the batch's UPDATE over the rows matching cond. When the names the
// expression uses are the physical ones, the expression is computed in place; otherwise
// (a column renamed by an earlier operation of the migration) it is computed over the rows
// as the operation sees them and joined back by ctid.
func (b backfill) update(table, cond string) string {
	target := qi(b.target)
	renamed := false
	var cols []string
	for _, c := range b.table.Columns {
		renamed = renamed || c.Name != c.Physical
		cols = append(cols, qi(c.Physical)+" AS "+qi(c.Name))
	}
	if !renamed {
		return fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s AND %s IS NULL", table, target, castTo(b.expr, b.typ), cond, target)
	}
	return fmt.Sprintf(`UPDATE %[1]s SET %[2]s = s._tandem_v
		FROM (SELECT _tandem_ctid, %[3]s AS _tandem_v
		        FROM (SELECT ctid AS _tandem_ctid, %[4]s FROM %[1]s WHERE %[5]s AND %[2]s IS NULL) AS %[6]s) AS s
		WHERE %[1]s.ctid = s._tandem_ctid`, table, target, castTo(b.expr, b.typ), strings.Join(cols, ", "), cond, qi(b.table.Name))
}

// explain turns a failed batch into an error the user can act on: for a row the
// expression cannot convert, it finds that row's primary key (by bisecting the batch's
// keys) and names it.
func (b backfill) explain(ctx context.Context, r *run, table string, usePK bool, st *backfillState, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || isTransient(err) {
		return err
	}
	where := ""
	if usePK {
		if key := b.badRow(ctx, r, table, st); key != "" {
			where = " at the row with primary key " + key
		}
	}
	return &BackfillError{Table: b.table.Name, Column: b.target, Expr: b.expr, Row: strings.TrimPrefix(where, " at the row with primary key "),
		Err: fmt.Errorf("backfill of %s.%s with %q failed%s: %s; fix the expression or the data, then run tandem start again to resume (or tandem rollback): %w",
			b.table.Name, b.target, b.expr, where, pe.Message, err)}
}

// BackfillError is returned when the backfill meets a row its expression cannot convert.
// The migration stays in progress: fix the data (or the expression in the file) and run
// start again to resume from where the backfill stopped.
type BackfillError struct {
	Table, Column, Expr string
	Row                 string // the failing row's primary key, when the table has one
	Err                 error
}

func (e *BackfillError) Error() string { return e.Err.Error() }
func (e *BackfillError) Unwrap() error { return e.Err }

// badRow returns the primary key (as text) of the first row after the cursor for which
// the expression fails, or "" when it cannot tell. It reads at most the rows up to the
// bound, in halves.
func (b backfill) badRow(ctx context.Context, r *run, table string, st *backfillState) string {
	pk := b.table.PrimaryKey
	var keyCols, keyText []string
	for _, c := range pk {
		keyCols = append(keyCols, qi(c))
		keyText = append(keyText, qi(c)+"::text")
	}
	cols := "(" + strings.Join(keyCols, ", ") + ")"
	var args []any
	where := "true"
	if st.cursor != nil {
		var ps []string
		for i, c := range pk {
			ps = append(ps, fmt.Sprintf("$%d::text::%s", i+1, b.table.ColumnByPhysical(c).Type))
			args = append(args, st.cursor[i])
		}
		where = cols + " > (" + strings.Join(ps, ", ") + ")"
	}
	// The keys of the next rows still to fill, in order (a batch's worth at most).
	rows, err := r.m.conn.Query(ctx, fmt.Sprintf("SELECT ARRAY[%s] FROM %s WHERE %s AND %s IS NULL ORDER BY %s LIMIT 200000",
		strings.Join(keyText, ", "), table, where, qi(b.target), strings.Join(keyCols, ", ")), args...)
	if err != nil {
		return ""
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil || len(keys) == 0 {
		return ""
	}
	// fails reports whether the expression fails for a row of the key range ks[0]..ks[-1].
	fails := func(ks [][]string) bool {
		var args []any
		tuple := func(k []string) string {
			var ps []string
			for i, c := range pk {
				args = append(args, k[i])
				ps = append(ps, fmt.Sprintf("$%d::text::%s", len(args), b.table.ColumnByPhysical(c).Type))
			}
			return "(" + strings.Join(ps, ", ") + ")"
		}
		cond := cols + " >= " + tuple(ks[0]) + " AND " + cols + " <= " + tuple(ks[len(ks)-1])
		q := b.update(table, cond)
		err := pgx.BeginFunc(ctx, r.m.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config($1, 'on', true)", BackfillSetting); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
			return errRollback // a trial: never keep the changes
		})
		return !errors.Is(err, errRollback)
	}
	lo, hi := 0, len(keys) // the first failing key is in keys[lo:hi]
	if !fails(keys) {
		return ""
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(keys[lo:mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return "(" + strings.Join(keys[lo], ", ") + ")"
}

var errRollback = errors.New("rollback")

// load reads the backfill's state, creating it (with its bound) on first use. It must
// run after the dual-write trigger is installed.
func (b backfill) load(ctx context.Context, r *run) (*backfillState, error) {
	m := r.m
	var cursor, bound []byte
	st := &backfillState{}
	err := m.conn.QueryRow(ctx, "SELECT cursor, bound, rows_done, rows_total, done FROM "+qi(m.opts.StateSchema, "backfills")+
		" WHERE schema = $1 AND migration = $2 AND op = $3", m.opts.Schema, r.rec.Name, r.op).
		Scan(&cursor, &bound, &st.rowsDone, &st.rowsTotal, &st.done)
	if err == nil {
		if cursor != nil {
			if err := json.Unmarshal(cursor, &st.cursor); err != nil {
				return nil, err
			}
		}
		if bound != nil {
			if err := json.Unmarshal(bound, &st.bound); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	table := r.table(b.table.Physical)
	if pk := b.table.PrimaryKey; len(pk) > 0 {
		var keys, desc []string
		for _, c := range pk {
			keys = append(keys, qi(c)+"::text")
			desc = append(desc, qi(c)+" DESC")
		}
		err := m.conn.QueryRow(ctx, "SELECT ARRAY["+strings.Join(keys, ", ")+"] FROM "+table+" ORDER BY "+strings.Join(desc, ", ")+" LIMIT 1").Scan(&st.bound)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("find the backfill's last row: %w", err)
		}
	} else {
		var pages int64
		if err := m.conn.QueryRow(ctx, "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint", table).Scan(&pages); err != nil {
			return nil, err
		}
		if pages > 0 {
			st.bound = []string{fmt.Sprint(pages - 1)}
		}
	}
	if err := m.conn.QueryRow(ctx, "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass", table).Scan(&st.rowsTotal); err != nil {
		return nil, err
	}
	if st.rowsTotal == 0 && st.bound != nil {
		if err := m.conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&st.rowsTotal); err != nil {
			return nil, err
		}
	}
	st.done = st.bound == nil
	var boundJSON []byte
	if st.bound != nil {
		boundJSON, _ = json.Marshal(st.bound)
	}
	_, err = m.conn.Exec(ctx, "INSERT INTO "+qi(m.opts.StateSchema, "backfills")+
		" (schema, migration, op, table_name, column_name, bound, rows_total, done) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		m.opts.Schema, r.rec.Name, r.op, b.table.Name, b.target, boundJSON, st.rowsTotal, st.done)
	if err != nil {
		return nil, fmt.Errorf("record backfill: %w", err)
	}
	return st, nil
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

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
