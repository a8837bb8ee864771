// Package proving is Tandem's proving ground: it rolls the example service (package
// examples/catalog) under load, through a real HAProxy, and reports every failed request.
//
// Run starts, on 127.0.0.1 only, a throwaway PostgreSQL (unless given a database), N
// instances of the example app as separate processes, an HAProxy in front of them, and a
// load generator sending requests at a fixed rate over keep-alive connections, a share of
// them long-lived streams. A "router" applies endpoint changes to HAProxy with a lag, as
// the OpenShift router does (5 s by default; changes falling due within a second of each
// other are applied together, as that router coalesces its reloads), by reloading HAProxy
// or through its runtime API. Then it restarts every instance the way a Deployment with maxSurge 1 and
// maxUnavailable 0 does: start a new instance, wait until it is ready, stop an old one;
// the endpoint set changes at once, the router follows after its lag. Every request is
// recorded; the Report has the totals, failures by class, latency percentiles in steady
// state and during the rollout, and a per-interval timeline, which WriteSVG draws.
package proving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/pgserver"
)

// Bounds on a run: the load targets 127.0.0.1 only, and never more than this.
const (
	MaxRate      = 5000
	MaxInstances = 20
	MaxDuration  = time.Hour
)

// Options configure a run. Zero values take the defaults in brackets.
type Options struct {
	// Instances is how many instances serve [3].
	Instances int
	// Rate is the request rate per second [1000].
	Rate int
	// Duration is how long the load runs at least [60s]; the run is extended to cover
	// the whole rollout plus a few seconds.
	Duration time.Duration
	// RolloutAt is when the rolling restart starts [Duration/3].
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
	// RequestTimeout is the client's timeout per request [30s].
	RequestTimeout time.Duration
	// TaskRate is how many worker tasks per second are queued during the run [10];
	// negative means none.
	TaskRate int

	// InstanceCommand is the command line that runs one instance of the example app
	// (catalog.Main's flags are appended). Required.
	InstanceCommand []string
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
	if o.Instances <= 0 {
		o.Instances = 3
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
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
	if o.StreamShare < 0 {
		o.StreamShare = 0
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(o.InstanceCommand) == 0 {
		return errors.New("no instance command")
	}
	// The proving ground loads this machine only, and boundedly.
	if o.Rate > MaxRate || o.Instances > MaxInstances || o.Duration > MaxDuration {
		return fmt.Errorf("at most %d req/s, %d instances and %s of load", MaxRate, MaxInstances, MaxDuration)
	}
	return nil
}

// instance is one running process of the example app.
type instance struct {
	name string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type run struct {
	opts   Options
	dir    string
	dbURL  string
	start  time.Time // when the load started
	mu     sync.Mutex
	events []Event
	seq    int
}

func (r *run) event(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Duration(0)
	if !r.start.IsZero() {
		at = time.Since(r.start)
	}
	r.events = append(r.events, Event{AtS: at.Seconds(), What: what})
	r.opts.Logger.Info(what, "at", at.Round(time.Millisecond))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (r *run) startInstance(gen int) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.seq++
	name := fmt.Sprintf("i%d", r.seq)
	r.mu.Unlock()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append(append([]string(nil), r.opts.InstanceCommand[1:]...),
		"--listen", addr, "--postgres-url", r.dbURL, "--app-version", "gen"+strconv.Itoa(gen),
		"--drain-delay", r.opts.DrainDelay.String(), "--shutdown-timeout", r.opts.ShutdownTimeout.String())
	if r.opts.NoDrain {
		args = append(args, "--no-drain")
	}
	log, err := os.Create(filepath.Join(r.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.opts.InstanceCommand[0], args...)
	cmd.Env = append(os.Environ(), r.opts.InstanceEnv...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start instance: %w", err)
	}
	in := &instance{name: name, addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		in.err = cmd.Wait()
		log.Close()
		close(in.done)
	}()
	return in, nil
}

// waitReady polls the instance's readiness like a kubelet's readiness probe.
func (r *run) waitReady(ctx context.Context, in *instance) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.Get("http://" + in.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-in.done:
			return fmt.Errorf("instance %s exited before it was ready: %v; its log ends with:\n%s", in.name, in.err,
				tail(filepath.Join(r.dir, in.name+".log"), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s not ready after 90s (see %s)", in.name, filepath.Join(r.dir, in.name+".log"))
		}
	}
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// router applies endpoint changes to HAProxy after a lag.
type router struct {
	r       *run
	hap     *haproxy
	lag     time.Duration
	mu      sync.Mutex
	current []endpoint
	queue   chan routerChange
	idle    sync.WaitGroup
	failed  error
}

type routerChange struct {
	due time.Time
	eps []endpoint
	why string
}

func (rt *router) set(eps []endpoint, why string) {
	rt.mu.Lock()
	rt.current = append([]endpoint(nil), eps...)
	rt.mu.Unlock()
	rt.idle.Add(1)
	rt.queue <- routerChange{due: time.Now().Add(rt.lag), eps: append([]endpoint(nil), eps...), why: why}
}

// coalesceWindow: changes falling due within this of the first pending one are applied
// together, in one reload, as the OpenShift router coalesces its reloads. A change is
// never applied before its lag is over, only up to this much later.
const coalesceWindow = time.Second

func (rt *router) loop(ctx context.Context) {
	var next *routerChange
	for {
		if next == nil {
			ch, ok := <-rt.queue
			if !ok {
				return
			}
			next = &ch
		}
		batch := []routerChange{*next}
		next = nil
		if d := time.Until(batch[0].due); d > 0 {
			time.Sleep(d)
		}
	collect:
		for {
			select {
			case ch, ok := <-rt.queue:
				if !ok {
					break collect
				}
				if ch.due.Sub(batch[0].due) > min(coalesceWindow, rt.lag) {
					next = &ch
					break collect
				}
				batch = append(batch, ch)
			default:
				break collect
			}
		}
		last := batch[len(batch)-1]
		if d := time.Until(last.due); d > 0 {
			time.Sleep(d)
		}
		if err := rt.hap.apply(ctx, last.eps); err != nil {
			rt.mu.Lock()
			rt.failed = err
			rt.mu.Unlock()
		}
		var whys []string
		for _, ch := range batch {
			whys = append(whys, ch.why)
		}
		rt.r.event("router applied: " + strings.Join(whys, ", "))
		for range batch {
			rt.idle.Done()
		}
	}
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
	if err := catalog.Setup(ctx, pool); err != nil {
		return nil, err
	}

	// Instances.
	var all []*instance
	defer func() {
		for _, in := range all {
			_ = in.cmd.Process.Kill()
			<-in.done
		}
	}()
	var serving []*instance
	for i := 0; i < opts.Instances; i++ {
		in, err := r.startInstance(1)
		if err != nil {
			return nil, err
		}
		all = append(all, in)
		serving = append(serving, in)
	}
	for _, in := range serving {
		if err := r.waitReady(ctx, in); err != nil {
			return nil, err
		}
	}
	endpoints := func() []endpoint {
		var eps []endpoint
		for _, in := range serving {
			eps = append(eps, endpoint{Name: in.name, Addr: in.addr})
		}
		return eps
	}

	// HAProxy and the router.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hap, err := newHAProxy(opts.HAProxy, dir, port, opts.RouterMode)
	if err != nil {
		return nil, err
	}
	if err := hap.start(ctx, endpoints()); err != nil {
		hap.stop()
		return nil, err
	}
	defer hap.stop()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitServed(ctx, base+"/api/items/1"); err != nil {
		return nil, err
	}
	rt := &router{r: r, hap: hap, lag: opts.RouterLag, queue: make(chan routerChange, 64)}
	go rt.loop(ctx)
	defer close(rt.queue)

	// Load.
	gen := newLoadGen(base, opts.Rate, opts.StreamShare, opts.StreamDuration, opts.RequestTimeout)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	r.event(fmt.Sprintf("load starts: %d req/s through HAProxy (%s), %d instances", opts.Rate, opts.RouterMode, opts.Instances))
	loadDone := make(chan struct{})
	go func() { gen.run(loadCtx, r.start); close(loadDone) }()
	tasks := &taskFeeder{pool: pool, rate: opts.TaskRate}
	tasksDone := make(chan struct{})
	go func() { tasks.run(loadCtx); close(tasksDone) }()

	// The rollout: maxSurge 1, maxUnavailable 0.
	select {
	case <-time.After(time.Until(r.start.Add(opts.RolloutAt))):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rolloutStart := time.Since(r.start)
	r.event("rollout starts")
	old := append([]*instance(nil), serving...)
	var draining []*instance
	for _, o := range old {
		in, err := r.startInstance(2)
		if err != nil {
			return nil, err
		}
		all = append(all, in)
		r.event("start " + in.name)
		if err := r.waitReady(ctx, in); err != nil {
			return nil, err
		}
		r.event(in.name + " ready")
		serving = append(serving, in)
		rt.set(endpoints(), "add "+in.name)
		// The Deployment now terminates an old pod: its endpoint goes at once, and it
		// gets SIGTERM at the same time.
		for i, s := range serving {
			if s == o {
				serving = append(serving[:i], serving[i+1:]...)
				break
			}
		}
		rt.set(endpoints(), "remove "+o.name)
		_ = o.cmd.Process.Signal(syscall.SIGTERM)
		r.event("SIGTERM " + o.name)
		draining = append(draining, o)
		go func(o *instance) {
			<-o.done
			r.event(o.name + " exited")
		}(o)
	}
	for _, o := range draining {
		select {
		case <-o.done:
		case <-time.After(opts.DrainDelay + opts.ShutdownTimeout + 30*time.Second):
			return nil, fmt.Errorf("instance %s did not exit after SIGTERM", o.name)
		}
	}
	rt.idle.Wait()
	rolloutEnd := time.Since(r.start)
	r.event("rollout over")

	// Keep the load on until the end, and a little past the rollout.
	end := max(opts.Duration, rolloutEnd+3*time.Second)
	select {
	case <-time.After(time.Until(r.start.Add(end))):
	case <-ctx.Done():
	}
	stopLoad()
	<-loadDone
	<-tasksDone
	r.event("load stops")
	gen.wait()

	rep := buildReport(opts, gen.records(), r.events, rolloutStart, rolloutEnd)
	rep.TasksDone, rep.TasksPending = tasks.settle(ctx, pool, 60*time.Second)
	rep.TasksQueued = rep.TasksDone + rep.TasksPending
	rt.mu.Lock()
	routerErr := rt.failed
	rt.mu.Unlock()
	if routerErr != nil {
		return rep, fmt.Errorf("router: %w", routerErr)
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	// Stop the new instances; they are not measured any more.
	for _, in := range serving {
		_ = in.cmd.Process.Signal(syscall.SIGKILL)
	}
	return rep, nil
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

// settle waits (up to limit) for the queue to empty and returns done and pending counts.
func (f *taskFeeder) settle(ctx context.Context, pool *pgxpool.Pool, limit time.Duration) (done, pending int) {
	deadline := time.Now().Add(limit)
	for {
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NOT NULL),
			count(*) FILTER (WHERE done_at IS NULL) FROM tasks`).Scan(&done, &pending)
		if err != nil || pending == 0 || time.Now().After(deadline) {
			return done, pending
		}
		time.Sleep(200 * time.Millisecond)
	}
}
