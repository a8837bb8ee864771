package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// testEnv is a fresh database owned by a role that is not a superuser, and a Migrator
// logged in as that role.
type testEnv struct {
	t   *testing.T
	url string
	m   *Migrator
	db  *pgxpool.Pool // plain pool with the default search_path
}

func newEnv(t *testing.T, opts ...func(*Options)) *testEnv {
	t.Helper()
	url := pgtest.NewOwnerDatabase(t)
	e := &testEnv{t: t, url: url, db: pgtest.NewPool(t, url)}
	e.m = e.open(opts...)
	return e
}

func (e *testEnv) open(opts ...func(*Options)) *Migrator {
	e.t.Helper()
	o := Options{LockTimeout: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	m, err := Open(context.Background(), e.url, o)
	if err != nil {
		e.t.Fatalf("open migrator: %v", err)
	}
	e.t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func (e *testEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// version returns a pool whose connections speak the version schema of migration name
// ("" for the base schema).
func (e *testEnv) version(name string) *pgxpool.Pool {
	e.t.Helper()
	if name == "" {
		return e.versionSchema("")
	}
	return e.versionSchema(VersionSchema("public", name))
}

// versionSchema returns a pool whose connections speak version schema vs ("" for the
// base schema).
func (e *testEnv) versionSchema(vs string) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	if vs != "" {
		PinConnConfig(cfg.ConnConfig, vs)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

func (e *testEnv) parse(doc string) *Migration {
	e.t.Helper()
	mig, err := Parse("test.json", "test", []byte(doc))
	if err != nil {
		e.t.Fatalf("parse: %v", err)
	}
	return mig
}

func (e *testEnv) start(doc string) *Migration {
	e.t.Helper()
	mig := e.parse(doc)
	if err := e.m.Start(context.Background(), mig); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return mig
}

func (e *testEnv) complete() {
	e.t.Helper()
	if err := e.m.Complete(context.Background()); err != nil {
		e.t.Fatalf("complete: %v", err)
	}
}

func (e *testEnv) rollback() {
	e.t.Helper()
	if err := e.m.Rollback(context.Background()); err != nil {
		e.t.Fatalf("rollback: %v", err)
	}
}

func mustExec(t *testing.T, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, sql string, args ...any) {
	t.Helper()
	if _, err := q.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryStrings(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func queryString(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) string {
	t.Helper()
	var s *string
	if err := q.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

// columns lists the columns of a table or view, in order, as "name type".
func (e *testEnv) columns(schema, table string) string {
	e.t.Helper()
	return strings.Join(queryStrings(e.t, e.db, `
		SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, schema, table), ", ")
}

// leftovers lists what Tandem may leave behind by mistake: its triggers, functions,
// constraints, indexes and columns, and version schemas other than keep.
func (e *testEnv) leftovers(keep ...string) []string {
	e.t.Helper()
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	var out []string
	for _, s := range queryStrings(e.t, e.db, `SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'public\_%'`) {
		if !kept[s] {
			out = append(out, "schema "+s)
		}
	}
	out = append(out, queryStrings(e.t, e.db, `
		SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE '\_tandem%'
		UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '\_tandem%'
		UNION ALL SELECT 'constraint ' || conname FROM pg_constraint WHERE conname LIKE '\_tandem%'
		UNION ALL SELECT 'index ' || relname FROM pg_class WHERE relkind = 'i' AND relname LIKE '\_tandem%'
		UNION ALL SELECT 'column ' || attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		           WHERE attname LIKE '\_tandem%' AND NOT attisdropped AND c.relkind IN ('r', 'p')
		UNION ALL SELECT 'invalid index ' || c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE NOT x.indisvalid`)...)
	return out
}

func (e *testEnv) assertNoLeftovers(keep ...string) {
	e.t.Helper()
	if l := e.leftovers(keep...); len(l) > 0 {
		e.t.Fatalf("left behind: %s", strings.Join(l, "; "))
	}
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
