// Package catalog is Tandem's example service: a small JSON API over PostgreSQL, a content
// endpoint that streams a blob slowly, a server-sent events feed, and a worker consuming a
// Postgres task queue with FOR UPDATE SKIP LOCKED. It is built on package lifecycle and is
// what `tandem prove` rolls under load; later examples upgrade it across schema versions.
//
// Routes:
//
//	GET  /api/items/{id}   one item, as JSON
//	GET  /api/items        the first items (?limit=, at most 100)
//	POST /api/items        add an item: {"name": "...", "price_cents": 100}
//	POST /api/tasks        queue a task: {"work_ms": 100}
//	GET  /api/report       a costly aggregate; 503 while maintenance mode is on
//	GET  /content/{name}   a 64 KiB blob, streamed in chunks over ?ms= milliseconds
//	GET  /events           server-sent events until the client leaves or the server stops
//	GET  /readyz, /livez, /metrics
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/lifecycle"
)

// App is the application's name in the instance registry.
const App = "catalog"

// BlobSize is the size of the blob the content endpoint streams.
const BlobSize = 64 << 10

// Config configures one instance.
type Config struct {
	// Listen is the address to serve on, e.g. "127.0.0.1:8080".
	Listen string
	// PostgresURL is the database; empty means the PG* environment variables.
	PostgresURL string
	// VersionSchema pins the pool to a schema version (see lifecycle.NewPool); empty
	// means unpinned, for a database no migration has touched yet.
	VersionSchema string
	// StateSchema is Tandem's state schema; empty means "tandem".
	StateSchema string
	// AppVersion is recorded in the instance registry.
	AppVersion string
	// Role is recorded in the instance registry: "api", "worker" or "all" (both).
	Role string
	// DrainDelay and ShutdownTimeout are passed to lifecycle.Server.
	DrainDelay, ShutdownTimeout time.Duration
	// NoDrain makes the instance exit at once on SIGTERM, closing its connections,
	// the way a naive server does; for comparison only.
	NoDrain bool
	// Logger receives the instance's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Setup creates the example's tables and seed data if they are missing. It is
// idempotent and safe to run from several instances at once.
func Setup(ctx context.Context, db lifecycle.DB) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// Concurrent CREATE ... IF NOT EXISTS can collide on the catalogs even under the
		// advisory lock; the next attempt sees what the other session committed.
		var pe *pgconn.PgError
		if err = setup(ctx, db); err == nil || !errors.As(err, &pe) || (pe.Code != "23505" && pe.Code != "42P07") {
			return err
		}
	}
	return err
}

func setup(ctx context.Context, db lifecycle.DB) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	stmts := []string{
		`SELECT pg_advisory_xact_lock(hashtextextended('tandem.examples.catalog', 0))`,
		`CREATE TABLE IF NOT EXISTS items (
			id          bigserial PRIMARY KEY,
			name        text NOT NULL,
			price_cents integer NOT NULL CHECK (price_cents >= 0),
			created_at  timestamptz NOT NULL DEFAULT now()
		)`,
		`CREATE TABLE IF NOT EXISTS blobs (
			name text PRIMARY KEY,
			data bytea NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS tasks (
			id         bigserial PRIMARY KEY,
			work_ms    integer NOT NULL DEFAULT 100,
			created_at timestamptz NOT NULL DEFAULT now(),
			done_at    timestamptz,
			done_by    text,
			attempts   integer NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (id) WHERE done_at IS NULL`,
		`INSERT INTO items (name, price_cents)
			SELECT 'item ' || g, (g * 37) % 10000 FROM generate_series(1, 1000) g
			WHERE NOT EXISTS (SELECT FROM items)`,
		`INSERT INTO blobs (name, data)
			SELECT 'sample', decode(repeat('74616e64656d20', ` + strconv.Itoa(BlobSize/7+1) + `), 'hex')
			ON CONFLICT (name) DO NOTHING`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("catalog setup: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	return nil
}

// Item is one row of the catalog.
type Item struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"price_cents"`
}

type service struct {
	pool  *pgxpool.Pool
	maint *lifecycle.Maintenance
	log   *slog.Logger
	id    string
}

// Handler returns the example's routes (without probes, which lifecycle.Server adds).
func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/items/{id}", s.getItem)
	mux.HandleFunc("GET /api/items", s.listItems)
	mux.HandleFunc("POST /api/items", s.addItem)
	mux.HandleFunc("POST /api/tasks", s.addTask)
	mux.Handle("GET /api/report", s.maint.Middleware(30*time.Second, http.HandlerFunc(s.report)))
	mux.HandleFunc("GET /content/{name}", s.content)
	mux.Handle("GET /events", lifecycle.LongLivedHandler(http.HandlerFunc(s.events)))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *service) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("request failed", "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

func (s *service) getItem(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id must be a number"})
		return
	}
	var it Item
	err = s.pool.QueryRow(r.Context(), "SELECT id, name, price_cents FROM items WHERE id = $1", id).
		Scan(&it.ID, &it.Name, &it.PriceCents)
	if errors.Is(err, pgx.ErrNoRows) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such item"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (s *service) listItems(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	rows, err := s.pool.Query(r.Context(), "SELECT id, name, price_cents FROM items ORDER BY id LIMIT $1", limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Item])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *service) addItem(w http.ResponseWriter, r *http.Request) {
	var in Item
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Name == "" || in.PriceCents < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"name": "...", "price_cents": n >= 0}`})
		return
	}
	err := s.pool.QueryRow(r.Context(), "INSERT INTO items (name, price_cents) VALUES ($1, $2) RETURNING id",
		in.Name, in.PriceCents).Scan(&in.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, in)
}

