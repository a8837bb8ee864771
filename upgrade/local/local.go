// Package local is Tandem's local backend: a release's instances run as processes on
// this machine, on 127.0.0.1, behind a real HAProxy that a router keeps in step with the
// instances, with a lag, as the OpenShift router does. It is what `tandem demo` and
// `tandem prove` upgrade, and what `tandem upgrade` drives when tandem.yaml says
// `backend: local`.
//
// A Backend keeps its state (instances, router) in a directory, in local.json, so that a
// tandem process killed in the middle of a roll can be followed by another that adopts
// the instances and HAProxy left running (Options.Detach) and carries on.
package local

import (
	"context"
	"encoding/json"
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

	"github.com/tandem-pg/tandem/internal/haproxy"
	"github.com/tandem-pg/tandem/internal/process"
	"github.com/tandem-pg/tandem/upgrade"
)

// Router modes: how endpoint changes reach HAProxy (see package internal/haproxy).
const (
	// RouterReload starts a new HAProxy process that takes the listener over and
	// soft-stops the old one, as the OpenShift router does.
	RouterReload = haproxy.ModeReload
	// RouterRuntime changes server addresses and states through HAProxy's runtime API.
	RouterRuntime = haproxy.ModeRuntime
)

// MaxInstances bounds the instances one local backend routes to.
const MaxInstances = haproxy.MaxEndpoints

// Endpoint is one instance as the router sees it.
type Endpoint = haproxy.Endpoint

// HAProxyInstalled reports whether an haproxy binary is found.
func HAProxyInstalled() bool { return haproxy.Installed() }

// Options configure a Backend.
type Options struct {
	// Dir holds local.json, the instances' logs and HAProxy's configurations. Required.
	Dir string
	// RouterPort is HAProxy's port on 127.0.0.1; 0 picks a free one (or keeps the one
	// recorded in Dir).
	RouterPort int
	// RouterLag is how long endpoint changes take to reach HAProxy; 0 means at once.
	RouterLag time.Duration
	// RouterMode is RouterReload (default) or RouterRuntime.
	RouterMode string
	// HAProxy is the haproxy binary [haproxy, then /usr/sbin/haproxy].
	HAProxy string
	// Detach starts instances and HAProxy in their own sessions, so that they outlive
	// this process (the `tandem upgrade` CLI). Without it they are killed when this
	// process dies (demo, prove, tests).
	Detach bool
	// Tandem is the tandem binary, substituted for {tandem} in commands [os.Executable].
	Tandem string
	// Env is added to every instance's environment.
	Env []string
	// ReadyTimeout bounds the wait for a new instance to be ready [90s].
	ReadyTimeout time.Duration
	// Logger receives a line per action; nil discards them.
	Logger *slog.Logger
	// OnEvent, when set, is called with a line per action (instance started, ready,
	// stopped, router applied), for a run's timeline.
	OnEvent func(string)
	// ReadOnly opens the directory to look only (`tandem upgrade status`): nothing is
	// started, signalled or written.
	ReadOnly bool
}

// Backend runs instances as local processes behind HAProxy. It implements
// upgrade.Backend. It is safe for concurrent use.
type Backend struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	st    state
	procs map[string]*proc // instances started or adopted by this process
	// launching names the instances being started: recorded, no process yet.
	launching map[string]bool
	hap       *haproxy.HAProxy
	rt        *haproxy.Router
}

// state is what local.json holds.
type state struct {
	Seq        int          `json:"seq"`
	RouterPort int          `json:"router_port"`
	RouterPIDs []process.ID `json:"router,omitempty"`
	Instances  []*instance  `json:"instances"`
}

// instance is one process, as recorded in local.json.
type instance struct {
	Name     string `json:"name"`
	Workload string `json:"workload"`
	Routed   bool   `json:"routed"`
	Target   target `json:"target"`
	Addr     string `json:"addr"`
	// Proc is the process; its PID is 0 while it is being started.
	Proc     process.ID `json:"proc"`
	Command  []string   `json:"command"` // as started, the database URL left out
	Ready    bool       `json:"ready"`
	Stopping bool       `json:"stopping"`
	// Signalled says SIGTERM was sent, after Stopping was recorded.
	Signalled bool      `json:"signalled"`
	StartedAt time.Time `json:"started_at"`
	StoppedAt time.Time `json:"stopped_at,omitzero"`
}

// target is what an instance runs, and what a Snapshot records.
type target struct {
	Release       string   `json:"release"`
	Revision      string   `json:"revision"`
	VersionSchema string   `json:"version_schema"`
	Command       []string `json:"command"` // the template, before substitution
	Dir           string   `json:"dir"`     // where the command runs
	Instances     int      `json:"instances"`
}

