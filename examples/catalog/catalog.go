// Package catalog is Tandem's example service: a small JSON API over PostgreSQL, a content
// endpoint that streams a blob slowly, a server-sent events feed, and a worker consuming a
// Postgres task queue with FOR UPDATE SKIP LOCKED. It is built on package lifecycle and is
// what `tandem prove` rolls under load and `tandem upgrade` upgrades.
//
// The service has three releases (see Releases and ReleaseFiles) whose schemas differ in ways
// that break a naive rolling update; each release's code reads and writes only through its
// own version schema, and its HTTP API is the same in every release.
//
// Routes, by role: api serves the API and the content (the web tier behind the router);
// content serves only /content and /events (a content tier split out); worker consumes
// the task queue; all does everything. Every role serves the probes. Every answer
// carries the release that made it in the header X-Tandem-Release.
//
//	GET  /api/items/{id}   one item, as JSON
//	GET  /api/items        the first items (?limit=, at most 100)
//	POST /api/items        add an item: {"name": "...", "price_cents": 100}
//	POST /api/tasks        queue a task: {"work_ms": 100}
//	GET  /api/report       a costly aggregate; 503 while maintenance mode is on
//	GET  /content/{name}   a 64 KiB blob, streamed in chunks over ?ms= milliseconds
//	GET  /events           server-sent events until the client leaves or the server stops
//	GET  /readyz, /livez, /metrics
//
// The worker role consumes the task queue (FOR UPDATE SKIP LOCKED).
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
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
	// Release selects the release's code (its SQL): one of Releases; empty means "v1".
	Release string
	// AppVersion is recorded in the instance registry; empty means Release.
	AppVersion string
	// Role is what the instance does, recorded in the instance registry: "api" (the
	// /api routes), "content" (/content and /events), "worker" (the task worker) or
	// "all" (everything); empty means "all".
	Role string
	// DrainDelay and ShutdownTimeout are passed to lifecycle.Server.
	DrainDelay, ShutdownTimeout time.Duration
	// NoDrain makes the instance exit at once on SIGTERM, closing its connections,
	// the way a naive server does; for comparison only.
	NoDrain bool
	// Logger receives the instance's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Roles are the values of Config.Role.
var Roles = []string{"api", "content", "worker", "all"}

// Item is one row of the catalog.
type Item struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"price_cents"`
}

type service struct {
	sql   queries
	pool  *pgxpool.Pool
	maint *lifecycle.Maintenance
	log   *slog.Logger
	id    string
	// release is the release this instance runs, sent in X-Tandem-Release.
	release string
}

// ReleaseHeader is the response header naming the release that answered.
const ReleaseHeader = "X-Tandem-Release"

// handler returns the routes of role (without probes, which lifecycle.Server adds),
// each answer naming the release; the others answer 404.
func (s *service) handler(role string) http.Handler {
	mux := s.routes(role)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ReleaseHeader, s.release)
		mux.ServeHTTP(w, r)
	})
}

// routes returns the routes of role.
func (s *service) routes(role string) *http.ServeMux {
	mux := http.NewServeMux()
	if role == "api" || role == "all" {
		mux.HandleFunc("GET /api/items/{id}", s.getItem)
		mux.HandleFunc("GET /api/items", s.listItems)
		mux.HandleFunc("POST /api/items", s.addItem)
		mux.HandleFunc("POST /api/tasks", s.addTask)
		mux.Handle("GET /api/report", s.maint.Middleware(30*time.Second, http.HandlerFunc(s.report)))
	}
	if role == "content" || role == "api" || role == "all" {
		mux.HandleFunc("GET /content/{name}", s.content)
		mux.Handle("GET /events", lifecycle.LongLivedHandler(http.HandlerFunc(s.events)))
	}
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
	err = s.pool.QueryRow(r.Context(), s.sql.getItem, id).Scan(&it.ID, &it.Name, &it.PriceCents)
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
	rows, err := s.pool.Query(r.Context(), s.sql.listItems, limit)
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
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Name == "" ||
		in.PriceCents < 0 || in.PriceCents > math.MaxInt32 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"name": "...", "price_cents": n >= 0}`})
		return
	}
	if s.sql.maxName > 0 && utf8.RuneCountInString(in.Name) > s.sql.maxName {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("name longer than %d characters", s.sql.maxName)})
		return
	}
	err := s.pool.QueryRow(r.Context(), s.sql.addItem, in.Name, in.PriceCents).Scan(&in.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, in)
}