func (s *service) addTask(w http.ResponseWriter, r *http.Request) {
	var in struct {
		WorkMS int `json:"work_ms"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.WorkMS < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"work_ms": n >= 0}`})
		return
	}
	var id int64
	if err := s.pool.QueryRow(r.Context(), "INSERT INTO tasks (work_ms) VALUES ($1) RETURNING id", in.WorkMS).Scan(&id); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int64{"id": id})
}

func (s *service) report(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Items        int64 `json:"items"`
		AvgPrice     int64 `json:"avg_price_cents"`
		TasksPending int64 `json:"tasks_pending"`
		TasksDone    int64 `json:"tasks_done"`
	}
	err := s.pool.QueryRow(r.Context(), `SELECT (SELECT count(*) FROM items),
			(SELECT coalesce(avg(price_cents), 0)::bigint FROM items),
			(SELECT count(*) FROM tasks WHERE done_at IS NULL),
			(SELECT count(*) FROM tasks WHERE done_at IS NOT NULL)`).
		Scan(&out.Items, &out.AvgPrice, &out.TasksPending, &out.TasksDone)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// content streams a blob in 16 chunks spread over ?ms= milliseconds (default 1000).
func (s *service) content(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60_000 {
		ms = 1000
	}
	var data []byte
	err = s.pool.QueryRow(r.Context(), "SELECT data FROM blobs WHERE name = $1", r.PathValue("name")).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such blob"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	const chunks = 16
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	rc := http.NewResponseController(w)
	step := time.Duration(ms) * time.Millisecond / chunks
	size := (len(data) + chunks - 1) / chunks
	for off := 0; off < len(data); off += size {
		if off > 0 {
			select {
			case <-time.After(step):
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(data[off:min(off+size, len(data))]); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

// events sends a tick every second until the client leaves or the server drains, then
// a last "bye" event telling the client to reconnect elsewhere.
func (s *service) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		fmt.Fprintf(w, "event: tick\ndata: {\"n\": %d, \"instance\": %q}\n\n", n, s.id)
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			fmt.Fprint(w, "event: bye\ndata: {}\n\n")
			_ = rc.Flush()
			return
		case <-t.C:
		}
	}
}

// work is the worker's task: claim one pending task, "work" for its work_ms, mark it
// done, all in one transaction, so that a task interrupted before the commit returns to
// the queue.
func (s *service) work(ctx context.Context) (bool, error) {
	took := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		var ms int
		err := tx.QueryRow(ctx, `SELECT id, work_ms FROM tasks WHERE done_at IS NULL
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&id, &ms)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		took = true
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err = tx.Exec(ctx, `UPDATE tasks SET done_at = now(), done_by = $2, attempts = attempts + 1 WHERE id = $1`, id, s.id)
		return err
	})
	return took, err
}

// Run runs one instance until ctx is cancelled or SIGTERM/SIGINT arrives, then drains
// (or, with NoDrain, stops at once).
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	role := cfg.Role
	if role == "" {
		role = "all"
	}
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stopSignals()

	pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("parse connection string: %w", err)
	}
	pcfg.MaxConns = 10
	lifecycle.PinPoolConfig(pcfg, cfg.VersionSchema)
	// The pool outlives ctx: the drain still needs the database.
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), pcfg)
	if err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	defer pool.Close()
	if err := Setup(ctx, pool); err != nil {
		return err
	}
	if err := warmUp(ctx, pool, 4); err != nil {
		return err
	}

	metrics := lifecycle.NewMetrics(nil)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	maint, err := lifecycle.WatchMaintenance(bg, pool, lifecycle.MaintenanceOptions{
		Schema: cfg.StateSchema, Logger: log, Metrics: metrics})
	if err != nil {
		return err
	}
	schemaVersion := cfg.VersionSchema
	if schemaVersion == "" {
		schemaVersion = "public"
	}
	reg := &lifecycle.Registry{DB: pool, Schema: cfg.StateSchema, Logger: log}
	registration, err := reg.Register(ctx, lifecycle.Instance{
		App: App, Role: role, AppVersion: cfg.AppVersion, SchemaVersion: schemaVersion})
	if err != nil {
		return err
	}
	s := &service{pool: pool, maint: maint, log: log, id: registration.Instance().ID}
	log = log.With("instance", s.id)

	health := &lifecycle.Health{}
	health.AddReadinessCheck("database", lifecycle.PingCheck(pool))
	if cfg.VersionSchema != "" {
		health.AddReadinessCheck("schema version", lifecycle.SchemaCheck(pool, cfg.VersionSchema))
	}
	httpSrv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = registration.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	workerDone := make(chan struct{})
	if role == "all" || role == "worker" {
		grace := 20 * time.Second
		if cfg.NoDrain {
			grace = time.Millisecond
		}
		w := &lifecycle.Worker{Gate: maint, Grace: grace, Idle: 200 * time.Millisecond, Logger: log}
		go func() {
			defer close(workerDone)
			_ = w.Run(ctx, s.work)
		}()
	} else {
		close(workerDone)
	}

	if cfg.NoDrain {
		mux := http.NewServeMux()
		mux.Handle("/readyz", health.ReadyHandler())
		mux.Handle("/livez", health.LiveHandler())
		mux.Handle("/", s.handler())
		httpSrv.Handler = mux
		go func() { _ = httpSrv.Serve(ln) }()
		health.SetServing(true)
		_ = registration.SetState(ctx, lifecycle.StateReady)
		log.Info("serving without drain", "addr", ln.Addr().String())
		<-ctx.Done()
		log.Info("stopping at once (no drain)")
		_ = httpSrv.Close()
		<-workerDone
		return registration.Close(context.WithoutCancel(ctx))
	}

	srv := &lifecycle.Server{
		HTTP: httpSrv, DrainDelay: cfg.DrainDelay, ShutdownTimeout: cfg.ShutdownTimeout,
		Health: health, Metrics: metrics, Registration: registration, Logger: log,
		Signals: []os.Signal{}, // ctx carries the signals
	}
	err = srv.Serve(ctx, ln)
	<-workerDone
	return err
}

// warmUp opens n connections and runs the hot query on each before the instance reports
// ready, so that its first requests do not wait for new database sessions.
func warmUp(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("warm up the pool: %w", err)
		}
		conns = append(conns, c)
		var it Item
		if err := c.QueryRow(ctx, "SELECT id, name, price_cents FROM items WHERE id = $1", 1).
			Scan(&it.ID, &it.Name, &it.PriceCents); err != nil {
			return fmt.Errorf("warm up the pool: %w", err)
		}
	}
	return nil
}

// Main parses command-line flags and runs an instance. It returns the process's exit
// code: 0 after a clean stop, 1 when the instance failed, 2 on bad flags.
func Main(ctx context.Context, name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var cfg Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&cfg.PostgresURL, "postgres-url", os.Getenv("TANDEM_POSTGRES_URL"), "PostgreSQL URL (default: the PG* variables)")
	fs.StringVar(&cfg.VersionSchema, "version-schema", "", "pin connections to this version schema")
	fs.StringVar(&cfg.StateSchema, "state-schema", lifecycle.DefaultStateSchema, "Tandem's state schema")
	fs.StringVar(&cfg.AppVersion, "app-version", "dev", "app version recorded in the registry")
	fs.StringVar(&cfg.Role, "role", "all", "api, worker or all")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "keep serving this long after SIGTERM (0: lifecycle default, <0: none)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "wait this long for in-flight requests (0: lifecycle default)")
	fs.BoolVar(&cfg.NoDrain, "no-drain", false, "exit at once on SIGTERM (for comparison)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := Run(ctx, cfg); err != nil {
		cfg.Logger.Error("instance failed", "err", err)
		return 1
	}
	return 0
}