// proc is a running process this Backend watches.
type proc struct {
	id   process.ID
	done chan struct{} // closed when it has exited (children only)
}

func (p *proc) alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return p.id.Alive()
}

// New returns a Backend over opts.Dir, adopting what an earlier process recorded there.
// It starts nothing; the router starts with the first instance.
func New(opts Options) (*Backend, error) {
	if opts.Dir == "" {
		return nil, errors.New("local backend: no directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("local backend: %w", err)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if opts.RouterMode == "" {
		opts.RouterMode = RouterReload
	}
	if opts.RouterMode != RouterReload && opts.RouterMode != RouterRuntime {
		return nil, fmt.Errorf("local backend: router mode %q: want %q or %q", opts.RouterMode, RouterReload, RouterRuntime)
	}
	if opts.Tandem == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local backend: find the tandem binary: %w", err)
		}
		opts.Tandem = exe
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{opts: opts, log: log, procs: map[string]*proc{}, launching: map[string]bool{}}
	data, err := os.ReadFile(b.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("local backend: %w", err)
	default:
		if err := json.Unmarshal(data, &b.st); err != nil {
			return nil, fmt.Errorf("local backend: %s is damaged (%v); stop its processes and remove it", b.statePath(), err)
		}
	}
	for _, in := range b.st.Instances {
		if !in.StoppedAt.IsZero() {
			continue
		}
		if in.Proc.PID == 0 {
			// Started just before a crash, before its PID was recorded.
			if id, ok := findMarked(b.mark(in.Name)); ok {
				in.Proc = id
			}
		}
		if in.Proc.Alive() {
			b.procs[in.Name] = &proc{id: in.Proc}
			if in.Stopping && !opts.ReadOnly {
				// SIGTERM again: the crash may have come before it was sent, and a
				// draining instance takes a second one as the first.
				in.Proc.Signal(syscall.SIGTERM)
				in.Signalled = true
			}
		}
	}
	if b.opts.RouterPort == 0 {
		b.opts.RouterPort = b.st.RouterPort
	}
	return b, nil
}

// Name is "local".
func (b *Backend) Name() string { return "local" }

// RouterURL is the address the router serves on, once it runs.
func (b *Backend) RouterURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(b.st.RouterPort)
}

func (b *Backend) statePath() string { return filepath.Join(b.opts.Dir, "local.json") }

func (b *Backend) event(what string) {
	if b.opts.OnEvent != nil {
		b.opts.OnEvent(what)
		return
	}
	b.log.Info(what)
}

// mark is the value of instanceEnv for instance name.
func (b *Backend) mark(name string) string {
	abs, err := filepath.Abs(b.opts.Dir)
	if err != nil {
		abs = b.opts.Dir
	}
	return filepath.Join(abs, name)
}

