package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultBackfillWorkers is the default of Options.BackfillWorkers: each worker is a
// connection and, while it runs, about a CPU core of the server.
const DefaultBackfillWorkers = 2

// Options configure a Migrator. The zero value of each field means its default.
type Options struct {
	// Schema is the logical schema migrated; default "public".
	Schema string
	// StateSchema holds Tandem's state; default "tandem".
	StateSchema string
	// LockTimeout is the longest lock_timeout of an attempt of a DDL transaction that locks
	// an existing table; default 500ms. While its lock request waits in the queue, every
	// statement on the table waits behind it, so attempts begin at FirstLockTimeout and
	// their lock_timeout doubles every two attempts up to LockTimeout.
	LockTimeout time.Duration
	// FirstLockTimeout is the lock_timeout of the first attempts; default 50ms, or
	// LockTimeout when shorter.
	FirstLockTimeout time.Duration
	// LockAttempts bounds the attempts to take a lock before a step is abandoned
	// (and rolled back); default 20.
	LockAttempts int
	// BackfillBatchTime is the target duration of one backfill batch: the batch size
	// adapts to it; default 100ms.
	BackfillBatchTime time.Duration
	// BackfillWorkers bounds the connections a backfill fills a table's chunks on, side
	// by side; default DefaultBackfillWorkers. A table of fewer than 64 pages (512kB) per
	// worker gets fewer.
	BackfillWorkers int
	// BackfillImpact says how much a backfill may slow the application down: ImpactNormal
	// (the zero value) holds back while the database is busy or the application waits
	// on the backfill's row locks, ImpactLow holds back further and always, ImpactMax
	// never does. Parse a name with ParseBackfillImpact.
	BackfillImpact BackfillImpact
	// BackfillRate caps a backfill's speed, all its workers together, in rows per
	// second, whatever the impact; 0 (the default) for no cap. Negative is an error.
	BackfillRate float64
	// Progress, when set, is called after every batch of a backfill's fill, from the
	// workers' goroutines, one call at a time (a slow callback holds the workers up). The
	// report that says Done comes before the catch-up pass (see Backfill in the package
	// docs).
	Progress func(BackfillProgress)
	// Logger receives a line per step; default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.StateSchema == "" {
		o.StateSchema = "tandem"
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 500 * time.Millisecond
	}
	if o.FirstLockTimeout <= 0 {
		o.FirstLockTimeout = 50 * time.Millisecond
	}
	o.FirstLockTimeout = min(o.FirstLockTimeout, o.LockTimeout)
	if o.LockAttempts == 0 {
		o.LockAttempts = 20
	}
	if o.BackfillBatchTime == 0 {
		o.BackfillBatchTime = 100 * time.Millisecond
	}
	if o.BackfillWorkers <= 0 {
		o.BackfillWorkers = DefaultBackfillWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Migrator applies migrations to one logical schema over one dedicated connection (and,
// while a backfill runs, the backfill workers' own connections). It is not safe for
// concurrent use; two Migrators (in two processes, say) on one schema exclude
// each other with an advisory lock.
type Migrator struct {
	conn          *pgx.Conn
	opts          Options
	log           *slog.Logger
	locks         lockPolicy
	st            store
	serverVersion int
	// dry, while a plan is made (PlanStart, PlanComplete), records the statements that
	// would change the database instead of running them.
	dry *dryRun
}

// Open connects to the database at connString and returns a Migrator for it.
func Open(ctx context.Context, connString string, opts Options) (*Migrator, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "tandem"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, NewConnectError(err)
	}
	m, err := New(ctx, conn, opts)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return m, nil
}

// ConnectError is a failed connection, with its root cause first: pgx reports every
// attempt (a TLS attempt the server refused, then the plain one, say), and the cause a
// user must fix is usually the last, or the server's own error.
type ConnectError struct {
	Cause error // the root cause
	Err   error // pgx's error, every attempt included
}

// Error implements error.
func (e *ConnectError) Error() string {
	if e.Cause == e.Err {
		return "connect to PostgreSQL: " + e.Err.Error()
	}
	return "connect to PostgreSQL: " + e.Cause.Error() + "\n\t(every attempt: " + strings.ReplaceAll(e.Err.Error(), "\n", " ") + ")"
}

// Unwrap returns pgx's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// NewConnectError wraps the error of a failed connection with its root cause.
func NewConnectError(err error) *ConnectError { return &ConnectError{Cause: rootCause(err), Err: err} }

// rootCause picks the error a user must fix from a failed connection: the server's error
// if it sent one (a wrong password, a missing database), else the last attempt's, passing
// over refusals of TLS (sslmode=prefer tries TLS first, then without).
func rootCause(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	cause := err
	for {
		switch u := cause.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return cause
			}
			next := errs[len(errs)-1]
			for i := len(errs) - 1; i >= 0; i-- {
				if !strings.Contains(errs[i].Error(), "server refused TLS") {
					next = errs[i]
					break
				}
			}
			cause = next
		case interface{ Unwrap() error }:
			if _, ok := cause.(*pgconn.ConnectError); !ok {
				return cause
			}
			cause = u.Unwrap()
		default:
			return cause
		}
	}
}

