// Package proving is Tandem's proving ground: it rolls the example service (package
// examples/catalog) under load, through a real HAProxy, and reports every failed request.
//
// Run starts, on 127.0.0.1 only, a throwaway PostgreSQL (unless given a database) and
// installs release v1 of the example with `tandem upgrade` itself (package upgrade, on
// the local backend of package upgrade/local: the instances are processes behind an
// HAProxy that a router follows with a lag, as the OpenShift router does). Then it sends
// load at a fixed rate over keep-alive connections, a share of it writes and long-lived
// streams, queues worker tasks, and at RolloutAt either restarts every instance the way a
// Deployment with maxSurge 1 and maxUnavailable 0 does, or (with Upgrade) upgrades the
// example to another release: expand, roll, wait for the old version to be gone,
// contract. Every request is recorded; the Report has the totals, failures by class,
// latency percentiles in steady state and during the rollout, the upgrade's steps, a
// checksum of the rows that existed before it, and a per-interval timeline, which
// WriteSVG draws.
package proving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/local"
)

// Bounds on a run: the load targets 127.0.0.1 only, and never more than this.
const (
	MaxRate      = 5000
	MaxInstances = local.MaxInstances
	MaxDuration  = time.Hour
	MaxRows      = 50_000_000
)

// Router modes, as package upgrade/local names them.
const (
	RouterReload  = local.RouterReload
	RouterRuntime = local.RouterRuntime
)

// ErrUpgrade is wrapped by Run's error when the upgrade under test failed (rather than
// the run being impossible to carry out).
var ErrUpgrade = errors.New("upgrade failed")