// save writes local.json atomically. Call with b.mu held.
func (b *Backend) save() error {
	if b.opts.ReadOnly {
		return nil
	}
	if b.hap != nil {
		b.st.RouterPIDs = b.hap.PIDs()
	}
	data, err := json.MarshalIndent(&b.st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(b.opts.Dir, "local.json.*")
	if err != nil {
		return fmt.Errorf("local backend: save state: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), b.statePath())
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("local backend: save state: %w", err)
	}
	return nil
}

// ensureRouter starts HAProxy (or adopts the one recorded) and the router. Call with
// b.mu held.
func (b *Backend) ensureRouter(ctx context.Context) error {
	if b.rt != nil {
		return nil
	}
	port := b.opts.RouterPort
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	hap, err := haproxy.New(b.opts.HAProxy, b.opts.Dir, port, b.opts.RouterMode, b.opts.Detach)
	if err != nil {
		return err
	}
	hap.Adopt(b.st.RouterPIDs)
	b.reapLocked()
	eps := b.endpointsLocked()
	if hap.Alive() {
		// An earlier process left HAProxy running: take it over with the endpoints as
		// they are now.
		if err := hap.Takeover(ctx, eps); err != nil {
			return fmt.Errorf("router: take over haproxy: %w", err)
		}
	} else if err := hap.Start(ctx, eps); err != nil {
		hap.Stop()
		return err
	}
	b.hap = hap
	b.st.RouterPort = port
	b.rt = haproxy.NewRouter(hap, haproxy.RouterOptions{Lag: b.opts.RouterLag, OnEvent: b.event, OnApplied: func() {
		// HAProxy's processes changed: record them at once, so that a crash now
		// leaves none unknown.
		b.mu.Lock()
		defer b.mu.Unlock()
		_ = b.save()
	}})
	return b.save()
}

// endpointsLocked is the router's desired endpoint set: routed instances that are ready
// and not stopping. Call with b.mu held.
func (b *Backend) endpointsLocked() []Endpoint {
	var eps []Endpoint
	for _, in := range b.st.Instances {
		if in.Routed && in.Ready && !in.Stopping && in.StoppedAt.IsZero() {
			eps = append(eps, Endpoint{Name: in.Name, Addr: in.Addr})
		}
	}
	return eps
}

// route queues the desired endpoint set for the router. Call with b.mu held.
func (b *Backend) route(why string) {
	if b.rt != nil {
		b.rt.Set(b.endpointsLocked(), why)
	}
}

// WaitRouter waits until every endpoint change made so far reached HAProxy.
func (b *Backend) WaitRouter() {
	b.mu.Lock()
	rt := b.rt
	b.mu.Unlock()
	if rt != nil {
		rt.Wait()
	}
}

// RouterErr returns the first error applying a change to HAProxy, if any.
func (b *Backend) RouterErr() error {
	b.mu.Lock()
	rt := b.rt
	b.mu.Unlock()
	if rt == nil {
		return nil
	}
	return rt.Err()
}

func targetOf(t upgrade.Target) (target, error) {
	l := t.Workload.Local
	if l == nil || len(l.Command) == 0 {
		return target{}, fmt.Errorf("workload %q has no local section with a command", t.Workload.Name)
	}
	return target{Release: t.Release, Revision: t.Revision, VersionSchema: t.VersionSchema,
		Command: l.Command, Dir: t.Dir, Instances: max(l.Instances, 1)}, nil
}

func routed(w upgrade.Workload) bool {
	if w.Local != nil && w.Local.Routed != nil {
		return *w.Local.Routed
	}
	return w.Role != "worker"
}

// Snapshot records the workload's current instances: their revision, command and count.
func (b *Backend) Snapshot(ctx context.Context, t upgrade.Target) (json.RawMessage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var snap *target
	n := 0
	for _, in := range b.st.Instances {
		if in.Workload != t.Workload.Name || in.Stopping || !in.StoppedAt.IsZero() {
			continue
		}
		if snap == nil {
			tt := in.Target
			snap = &tt
		}
		if in.Target.Revision == snap.Revision {
			n++
		}
	}
	if snap == nil {
		return json.RawMessage("null"), nil
	}
	snap.Instances = n
	return json.Marshal(snap)
}

// Roll rolls the workload to t (see upgrade.Backend).
func (b *Backend) Roll(ctx context.Context, t upgrade.Target, gate upgrade.ReadyGate, progress func(string)) error {
	tg, err := targetOf(t)
	if err != nil {
		return err
	}
	return b.roll(ctx, t, tg, gate, progress)
}

// Restore rolls the workload back to a Snapshot. An empty snapshot (the workload had no
// instances) stops them all.
func (b *Backend) Restore(ctx context.Context, t upgrade.Target, snapshot json.RawMessage, gate upgrade.ReadyGate, progress func(string)) error {
	var tg *target
	if len(snapshot) > 0 {
		if err := json.Unmarshal(snapshot, &tg); err != nil {
			return fmt.Errorf("local backend: read snapshot: %w", err)
		}
	}
	if tg == nil {
		tg = &target{Revision: "none", Instances: 0}
	}
	t.Release, t.Revision, t.VersionSchema = tg.Release, tg.Revision, tg.VersionSchema
	return b.roll(ctx, t, *tg, gate, progress)
}

func (b *Backend) roll(ctx context.Context, t upgrade.Target, tg target, gate upgrade.ReadyGate, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	if routed(t.Workload) {
		b.mu.Lock()
		err := b.ensureRouter(ctx)
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.mu.Lock()
		b.reapLocked()
		var fresh, old []*instance
		var starting *instance
		for _, in := range b.st.Instances {
			if in.Workload != t.Workload.Name || in.Stopping || !in.StoppedAt.IsZero() {
				continue
			}
			switch {
			case in.Target.Revision != tg.Revision:
				old = append(old, in)
			case in.Ready:
				fresh = append(fresh, in)
			default:
				starting = in
			}
		}
		b.mu.Unlock()
		progress(fmt.Sprintf("%s: %d of %d new ready, %d old serving", t.Workload.Name, len(fresh), tg.Instances, len(old)))
		switch {
		case starting != nil:
			// A new instance started earlier (perhaps by a process that died) is not
			// ready yet: wait for it rather than start another.
			if err := b.waitReady(ctx, starting, t, gate); err != nil {
				return err
			}
			continue
		case len(fresh) < tg.Instances:
			in, err := b.start(ctx, t, tg)
			if err != nil {
				return err
			}
			if err := b.waitReady(ctx, in, t, gate); err != nil {
				return err
			}
			if len(old) > 0 && t.Workload.MinReady.Duration > 0 {
				// Let the router take this one in before the next old one goes.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(t.Workload.MinReady.Duration):
				}
			}
			if len(old) > 0 {
				if err := b.stop(old[0], "replaced by "+in.Name); err != nil {
					return err
				}
			}
		case len(fresh) > tg.Instances:
			if err := b.stop(fresh[len(fresh)-1], "scaled down"); err != nil {
				return err
			}
		case len(old) > 0:
			if err := b.stop(old[0], "replaced"); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// start starts one instance of tg. The instance is recorded before its process starts,
// and its process carries a mark in its environment, so that a crash between the two
// never leaves an instance nobody knows.
func (b *Backend) start(ctx context.Context, t upgrade.Target, tg target) (*instance, error) {
	if b.opts.ReadOnly {
		return nil, errors.New("local backend: opened read-only")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	b.mu.Lock()
	b.st.Seq++
	name := fmt.Sprintf("%s-%d", t.Workload.Name, b.st.Seq)
	vars := map[string]string{
		"{tandem}": b.opts.Tandem, "{listen}": addr, "{postgres-url}": t.PostgresURL,
		"{version-schema}": tg.VersionSchema, "{app-version}": tg.Release, "{release}": tg.Release,
		"{role}": t.Workload.Role, "{workload}": t.Workload.Name, "{name}": name,
	}
	args := make([]string, len(tg.Command))
	recorded := make([]string, len(tg.Command)) // passwords stay out of local.json
	for i, a := range tg.Command {
		for k, v := range vars {
			a = strings.ReplaceAll(a, k, v)
		}
		args[i] = a
		recorded[i] = a
		if t.PostgresURL != "" {
			recorded[i] = strings.ReplaceAll(a, t.PostgresURL, "{postgres-url}")
		}
	}
	in := &instance{Name: name, Workload: t.Workload.Name, Routed: routed(t.Workload), Target: tg, Addr: addr,
		Command: recorded, StartedAt: time.Now()}
	b.st.Instances = append(b.st.Instances, in)
	b.launching[name] = true
	defer func() {
		b.mu.Lock()
		delete(b.launching, name)
		b.mu.Unlock()
	}()
	err = b.save()
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(b.opts.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, b.abandon(in, err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = tg.Dir
	cmd.Env = append(os.Environ(), b.opts.Env...)
	cmd.Env = append(cmd.Env, instanceEnv+"="+b.mark(name))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = process.Attr(b.opts.Detach)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, b.abandon(in, fmt.Errorf("workload %s: start %s: %w", t.Workload.Name, args[0], err))
	}
	p := &proc{id: process.Identify(cmd.Process.Pid), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	b.mu.Lock()
	in.Proc = p.id
	b.procs[name] = p
	err = b.save()
	b.mu.Unlock()
	b.event(fmt.Sprintf("start %s (%s, pid %d)", name, tg.Release, p.id.PID))
	return in, err
}

// abandon records that instance in never ran, and returns err.
func (b *Backend) abandon(in *instance, err error) error {
	b.mu.Lock()
	in.StoppedAt = time.Now()
	_ = b.save()
	b.mu.Unlock()
	return err
}

// waitReady polls the instance's /readyz, like a kubelet's readiness probe, then asks
// gate; then the instance joins the router.
func (b *Backend) waitReady(ctx context.Context, in *instance, t upgrade.Target, gate upgrade.ReadyGate) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(b.opts.ReadyTimeout)
	why := "readiness probe not answered yet"
	for {
		b.mu.Lock()
		p := b.procs[in.Name]
		b.mu.Unlock()
		if p == nil || !p.alive() {
			b.mu.Lock()
			in.StoppedAt = time.Now()
			_ = b.save()
			b.mu.Unlock()
			return fmt.Errorf("instance %s exited before it was ready; its log ends with:\n%s",
				in.Name, tail(filepath.Join(b.opts.Dir, in.Name+".log"), 2000))
		}
		resp, err := client.Get("http://" + in.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok := true
				if gate != nil {
					b.mu.Lock()
					pub := b.public(in)
					b.mu.Unlock()
					ok, why, err = gate(ctx, pub)
					if err != nil {
						return err
					}
				}
				if ok {
					break
				}
			} else {
				why = "readiness probe answers " + resp.Status
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s not ready after %s: %s (see %s)", in.Name, b.opts.ReadyTimeout, why,
				filepath.Join(b.opts.Dir, in.Name+".log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	b.mu.Lock()
	in.Ready = true
	if in.Routed {
		b.route("add " + in.Name)
	}
	err := b.save()
	b.mu.Unlock()
	b.event(in.Name + " ready")
	return err
}

// stop takes the instance out of the router and sends it SIGTERM at the same moment,
// as Kubernetes does when it deletes a pod: the router follows after its lag, and the
// instance drains meanwhile. Stopping is recorded first; a crash before the signal is
// made good by the next process, which signals every live stopping instance again.
func (b *Backend) stop(in *instance, why string) error {
	if err := b.RouterErr(); err != nil {
		// Taking a server out of a router that no longer follows would leave it
		// routed to a process that exits.
		return fmt.Errorf("router: %w (see %s)", err, filepath.Join(b.opts.Dir, "haproxy.log"))
	}
	b.mu.Lock()
	in.Stopping = true
	if in.Routed {
		b.route("remove " + in.Name)
	}
	p := b.procs[in.Name]
	err := b.save()
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if p != nil {
		p.id.Signal(syscall.SIGTERM)
		b.mu.Lock()
		in.Signalled = true
		_ = b.save()
		b.mu.Unlock()
	}
	b.event(fmt.Sprintf("SIGTERM %s (%s)", in.Name, why))
	if p != nil && p.done != nil {
		go func() {
			<-p.done
			b.event(in.Name + " exited")
		}()
	}
	return nil
}

// reapLocked records the instances that have exited. Call with b.mu held.
func (b *Backend) reapLocked() {
	changed := false
	for _, in := range b.st.Instances {
		if !in.StoppedAt.IsZero() || (in.Proc.PID == 0 && b.launching[in.Name]) {
			continue
		}
		if p := b.procs[in.Name]; p == nil || !p.alive() {
			in.StoppedAt = time.Now()
			changed = true
			if in.Routed && in.Ready && !in.Stopping && b.rt != nil {
				b.route(in.Name + " exited")
			}
		}
	}
	if changed {
		_ = b.save()
	}
}

func (b *Backend) public(in *instance) upgrade.Instance {
	host, _ := os.Hostname()
	st := upgrade.InstanceStarting
	switch {
	case in.Stopping:
		st = upgrade.InstanceDraining
	case in.Ready:
		st = upgrade.InstanceReady
	}
	return upgrade.Instance{Name: in.Name, Workload: in.Workload, Release: in.Target.Release, Revision: in.Target.Revision,
		State: st, Host: host, PID: in.Proc.PID, Addr: in.Addr, Group: in.Target.Revision, Since: in.StartedAt}
}

// Instances lists the workload's live processes, draining ones included.
func (b *Backend) Instances(ctx context.Context, t upgrade.Target) ([]upgrade.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reapLocked()
	var out []upgrade.Instance
	for _, in := range b.st.Instances {
		if in.Workload == t.Workload.Name && in.StoppedAt.IsZero() {
			pi := b.public(in)
			if in.Stopping {
				pi.Reason = fmt.Sprintf("draining after SIGTERM (pid %d, log %s)", in.Proc.PID, filepath.Join(b.opts.Dir, in.Name+".log"))
			}
			out = append(out, pi)
		}
	}
	return out, nil
}

// All lists every live instance of every workload.
func (b *Backend) All() []upgrade.Instance {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reapLocked()
	var out []upgrade.Instance
	for _, in := range b.st.Instances {
		if in.StoppedAt.IsZero() {
			out = append(out, b.public(in))
		}
	}
	return out
}

// Shutdown stops every instance and HAProxy, and waits for them (a teardown, not a
// drain: for the end of a demo or a test).
func (b *Backend) Shutdown(ctx context.Context) {
	b.mu.Lock()
	procs := make([]*proc, 0, len(b.procs))
	for _, p := range b.procs {
		procs = append(procs, p)
		p.id.Signal(syscall.SIGKILL)
	}
	for _, in := range b.st.Instances {
		if in.StoppedAt.IsZero() {
			in.StoppedAt = time.Now()
		}
	}
	rt, hap := b.rt, b.hap
	b.rt, b.hap = nil, nil
	b.mu.Unlock()
	for _, p := range procs {
		if p.done != nil {
			select {
			case <-p.done:
			case <-ctx.Done():
			}
		}
	}
	if rt != nil {
		rt.Close()
	}
	if hap != nil {
		hap.Stop()
	}
	b.mu.Lock()
	b.st.RouterPIDs = nil
	_ = b.save()
	b.mu.Unlock()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
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