// contentSQL reads a blob by name, in every release.
const contentSQL = "SELECT data FROM blobs WHERE name = $1"

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
	err = s.pool.QueryRow(r.Context(), contentSQL, r.PathValue("name")).Scan(&data)
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
	role, release, err := cfg.roleAndRelease()
	if err != nil {
		return err
	}
	q := releaseSQL[release]
	appVersion := cfg.AppVersion
	if appVersion == "" {
		appVersion = release
	}
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stopSignals()

	pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("parse connection string: %w", err)
	}
	// The API serves concurrent requests, and streams hold a session for their length; a
	// worker runs one task at a time beside the maintenance watch (LISTEN) and the
	// registry's heartbeat. Every session is a server process that starts and ends with the
	// instance, on each step of a rolling update: no more than the role uses.
	pcfg.MaxConns = 10
	if role == "worker" {
		pcfg.MaxConns = 4
	}
	lifecycle.PinPoolConfig(pcfg, cfg.VersionSchema)
	// The pool outlives ctx: the drain still needs the database.
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), pcfg)
	if err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	// At the end, one session at a time: a pool's worth of sessions ending at once stalls
	// the database's other sessions (see lifecycle.ClosePool).
	defer lifecycle.ClosePool(context.WithoutCancel(ctx), pool, sessionGap)
	// Every connection of the pool, before the instance reports ready: a new instance
	// takes a whole share of the traffic at once when the router reloads.
	if err := warmUp(ctx, pool, q); err != nil {
		return err
	}

	metrics := lifecycle.NewMetrics()
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
		App: App, Role: role, AppVersion: appVersion, SchemaVersion: schemaVersion})
	if err != nil {
		return err
	}
	s := &service{sql: q, pool: pool, maint: maint, log: log, id: registration.Instance().ID, release: release}
	log = log.With("instance", s.id, "release", release, "role", role)
	s.log = log

	health := &lifecycle.Health{}
	health.AddReadinessCheck("database", lifecycle.PingCheck(pool))
	if cfg.VersionSchema != "" {
		health.AddReadinessCheck("schema version", lifecycle.SchemaCheck(pool, cfg.VersionSchema))
	}
	httpSrv := &http.Server{Handler: s.handler(role), ReadHeaderTimeout: 10 * time.Second}
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
		mux.Handle("/", s.handler(role))
		httpSrv.Handler = mux
		go func() { _ = httpSrv.Serve(ln) }()
		health.SetServing(true)
		_ = registration.SetState(ctx, lifecycle.StateReady)
		log.Info("serving without drain", "release", release, "role", role, "addr", ln.Addr().String())
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

// sessionGap spaces the database sessions an instance opens when it starts and closes
// when it stops: each is a server process, and a pool's worth starting or ending at once
// stalls the other sessions of a small server (see lifecycle.WarmPool and ClosePool).
const sessionGap = 50 * time.Millisecond

// warmUp opens every connection of the pool, sessionGap apart, and reads an item and the
// sample blob through each before the instance reports ready (see lifecycle.WarmPool), so
// that its first requests neither wait for new database sessions nor for a first parse
// and plan. It fails when the release's schema is missing.
func warmUp(ctx context.Context, pool *pgxpool.Pool, q queries) error {
	err := lifecycle.WarmPool(ctx, pool, sessionGap, func(ctx context.Context, c *pgx.Conn) error {
		var it Item
		err := c.QueryRow(ctx, q.getItem, 1).Scan(&it.ID, &it.Name, &it.PriceCents)
		if err == nil || errors.Is(err, pgx.ErrNoRows) {
			var data []byte
			err = c.QueryRow(ctx, contentSQL, SampleBlob).Scan(&data)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%w (is the release's schema there? apply its migrations with tandem migrate)", err)
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
	fs.StringVar(&cfg.Release, "release", Releases[0], "the release's code to run: "+strings.Join(Releases, ", "))
	fs.StringVar(&cfg.AppVersion, "app-version", "", "app version recorded in the registry (default: the release)")
	fs.StringVar(&cfg.Role, "role", "all", "what to run: "+strings.Join(Roles, ", "))
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "keep serving this long after SIGTERM (0: lifecycle default, <0: none)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "wait this long for in-flight requests (0: lifecycle default)")
	fs.BoolVar(&cfg.NoDrain, "no-drain", false, "exit at once on SIGTERM (for comparison)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	if _, _, err := cfg.roleAndRelease(); err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", name, err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := Run(ctx, cfg); err != nil {
		cfg.Logger.Error("instance failed", "err", err)
		return 1
	}
	return 0
}

// roleAndRelease returns cfg's role and release with their defaults, or an error naming
// the valid values.
func (cfg *Config) roleAndRelease() (role, release string, err error) {
	role, release = cfg.Role, cfg.Release
	if role == "" {
		role = "all"
	}
	if release == "" {
		release = Releases[0]
	}
	if !slices.Contains(Roles, role) {
		return "", "", fmt.Errorf("unknown role %q (roles: %s)", role, strings.Join(Roles, ", "))
	}
	if !slices.Contains(Releases, release) {
		return "", "", fmt.Errorf("unknown release %q (releases: %s)", release, strings.Join(Releases, ", "))
	}
	return role, release, nil
}