// Options configure a run. Zero values take the defaults in brackets.
type Options struct {
	// Instances is how many instances of the API serve [3].
	Instances int
	// Rate is the request rate per second [1000].
	Rate int
	// Duration is how long the load runs at least [60s]; the run is extended to cover
	// the whole rollout plus a few seconds.
	Duration time.Duration
	// RolloutAt is when the rolling restart or the upgrade starts [Duration/3].
	RolloutAt time.Duration
	// RouterLag is how long endpoint changes take to reach HAProxy [5s]; negative
	// means none.
	RouterLag time.Duration
	// RouterMode is RouterReload or RouterRuntime [RouterReload].
	RouterMode string
	// NoDrain runs instances that exit at once on SIGTERM.
	NoDrain bool
	// DrainDelay is the instances' drain delay [RouterLag + 3s].
	DrainDelay time.Duration
	// ShutdownTimeout is the instances' shutdown timeout [20s].
	ShutdownTimeout time.Duration
	// StreamShare is the share of requests that stream a blob slowly [0.02].
	// Negative means none.
	StreamShare float64
	// StreamDuration is how long each stream takes [1s].
	StreamDuration time.Duration
	// WriteShare is the share of requests that add an item [0.05]; negative means none.
	WriteShare float64
	// RequestTimeout is the client's timeout per request [30s].
	RequestTimeout time.Duration
	// TaskRate is how many worker tasks per second are queued during the run [10];
	// negative means none.
	TaskRate int

	// From is the release installed before the load starts [v1].
	From string
	// Upgrade is the release to upgrade to at RolloutAt; empty restarts From's
	// instances instead. The upgrade goes through the example's releases as a catalog:
	// from v1 to v3, two hops.
	Upgrade string
	// Then are the releases to go to after Upgrade, one after another, under the same
	// load: e.g. v1, v2, v3 after Upgrade v2 with v2's contract deferred rolls the app
	// back to v1, forward to v2, then upgrades to v3.
	Then []string
	// DeferContract are the releases whose contract is deferred (contract: deferred).
	DeferContract []string
	// Rows is how many items the table holds before the load starts [1000].
	Rows int

	// Tandem is the binary that runs instances ({tandem} in the releases' commands)
	// [this executable].
	Tandem string
	// InstanceEnv is added to the instances' environment.
	InstanceEnv []string

	// PostgresURL is a database to use; empty starts a throwaway server.
	PostgresURL string
	// HAProxy is the haproxy binary ["haproxy", then /usr/sbin/haproxy].
	HAProxy string
	// WorkDir receives configurations and logs; empty means a temporary directory,
	// removed at the end unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Instances == 0 {
		o.Instances = 3
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Duration == 0 {
		o.Duration = 60 * time.Second
	}
	if o.Instances < 1 || o.Instances > MaxInstances {
		return fmt.Errorf("instances: %d is out of range: 1 to %d", o.Instances, MaxInstances)
	}
	if o.Rate < 1 || o.Rate > MaxRate {
		return fmt.Errorf("rate: %d is out of range: 1 to %d requests per second", o.Rate, MaxRate)
	}
	if o.Duration < time.Second || o.Duration > MaxDuration {
		return fmt.Errorf("duration: %s is out of range: 1s to %s", o.Duration, MaxDuration)
	}
	if o.Rows < 0 || o.Rows > MaxRows {
		return fmt.Errorf("rows: %d is out of range: 0 to %d", o.Rows, MaxRows)
	}
	if o.RolloutAt <= 0 {
		o.RolloutAt = o.Duration / 3
	}
	if o.RouterLag == 0 {
		o.RouterLag = 5 * time.Second
	}
	if o.RouterLag < 0 {
		o.RouterLag = 0
	}
	switch o.RouterMode {
	case "":
		o.RouterMode = RouterReload
	case RouterReload, RouterRuntime:
	default:
		return fmt.Errorf("router mode %q: want %q or %q", o.RouterMode, RouterReload, RouterRuntime)
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = o.RouterLag + 3*time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 20 * time.Second
	}
	if o.StreamShare == 0 {
		o.StreamShare = 0.02
	}
	if o.WriteShare == 0 {
		o.WriteShare = 0.05
	}
	o.StreamShare, o.WriteShare = max(o.StreamShare, 0), max(o.WriteShare, 0)
	if o.StreamShare+o.WriteShare > 1 {
		return fmt.Errorf("stream share %.2f and write share %.2f add up to more than 1", o.StreamShare, o.WriteShare)
	}
	if o.StreamDuration <= 0 {
		o.StreamDuration = time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.TaskRate == 0 {
		o.TaskRate = 10
	}
	if o.Rows == 0 {
		o.Rows = 1000
	}
	if o.From == "" {
		o.From = catalog.Releases[0]
	}
	if o.Upgrade != "" && upgrade.CompareVersions(o.Upgrade, o.From) <= 0 {
		return fmt.Errorf("upgrade: %s is not newer than %s", o.Upgrade, o.From)
	}
	if len(o.Then) > 0 && o.Upgrade == "" {
		return fmt.Errorf("then: %v needs an upgrade to begin with", o.Then)
	}
	for _, v := range append(slices.Clone(o.Then), o.DeferContract...) {
		if !slices.Contains(catalog.Releases, v) {
			return fmt.Errorf("release %q: the example's releases are %v", v, catalog.Releases)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

type run struct {
	opts  Options
	dir   string
	dbURL string
	mu    sync.Mutex
	start time.Time // when the load started
	evs   []Event
	ups   []upgrade.Event // the orchestrator's events since the last resetEvents
}

// openUpgrader opens the orchestrator over be: each of its events goes into the run's
// timeline and its upgrade events (also, when not nil, is called with it first).
func (r *run) openUpgrader(ctx context.Context, be upgrade.Backend, log *slog.Logger, also func(upgrade.Event)) (*upgrade.Upgrader, error) {
	return upgrade.Open(ctx, upgrade.Options{
		PostgresURL: r.dbURL, Backend: be, Logger: log, PollInterval: 100 * time.Millisecond,
		OnEvent: func(e upgrade.Event) {
			if also != nil {
				also(e)
			}
			r.mu.Lock()
			r.ups = append(r.ups, e)
			r.mu.Unlock()
			what := e.Step + ": " + e.What
			if e.Duration > 0 {
				what += fmt.Sprintf(" (%s)", e.Duration.Round(time.Millisecond))
			}
			r.eventAt(e.At, what)
		},
		OnProgress: func(step, line string) { log.Debug(line, "step", step) },
	})
}

// keepLoad waits until the load has run for duration, and at least 3 s past the
// rollout's end (both from the start of the load).
func (r *run) keepLoad(ctx context.Context, duration, rolloutEnd time.Duration) {
	end := max(duration, rolloutEnd+3*time.Second)
	select {
	case <-time.After(time.Until(r.start.Add(end))):
	case <-ctx.Done():
	}
}

// resetEvents forgets the events so far (the install's are not part of the run).
func (r *run) resetEvents() {
	r.mu.Lock()
	r.evs, r.ups = nil, nil
	r.mu.Unlock()
}

// upgradeEvents are the orchestrator's events since the last resetEvents.
func (r *run) upgradeEvents() []upgrade.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ups)
}

func (r *run) since(t time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() {
		return 0
	}
	return t.Sub(r.start)
}

func (r *run) eventAt(t time.Time, what string) {
	at := r.since(t)
	r.mu.Lock()
	r.evs = append(r.evs, Event{AtS: at.Seconds(), What: what})
	r.mu.Unlock()
	r.opts.Logger.Info(what, "at", at.Round(time.Millisecond))
}

func (r *run) event(what string) { r.eventAt(time.Now(), what) }

func (r *run) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

// release reads release v of the example, materialised in the work directory.
func (r *run) release(v string) (*upgrade.Release, error) {
	rel, err := upgrade.ReadRelease(filepath.Join(r.dir, "releases", v))
	if err != nil {
		return nil, err
	}
	// The proving ground sets the API's size and the instances' drain.
	extra := []string{"--drain-delay", r.opts.DrainDelay.String(), "--shutdown-timeout", r.opts.ShutdownTimeout.String()}
	if r.opts.NoDrain {
		extra = append(extra, "--no-drain")
	}
	for i := range rel.Workloads {
		w := &rel.Workloads[i]
		if w.Local == nil {
			continue
		}
		if w.Role != "worker" {
			w.Local.Instances = r.opts.Instances
			// The router takes the new instances in one at a time, as a Deployment with
			// minReadySeconds above the router's lag makes it.
			w.MinReady.Duration = r.opts.RouterLag + time.Second
		}
		w.Local.Command = append(w.Local.Command, extra...)
	}
	if slices.Contains(r.opts.DeferContract, v) {
		rel.Contract = upgrade.ContractDeferred
	}
	return rel, nil
}

// catalog returns the example's releases, as the run sets them, as a release catalog.
func (r *run) catalog() (*upgrade.Catalog, error) {
	var rels []*upgrade.Release
	for _, v := range catalog.Releases {
		rel, err := r.release(v)
		if err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	return upgrade.NewCatalog(rels...)
}

// Run performs one proving run and returns its report. It returns an error when the
// run could not be carried out; failed requests are in the report, not an error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	r := &run{opts: opts}
	log := opts.Logger
	dir := opts.WorkDir
	if dir == "" {
		d, err := os.MkdirTemp("", "tandem-prove-")
		if err != nil {
			return nil, err
		}
		dir = d
		if !opts.KeepWorkDir {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r.dir = dir
	if opts.WorkDir != "" || opts.KeepWorkDir {
		log.Info("configurations and logs are kept", "dir", dir)
	}
	if err := os.CopyFS(filepath.Join(dir, "releases"), catalog.ReleaseFiles); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("write the example's releases: %w", err)
	}
	from, err := r.release(opts.From)
	if err != nil {
		return nil, err
	}
	cat, err := r.catalog()
	if err != nil {
		return nil, err
	}
	var targets []string
	if opts.Upgrade != "" {
		targets = append([]string{opts.Upgrade}, opts.Then...)
	}

	// PostgreSQL.
	r.dbURL = opts.PostgresURL
	if r.dbURL == "" {
		log.Info("starting a throwaway PostgreSQL")
		srv, err := pgserver.Start(ctx, pgserver.Options{MaxConnections: 300})
		if err != nil {
			return nil, fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer srv.Stop()
		r.dbURL = srv.URL("postgres")
	}
	pool, err := pgxpool.New(ctx, r.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer pool.Close()

	// The local backend, and the orchestrator over it.
	be, err := local.New(local.Options{
		Dir: filepath.Join(dir, "local"), RouterLag: opts.RouterLag, RouterMode: opts.RouterMode,
		HAProxy: opts.HAProxy, Tandem: opts.Tandem, Env: opts.InstanceEnv, Logger: log,
		OnEvent: r.event,
	})
	if err != nil {
		return nil, err
	}
	defer be.Shutdown(context.Background())
	up, err := r.openUpgrader(ctx, be, log, nil)
	if err != nil {
		return nil, err
	}
	defer up.Close()

	// Install the first release and seed it (the seed writes v1's columns), then upgrade
	// without load to the release the run starts from; wait for the router.
	var installed *upgrade.Record
	for _, v := range catalog.Releases {
		rel, err := r.release(v)
		if err != nil {
			return nil, err
		}
		log.Info("installing the example", "release", v)
		if installed, err = up.Apply(ctx, rel); err != nil {
			return nil, fmt.Errorf("install %s: %w", v, err)
		}
		if v == catalog.Releases[0] {
			log.Info("seeding", "rows", opts.Rows)
			seedPool, err := lifecycle.NewPool(ctx, r.dbURL, installed.NewVersionSchema)
			if err != nil {
				return nil, err
			}
			err = catalog.Seed(ctx, seedPool, opts.Rows)
			seedPool.Close()
			if err != nil {
				return nil, err
			}
		}
		if v == from.Version {
			break
		}
	}
	if err := settle(ctx, pool, log); err != nil {
		return nil, err
	}
	be.WaitRouter()
	base := be.RouterURL()
	if err := waitServed(ctx, base+"/api/items/1"); err != nil {
		return nil, err
	}
	before, err := checksum(ctx, pool, installed.NewVersionSchema, -1)
	if err != nil {
		return nil, err
	}
	r.resetEvents() // the install's events are not part of the run's timeline

	// Load, tasks, and a watch on the registry.
	gen := newLoadGen(base, opts.Rate, opts.StreamShare, opts.WriteShare, opts.StreamDuration, opts.RequestTimeout)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	r.event(fmt.Sprintf("load starts: %d req/s through HAProxy (%s), %d instances of %s", opts.Rate, opts.RouterMode, opts.Instances, from.Version))
	loadDone := make(chan struct{})
	go func() { gen.run(loadCtx, r.start); close(loadDone) }()
	tasks := &taskFeeder{pool: pool, rate: opts.TaskRate}
	tasksDone := make(chan struct{})
	go func() { tasks.run(loadCtx); close(tasksDone) }()
	watch := &registryWatch{reg: &lifecycle.Registry{DB: pool}, app: catalog.App, on: r.eventAt}
	watchDone := make(chan struct{})
	go func() { watch.run(loadCtx); close(watchDone) }()

	select {
	case <-time.After(time.Until(r.start.Add(opts.RolloutAt))):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rolloutStart := time.Since(r.start)
	var recs []*upgrade.Record
	if len(targets) > 0 {
		for _, to := range targets {
			r.event(fmt.Sprintf("upgrade to %s starts", to))
			path, err := up.ApplyPath(ctx, cat, to, upgrade.PathOptions{})
			if err != nil {
				return nil, fmt.Errorf("%w to %s: %w", ErrUpgrade, to, err)
			}
			recs = append(recs, path.Upgrades...)
		}
	} else {
		r.event("rolling restart starts")
		if err := restart(ctx, be, r.dbURL, from, installed); err != nil {
			return nil, err
		}
		if err := waitDrained(ctx, be, installed, from, opts.DrainDelay+opts.ShutdownTimeout+30*time.Second); err != nil {
			return nil, err
		}
	}
	be.WaitRouter()
	rolloutEnd := time.Since(r.start)
	r.event("rollout over")

	r.keepLoad(ctx, opts.Duration, rolloutEnd)
	stopLoad()
	<-loadDone
	<-tasksDone
	<-watchDone
	r.event("load stops")
	gen.wait()

	all := gen.records()
	rep := buildReport(opts, all, r.events(), rolloutStart, rolloutEnd)
	rep.TasksDone, rep.TasksPending, rep.TasksDoubled = tasks.settle(ctx, pool, 30*time.Second)
	rep.TasksQueued = rep.TasksDone + rep.TasksPending
	if len(recs) > 0 {
		after, err := checksum(ctx, pool, recs[len(recs)-1].NewVersionSchema, before.MaxID)
		if err != nil {
			return rep, err
		}
		rep.Upgrade = upgradeReport(r, recs, r.upgradeEvents(), watch, before, after)
		rep.stepLatency(all)
	}
	if err := be.RouterErr(); err != nil {
		return rep, fmt.Errorf("router: %w", err)
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

// restart rolls every workload of rel to a new revision of the same release: a rolling
// restart.
func restart(ctx context.Context, be *local.Backend, dbURL string, rel *upgrade.Release, installed *upgrade.Record) error {
	for _, w := range rel.RollOrder() {
		t := upgrade.Target{App: rel.App, Release: rel.Version, VersionSchema: installed.NewVersionSchema,
			Revision:    upgrade.Revision(rel.Version, installed.NewVersionSchema) + "/restart",
			PostgresURL: dbURL, Dir: rel.Dir, Workload: w}
		if err := be.Roll(ctx, t, nil, nil); err != nil {
			return fmt.Errorf("restart %s: %w", w.Name, err)
		}
	}
	return nil
}

// waitDrained waits until every instance of the install's revision has exited.
func waitDrained(ctx context.Context, be *local.Backend, installed *upgrade.Record, rel *upgrade.Release, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	old := upgrade.Revision(rel.Version, installed.NewVersionSchema)
	for {
		left := 0
		for _, in := range be.All() {
			if in.Revision == old {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d old instance(s) did not exit after SIGTERM within %s", left, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitServed(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing served through HAProxy at %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// taskFeeder queues worker tasks at a fixed rate straight into the database.
type taskFeeder struct {
	pool *pgxpool.Pool
	rate int
}

func (f *taskFeeder) run(ctx context.Context) {
	if f.rate <= 0 {
		return
	}
	t := time.NewTicker(time.Second / time.Duration(f.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = f.pool.Exec(ctx, "INSERT INTO tasks (work_ms) VALUES (50)")
	}
}

// settle waits for the queue to empty and returns done, pending and doubled (done more
// than once) counts. A backlog built up while maintenance mode held the workers back
// takes a while: it waits as long as the workers make progress, giving up after stall
// without any.
func (f *taskFeeder) settle(ctx context.Context, pool *pgxpool.Pool, stall time.Duration) (done, pending, doubled int) {
	last, progressAt := -1, time.Now()
	for {
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NOT NULL),
			count(*) FILTER (WHERE done_at IS NULL), count(*) FILTER (WHERE attempts > 1) FROM tasks`).Scan(&done, &pending, &doubled)
		if done != last {
			last, progressAt = done, time.Now()
		}
		if err != nil || pending == 0 || time.Since(progressAt) > stall || ctx.Err() != nil {
			return done, pending, doubled
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// registryWatch follows the instance registry and records when the last instance of
// each app version left it: the independent witness that contract came after the old
// version was gone.
type registryWatch struct {
	reg *lifecycle.Registry
	app string
	on  func(time.Time, string)

	mu       sync.Mutex
	lastSeen map[string]time.Time // app version -> last time an instance was seen
	gone     map[string]time.Time // app version -> when it was first seen with none
}

func (w *registryWatch) run(ctx context.Context) {
	w.lastSeen, w.gone = map[string]time.Time{}, map[string]time.Time{}
	for ctx.Err() == nil {
		vs, err := w.reg.Versions(ctx)
		now := time.Now()
		if err == nil {
			alive := map[string]bool{}
			for _, v := range vs {
				if v.App == w.app {
					alive[v.AppVersion] = true
				}
			}
			w.mu.Lock()
			for v := range alive {
				w.lastSeen[v] = now
				delete(w.gone, v)
			}
			for v := range w.lastSeen {
				if !alive[v] {
					if _, ok := w.gone[v]; !ok {
						w.gone[v] = now
						w.on(now, fmt.Sprintf("registry: the last instance of %s left", v))
					}
				}
			}
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastAlive returns the last time an instance of version v was seen alive, if v was
// seen with none since (zero otherwise): the departure happened after it.
func (w *registryWatch) lastAlive(v string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, gone := w.gone[v]; !gone {
		return time.Time{}
	}
	return w.lastSeen[v]
}

// rowsSum is a checksum of the items that existed before the upgrade.
type rowsSum struct {
	Rows  int64  `json:"rows"`
	MaxID int64  `json:"max_id"`
	MD5   string `json:"md5"`
}

// checksum sums the items with id <= maxID (all when maxID < 0), read through version
// schema vs, over the columns no release changes the values of: id, the name (renamed
// title in v2), the price (its type changes, not its value) and created_at.
// settle leaves the freshly seeded table as a long-lived one is before the load starts:
// vacuumed (its visibility map and hint bits set, so the load's first reads write nothing and
// autovacuum has no reason to wake up mid-run), analysed, and checkpointed. Without it the
// first minute of the steady window measures the seed's after-effects, not the app. A server
// that refuses CHECKPOINT to this role (PostgreSQL 15: pg_checkpoint) is left to its own.
func settle(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) items"); err != nil {
		return fmt.Errorf("settle the seeded table: %w", err)
	}
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
			log.Info("settle: no CHECKPOINT (not allowed to this role)", "err", err)
			return nil
		}
		return fmt.Errorf("settle the seeded table: %w", err)
	}
	return nil
}

func checksum(ctx context.Context, pool *pgxpool.Pool, vs string, maxID int64) (rowsSum, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rowsSum{}, err
	}
	defer conn.Release()
	var s rowsSum
	err = conn.QueryRow(ctx, `SELECT set_config('search_path', $1, false)`, vs).Scan(new(string))
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT count(*), coalesce(max(id), 0), coalesce(md5(string_agg(
				id::text || '|' || coalesce(to_jsonb(i)->>'title', to_jsonb(i)->>'name') || '|' || price_cents::text || '|' || created_at::text,
				',' ORDER BY id)), '')
			FROM items i WHERE $1::bigint < 0 OR id <= $1::bigint`, maxID).Scan(&s.Rows, &s.MaxID, &s.MD5)
	}
	_, _ = conn.Exec(context.Background(), "RESET search_path")
	if err != nil {
		return s, fmt.Errorf("checksum the items on %s: %w", vs, err)
	}
	return s, nil
}

// upgradeReport reports the upgrades recs (the hops of the run, in order) from their
// events evs, in the same order.
func upgradeReport(r *run, recs []*upgrade.Record, evs []upgrade.Event, w *registryWatch, before, after rowsSum) *UpgradeReport {
	first, last := recs[0], recs[len(recs)-1]
	u := &UpgradeReport{From: first.From, To: last.To, Migration: last.Migration,
		OldVersionSchema: first.OldVersionSchema, NewVersionSchema: last.NewVersionSchema,
		ChecksumBefore: before, ChecksumAfter: after, RowsIntact: before == after}
	for _, rec := range recs {
		u.Hops = append(u.Hops, fmt.Sprintf("%s -> %s (%s)", orDash(rec.From), rec.To, rec.Mode))
	}
	began := map[string]time.Time{}
	var contracts, completes []time.Time
	for _, e := range evs {
		if e.What == "begins" {
			began[e.Step] = e.At
			switch e.Step {
			case upgrade.StepContract:
				contracts = append(contracts, e.At)
			case upgrade.StepCompleteDeferred:
				completes = append(completes, e.At)
			}
		}
		if e.What == "done" && !began[e.Step].IsZero() {
			u.Steps = append(u.Steps, StepTiming{Step: e.Step, StartS: r.since(began[e.Step]).Seconds(),
				DurationS: e.Duration.Seconds()})
		}
	}
	// Each contract, the hops' own and the deferred ones completed first, must come after
	// the last instance of the release whose schema version it drops.
	check := func(rec *upgrade.Record, what, step string, at []time.Time, old string) []time.Time {
		c := ContractCheck{Upgrade: rec.ID, Contract: what, Step: step, OldRelease: old}
		if len(at) > 0 {
			c.AtS, at = r.since(at[0]).Seconds(), at[1:]
		}
		if t := w.lastAlive(old); !t.IsZero() {
			c.LastOldSeenS = r.since(t).Seconds()
		}
		c.After = c.AtS > 0 && c.LastOldSeenS > 0 && c.AtS > c.LastOldSeenS
		u.Contracts = append(u.Contracts, c)
		return at
	}
	for _, rec := range recs {
		steps := rec.Steps()
		if slices.Contains(steps, upgrade.StepCompleteDeferred) && rec.PendingContract != nil {
			completes = check(rec, rec.PendingContract.Release+"'s deferred contract", upgrade.StepCompleteDeferred, completes, rec.PendingContract.OldRelease)
		}
		if slices.Contains(steps, upgrade.StepContract) && rec.Migration != "" {
			contracts = check(rec, rec.To+"'s contract", upgrade.StepContract, contracts, rec.From)
		}
	}
	u.ContractAfterOldGone = true
	for _, c := range u.Contracts {
		u.ContractAfterOldGone = u.ContractAfterOldGone && c.After
	}
	if n := len(u.Contracts); n > 0 {
		u.ContractAtS, u.LastOldSeenS = u.Contracts[n-1].AtS, u.Contracts[n-1].LastOldSeenS
	}
	return u
}

// ContractCheck is one contract of a run's upgrades: when it began, and when a watch on
// the registry last saw an instance of the release whose schema version it drops.
type ContractCheck struct {
	Upgrade  int64  `json:"upgrade"`
	Contract string `json:"contract"`
	// Step is the upgrade step that ran it: upgrade.StepContract, or
	// upgrade.StepCompleteDeferred for a contract an earlier upgrade deferred.
	Step         string  `json:"step"`
	OldRelease   string  `json:"old_release"`
	AtS          float64 `json:"at_s"`
	LastOldSeenS float64 `json:"last_old_seen_in_registry_s"`
	After        bool    `json:"after"`
}

// UpgradeReport is what the proving ground saw of an upgrade.
type UpgradeReport struct {
	From             string       `json:"from"`
	To               string       `json:"to"`
	Migration        string       `json:"migration"`
	OldVersionSchema string       `json:"old_version_schema"`
	NewVersionSchema string       `json:"new_version_schema"`
	Steps            []StepTiming `json:"steps"`
	// Hops are the upgrades of the run, in order, with their modes.
	Hops []string `json:"hops"`
	// Contracts are the run's contracts, each with when it began and the last time a
	// watch on the registry (polling every 50 ms, apart from the orchestrator) saw an
	// instance of the release whose schema version it drops; ContractAtS and
	// LastOldSeenS are the last one's (in seconds since the load started).
	// ContractAfterOldGone holds when every contract came after.
	Contracts            []ContractCheck `json:"contracts"`
	ContractAtS          float64         `json:"contract_at_s"`
	LastOldSeenS         float64         `json:"last_old_seen_in_registry_s"`
	ContractAfterOldGone bool            `json:"contract_after_old_gone"`
	// The rows that existed before the upgrade, summed before and after it.
	ChecksumBefore rowsSum `json:"checksum_before"`
	ChecksumAfter  rowsSum `json:"checksum_after"`
	RowsIntact     bool    `json:"rows_intact"`
}

// StepTiming is one step of the upgrade, with the latency of the API requests sent
// while it ran (see Report.stepLatency).
type StepTiming struct {
	Step      string  `json:"step"`
	StartS    float64 `json:"start_s"`
	DurationS float64 `json:"duration_s"`
	// Requests are the API requests sent while the step ran; P99MS and MaxMS their
	// latency.
	Requests int     `json:"requests"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
	// Slow counts those slower than twice the steady p99: the target (p99 during the
	// rollout at most twice the steady p99) holds while all steps' slow requests,
	// with those sent between steps, stay under 1% of the rollout's requests.
	Slow int `json:"slow"`
}

func (u *UpgradeReport) summary(w io.Writer) {
	fmt.Fprintf(w, "upgrade %s -> %s (schema %s -> %s):\n", orDash(u.From), u.To, u.OldVersionSchema, u.NewVersionSchema)
	for _, s := range u.Steps {
		fmt.Fprintf(w, "  %-18s at %6.1fs  took %6.1fs  p99 %7.1f ms  max %7.1f ms  %5d of %6d requests over 2× steady p99\n",
			s.Step, s.StartS, s.DurationS, s.P99MS, s.MaxMS, s.Slow, s.Requests)
	}
	if len(u.Hops) > 1 {
		fmt.Fprintf(w, "  hops: %s\n", strings.Join(u.Hops, ", "))
	}
	if len(u.Contracts) == 0 {
		fmt.Fprintln(w, "  no contract ran (deferred)")
	}
	for _, c := range u.Contracts {
		verdict := "yes"
		if !c.After {
			verdict = "NO"
		}
		fmt.Fprintf(w, "  a %s instance was last seen in the registry at %.2fs; %s began at %.2fs: after it: %s\n",
			c.OldRelease, c.LastOldSeenS, c.Contract, c.AtS, verdict)
	}
	intact := "intact"
	if !u.RowsIntact {
		intact = "CHANGED"
	}
	fmt.Fprintf(w, "  rows before the upgrade: %d, checksum %s before, %s after: %s\n",
		u.ChecksumBefore.Rows, short(u.ChecksumBefore.MD5), short(u.ChecksumAfter.MD5), intact)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Proven reports whether the run held up: no failed request, no lost or doubled task,
// and for an upgrade rows intact and contract after the last old instance left. It
// returns the reasons when not. Latency is reported apart (see LatencyRatio): on a
// shared machine it measures the machine as much as the rollout.
func (r *Report) Proven() (bool, []string) {
	var why []string
	if r.Failed > 0 {
		why = append(why, fmt.Sprintf("%d requests failed", r.Failed))
	}
	if r.TasksPending > 0 || r.TasksDoubled > 0 {
		why = append(why, fmt.Sprintf("tasks: %d pending, %d done twice", r.TasksPending, r.TasksDoubled))
	}
	if u := r.Upgrade; u != nil {
		if !u.RowsIntact {
			why = append(why, "rows changed")
		}
		if !u.ContractAfterOldGone {
			why = append(why, "contract did not come after the last old instance left the registry")
		}
	}
	if k := r.Kube; k != nil && !k.ContractAfterOldPods {
		w := "contract did not come after the last old pod was deleted"
		if len(k.OldPodsAtContract) > 0 {
			w += ": " + strings.Join(k.OldPodsAtContract, "; ")
		}
		why = append(why, w)
	}
	return len(why) == 0, why
}

// InstanceMain runs one instance of the example app from a release's command line:
// args are what follows the binary's name in the release's command ({tandem} prove
// instance --role ...). A test binary or benchmark that stands in for the tandem
// binary calls it, and exits with its result.
func InstanceMain(ctx context.Context, args []string) int {
	if len(args) >= 2 && args[0] == "prove" && args[1] == "instance" {
		args = args[2:]
	}
	return catalog.Main(ctx, "tandem prove instance", args)
}

// LatencyRatio is the p99 during the rollout over the steady p99 (0 without a steady
// p99); the target is at most 2.
func (r *Report) LatencyRatio() float64 {
	if r.SteadyP99MS <= 0 {
		return 0
	}
	return r.RolloutP99MS / r.SteadyP99MS
}
