// Package haproxy runs a real HAProxy for one frontend and keeps its backend's servers in
// step with a set of endpoints, the way the OpenShift router does: by reload (a new
// process takes the listener over, -x, and soft-stops the old one, -sf) or through the
// runtime API. A Router applies endpoint changes late and coalesced, as that router
// does. The local backend (upgrade/local) and the Kubernetes proving ground (package
// proving, fed by an EndpointSlice watch) both drive HAProxy through it.
package haproxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-pg/tandem/internal/process"
)

// Modes: how endpoint changes reach HAProxy.
const (
	// ModeReload writes a new configuration and starts a new HAProxy process that
	// takes over the listening socket (-x) and soft-stops the old one (-sf), as the
	// OpenShift router does.
	ModeReload = "reload"
	// ModeRuntime changes server addresses and states through HAProxy's runtime API.
	ModeRuntime = "runtime"
)

// MaxEndpoints bounds the endpoints one frontend routes to at a time.
const MaxEndpoints = 20

// runtimeSlots is how many servers the runtime mode's backend has: room to add a whole
// new set of endpoints before the old ones are removed.
const runtimeSlots = 2*MaxEndpoints + 8

// Endpoint is one server as the router sees it: an instance, a pod.
type Endpoint struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // host:port
}

// HAProxy runs HAProxy processes for one frontend and applies endpoint sets to them.
type HAProxy struct {
	bin     string
	dir     string
	port    int
	mode    string
	logFile *os.File

	detach bool

	mu      sync.Mutex
	gen     int
	procs   []*exec.Cmd  // running processes started here, newest last
	adopted []process.ID // running processes started by an earlier tandem process
	exited  sync.WaitGroup
	slots   map[string]int // runtime mode: endpoint name -> server slot
	running map[string]string
}

// New prepares an HAProxy for a frontend on 127.0.0.1:port, mode ModeReload or
// ModeRuntime, with its configurations, runtime socket and log (haproxy.log) in dir;
// nothing runs until Start. bin is the haproxy binary ("": haproxy on PATH, then
// /usr/sbin/haproxy). With detach, its processes outlive this one.
func New(bin, dir string, port int, mode string, detach bool) (*HAProxy, error) {
	if bin == "" {
		bin = "haproxy"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/haproxy"); statErr == nil {
			path = "/usr/sbin/haproxy"
		} else {
			return nil, fmt.Errorf("haproxy not found (install the haproxy package): %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "haproxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if mode != ModeReload && mode != ModeRuntime {
		return nil, fmt.Errorf("haproxy: mode %q: want %q or %q", mode, ModeReload, ModeRuntime)
	}
	return &HAProxy{bin: path, dir: dir, port: port, mode: mode, logFile: f, detach: detach,
		slots: map[string]int{}, running: map[string]string{}}, nil
}

// Adopt takes over the HAProxy processes an earlier tandem process left running, as
// recorded: the next apply soft-stops them. An HAProxy that answers on the runtime
// socket but was not recorded (started just before a crash) is adopted too, so that a
// second one never shares the port with it.
func (h *HAProxy) Adopt(recorded []process.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range recorded {
		if p.Alive() {
			h.adopted = append(h.adopted, p)
		}
	}
	out, err := h.command("show info")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				continue
			}
			id := process.Identify(pid)
			if id.Alive() && !slices.ContainsFunc(h.adopted, func(p process.ID) bool { return p.PID == pid }) {
				h.adopted = append(h.adopted, id)
			}
		}
	}
}

// Alive reports whether a process serves the frontend.
func (h *HAProxy) Alive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.procs) > 0 || len(h.adopted) > 0
}

// PIDs returns the running processes, oldest first.
func (h *HAProxy) PIDs() []process.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pidsLocked()
}

func (h *HAProxy) pidsLocked() []process.ID {
	var out []process.ID
	for _, p := range h.adopted {
		if p.Alive() {
			out = append(out, p)
		}
	}
	for _, p := range h.procs {
		out = append(out, process.Identify(p.Process.Pid))
	}
	return out
}

// LogPath is the file HAProxy's processes write to.
func (h *HAProxy) LogPath() string { return h.logFile.Name() }

func (h *HAProxy) socket() string { return filepath.Join(h.dir, "haproxy.sock") }