// permissionHint adds to a permission error what rights Tandem needs and how to grant them.
func (m *Migrator) permissionHint(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		return err
	}
	return fmt.Errorf("%w\nTandem needs to own the schema it migrates (%[2]q) and its tables, and to own its state schema %[3]q "+
		"or have CREATE on the database to make it. As a superuser or the owner, run for instance:\n"+
		"\tALTER SCHEMA %[4]s OWNER TO <role>;  -- and ALTER TABLE ... OWNER TO <role> for each table\n"+
		"\tGRANT CREATE ON DATABASE <database> TO <role>;  -- or: ALTER SCHEMA %[5]s OWNER TO <role>;\n"+
		"or run Tandem as the role that owns them", err, m.opts.Schema, m.opts.StateSchema, qi(m.opts.Schema), qi(m.opts.StateSchema))
}

// New returns a Migrator that uses conn, which it owns from now on (Close closes it).
func New(ctx context.Context, conn *pgx.Conn, opts Options) (*Migrator, error) {
	if err := opts.checkBackfill(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	m := &Migrator{
		conn: conn,
		opts: opts,
		log:  opts.Logger,
		locks: lockPolicy{
			firstTimeout: opts.FirstLockTimeout,
			timeout:      opts.LockTimeout,
			attempts:     opts.LockAttempts,
			backoffBase:  50 * time.Millisecond,
			backoffMax:   2 * time.Second,
			longTxn:      opts.LockTimeout,
		},
		st: store{state: opts.StateSchema, schema: opts.Schema},
	}
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&m.serverVersion); err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}
	if m.serverVersion < 140000 {
		return nil, fmt.Errorf("PostgreSQL %d.%d is too old: Tandem needs 14 or newer", m.serverVersion/10000, m.serverVersion%10000)
	}
	if exists, err := m.schemaExists(ctx, opts.Schema); err != nil {
		return nil, err
	} else if !exists {
		return nil, &InputError{Op: -1, Field: "schema", Err: fmt.Errorf("schema %q does not exist in this database", opts.Schema)}
	}
	return m, nil
}

// schemaExists reports whether the database has schema name.
func (m *Migrator) schemaExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := m.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&exists)
	return exists, err
}

// Close closes the Migrator's connection.
func (m *Migrator) Close(ctx context.Context) error { return m.conn.Close(ctx) }

// Conn is the Migrator's connection.
func (m *Migrator) Conn() *pgx.Conn { return m.conn }

// Schema is the logical schema the Migrator migrates.
func (m *Migrator) Schema() string { return m.opts.Schema }

// Init creates the state schema. It is idempotent; Start calls it too.
func (m *Migrator) Init(ctx context.Context) error {
	return m.withLock(ctx, func() error { return m.st.init(ctx, m.conn) })
}

// advisoryKey is the pair of int4 keys of the advisory lock for schema: a fixed class
// ('tndm') and a hash of the schema name.
const advisoryClass = 0x746e646d

// ErrBusy is wrapped by the error returned when another run holds the schema's lock.
var ErrBusy = errors.New("another Tandem run is migrating this schema")

// withLock runs fn holding the schema's advisory lock; a concurrent holder makes it fail
// at once with a message naming the holder.
func (m *Migrator) withLock(ctx context.Context, fn func() error) error {
	var got bool
	if err := m.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", advisoryClass, m.opts.Schema).Scan(&got); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if !got {
		var who Session
		var age float64
		err := m.conn.QueryRow(ctx, `
			SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(host(a.client_addr), ''),
			       coalesce(a.state, ''), coalesce(extract(epoch FROM now() - a.backend_start), 0)::float8
			  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			 WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid
			   AND l.objid = hashtext($2)::oid AND l.objsubid = 2
			   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, advisoryClass, m.opts.Schema).
			Scan(&who.PID, &who.ApplicationName, &who.User, &who.ClientAddr, &who.State, &age)
		if err != nil {
			return fmt.Errorf("%w %q (its holder could not be identified)", ErrBusy, m.opts.Schema)
		}
		return fmt.Errorf("%w %q: held by %s, connected %s ago; wait for it to finish",
			ErrBusy, m.opts.Schema, who.String(), time.Duration(age*float64(time.Second)).Round(time.Second))
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx was cancelled.
		_, _ = m.conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1, hashtext($2))", advisoryClass, m.opts.Schema)
	}()
	return m.permissionHint(fn())
}

// failpoint lets tests stop the engine at a named step and kill it there: when the
// environment variable TANDEM_FAILPOINT equals step, the process announces it on stderr
// and waits to be killed. It does nothing otherwise.
func failpoint(step string) {
	if fp := os.Getenv("TANDEM_FAILPOINT"); fp != "" && fp == step {
		fmt.Fprintf(os.Stderr, "tandem: failpoint %s reached\n", step)
		select {}
	}
}

// versionSchemaOf names the version schema of a recorded migration: the one it named
// (version_schema), or VersionSchema(schema, name).
func (m *Migrator) versionSchemaOf(rec *record) string {
	if rec.VersionSchema != "" {
		return rec.VersionSchema
	}
	return VersionSchema(m.opts.Schema, rec.Name)
}

// versionSchemaOfMigration names the version schema of a migration about to start.
func (m *Migrator) versionSchemaOfMigration(mig *Migration) string {
	return mig.VersionSchemaIn(m.opts.Schema)
}