// config returns HAProxy's configuration routing to eps; in runtime mode it also records
// which slot serves which endpoint. Call with h.mu held.
func (h *HAProxy) config(eps []Endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 5000
	stats socket %s mode 600 level admin expose-fd listeners
	hard-stop-after 3m

defaults
	mode http
	timeout connect 5s
	timeout client 3m
	timeout server 3m
	timeout http-request 30s
	# Idle client connections close after 2s: with idle-close-on-response below, an old
	# process keeps serving them after a reload, with its old servers, for at most this
	# long, which the instances' drain (router lag + 3s) covers.
	timeout http-keep-alive 2s
	timeout queue 30s
	retries 3
	option redispatch 1
	# A reload soft-stops the old process. Without this it closes its idle keep-alive
	# connections at once, racing a client that sends its next request on one: a POST
	# lost that way is not retried by clients. With it, the old process answers that
	# request, with Connection: close.
	option idle-close-on-response
	http-reuse safe
	balance roundrobin

frontend fe
	bind 127.0.0.1:%d
	default_backend be

backend be
`, h.socket(), h.port)
	if h.mode == ModeRuntime {
		// The first slots serve eps from the start (a new process that takes over
		// from another must not begin with no server); the runtime API fills the rest.
		h.slots, h.running = map[string]int{}, map[string]string{}
		for i := 1; i <= runtimeSlots; i++ {
			if i <= len(eps) {
				e := eps[i-1]
				fmt.Fprintf(&b, "\tserver s%d %s\n", i, e.Addr)
				h.slots[e.Name], h.running[e.Name] = i, e.Addr
				continue
			}
			fmt.Fprintf(&b, "\tserver s%d 127.0.0.1:9 disabled\n", i)
		}
		return b.String()
	}
	for _, e := range eps {
		fmt.Fprintf(&b, "\tserver %s %s\n", e.Name, e.Addr)
	}
	return b.String()
}

// Start runs the first HAProxy process with eps.
func (h *HAProxy) Start(ctx context.Context, eps []Endpoint) error {
	return h.launch(ctx, eps, false)
}

// Takeover starts a new process that takes the listener over from the adopted ones and
// soft-stops them, then routes to eps. The runtime mode's server slots of the old
// processes are not known here, so they start afresh.
func (h *HAProxy) Takeover(ctx context.Context, eps []Endpoint) error {
	return h.launch(ctx, eps, true)
}

// launch starts a process (taking over from the running ones or not), waits for its
// runtime API, and routes to eps.
func (h *HAProxy) launch(ctx context.Context, eps []Endpoint, takeover bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.spawn(eps, takeover); err != nil { // its configuration routes to eps
		return err
	}
	return h.waitSocket(ctx)
}

// spawn starts a new process; with takeover it inherits the listener and soft-stops
// the running processes. Call with h.mu held.
func (h *HAProxy) spawn(eps []Endpoint, takeover bool) error {
	h.gen++
	cfg := filepath.Join(h.dir, fmt.Sprintf("haproxy-%d.cfg", h.gen))
	if err := os.WriteFile(cfg, []byte(h.config(eps)), 0o600); err != nil {
		return err
	}
	args := []string{"-db", "-f", cfg}
	if old := h.pidsLocked(); takeover && len(old) > 0 {
		args = append(args, "-x", h.socket(), "-sf")
		for _, p := range old {
			args = append(args, strconv.Itoa(p.PID))
		}
	}
	cmd := exec.Command(h.bin, args...)
	cmd.Stdout, cmd.Stderr = h.logFile, h.logFile
	cmd.SysProcAttr = process.Attr(h.detach)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	h.procs = append(h.procs, cmd)
	h.exited.Add(1)
	go func() {
		defer h.exited.Done()
		_ = cmd.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, p := range h.procs {
			if p == cmd {
				h.procs = append(h.procs[:i], h.procs[i+1:]...)
				break
			}
		}
	}()
	return nil
}

func (h *HAProxy) waitSocket(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := h.command("show info"); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("haproxy did not come up (see %s)", h.logFile.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Apply makes HAProxy route to exactly eps.
func (h *HAProxy) Apply(_ context.Context, eps []Endpoint) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mode == ModeRuntime {
		return h.applyRuntime(eps)
	}
	return h.spawn(eps, true)
}

func (h *HAProxy) applyRuntime(eps []Endpoint) error {
	want := map[string]string{}
	for _, e := range eps {
		want[e.Name] = e.Addr
	}
	// Add first, then remove: removing first would leave a moment with no server.
	for _, e := range eps {
		if _, ok := h.running[e.Name]; ok {
			continue
		}
		slot := h.freeSlot()
		if slot == 0 {
			return fmt.Errorf("haproxy: no free server slot for %s", e.Name)
		}
		host, port, err := net.SplitHostPort(e.Addr)
		if err != nil {
			return err
		}
		for _, c := range []string{
			fmt.Sprintf("set server be/s%d addr %s port %s", slot, host, port),
			fmt.Sprintf("set server be/s%d state ready", slot),
		} {
			if _, err := h.command(c); err != nil {
				return err
			}
		}
		h.slots[e.Name] = slot
		h.running[e.Name] = e.Addr
	}
	// Then remove: never a moment without the servers that stay.
	var names []string
	for name := range h.running {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := want[name]; ok {
			continue
		}
		slot := h.slots[name]
		if _, err := h.command(fmt.Sprintf("set server be/s%d state maint", slot)); err != nil {
			return err
		}
		delete(h.running, name)
		delete(h.slots, name)
	}
	return nil
}

func (h *HAProxy) freeSlot() int {
	used := map[int]bool{}
	for _, s := range h.slots {
		used[s] = true
	}
	for s := 1; s <= runtimeSlots; s++ {
		if !used[s] {
			return s
		}
	}
	return 0
}

// command sends one command to the runtime API and returns its answer.
func (h *HAProxy) command(c string) (string, error) {
	conn, err := net.DialTimeout("unix", h.socket(), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", c); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	out := b.String()
	if strings.Contains(out, "Unknown command") || strings.Contains(out, "No such") ||
		strings.Contains(out, "Require ") {
		return out, fmt.Errorf("haproxy %q: %s", c, strings.TrimSpace(out))
	}
	return out, nil
}

// Stop stops every HAProxy process and waits for them.
func (h *HAProxy) Stop() {
	h.mu.Lock()
	for _, p := range h.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range h.adopted {
		p.Signal(syscall.SIGTERM)
	}
	h.adopted = nil
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.exited.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.mu.Lock()
		for _, p := range h.procs {
			_ = p.Process.Kill()
		}
		h.mu.Unlock()
		<-done
	}
	_ = h.logFile.Close()
}

// Installed reports whether an haproxy binary is found.
func Installed() bool {
	if _, err := exec.LookPath("haproxy"); err == nil {
		return true
	}
	_, err := os.Stat("/usr/sbin/haproxy")
	return err == nil
}
