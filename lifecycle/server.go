package lifecycle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultDrainDelay is how long a draining Server keeps serving when DrainDelay is 0. It
// covers the OpenShift router's default 5 s reload interval plus the time the endpoint
// change takes to reach the router.
const DefaultDrainDelay = 10 * time.Second

// DefaultShutdownTimeout is how long a Server waits for in-flight and long-lived requests
// when ShutdownTimeout is 0. Together with DefaultDrainDelay it fits Kubernetes' default
// 30 s termination grace period.
const DefaultShutdownTimeout = 15 * time.Second

// ErrShutdownTimeout is returned by Serve when requests were still running at the end of
// the shutdown timeout and their connections were closed.
var ErrShutdownTimeout = errors.New("shutdown timeout: connections closed with requests in flight")

// Server serves an http.Server with a drain-aware lifecycle. See the package
// documentation for the phases. Set the fields before calling Serve or ListenAndServe;
// a Server serves once.
type Server struct {
	// HTTP is the server to run; its Handler serves the application's routes. Serve
	// wraps the handler and sets BaseContext; other fields (timeouts, ...) are used as is.
	HTTP *http.Server

	// DrainDelay is how long the server keeps serving after it is told to stop, with
	// readiness failing. 0 means DefaultDrainDelay; a negative value means no delay
	// (use it when the pod's preStop hook already sleeps long enough).
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for in-flight and long-lived requests once the
	// listener is closed. 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// Health answers /readyz and /livez. nil means a Health with no checks.
	Health *Health
	// Metrics are updated as the server runs and served on /metrics. nil means
	// NewMetrics().
	Metrics *Metrics
	// Registration, when set, follows the lifecycle: "ready" once serving, "draining"
	// when the drain starts, deregistered when Serve returns.
	Registration *Registration
	// Logger receives one line per phase. nil means slog.Default().
	Logger *slog.Logger

	// Signals start the drain; nil means SIGTERM and SIGINT. A second signal skips
	// what is left of the drain delay. Set to an empty non-nil slice to drain only on
	// context cancellation or Drain.
	Signals []os.Signal

	// ReadyPath, LivePath and MetricsPath are where the probes and metrics are served;
	// empty means "/readyz", "/livez" and "/metrics". "-" turns one off.
	ReadyPath, LivePath, MetricsPath string

	once       sync.Once
	drainOnce  sync.Once
	drainCh    chan struct{}
	draining   atomic.Bool
	stopCtx    context.Context // cancelled when long-lived requests must finish
	stopLong   context.CancelFunc
	long       tracker
	mu         sync.Mutex
	onShutdown []func()
	inFlight   atomic.Int64
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Health == nil {
			s.Health = &Health{}
		}
		if s.Metrics == nil {
			s.Metrics = NewMetrics()
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		s.drainCh = make(chan struct{})
		s.stopCtx, s.stopLong = context.WithCancel(context.Background())
	})
}

// Drain starts the drain as a signal would. It returns at once; Serve returns when the
// drain is over.
func (s *Server) Drain() {
	s.init()
	s.drainOnce.Do(func() { close(s.drainCh) })
}

// Draining reports whether the server has started to drain.
func (s *Server) Draining() bool { return s.draining.Load() }

// OnShutdown registers f to be called, in its own goroutine, when the listener closes
// and long-lived requests are told to finish. Use it to close hijacked connections
// (WebSockets) that do not watch a request context.
func (s *Server) OnShutdown(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onShutdown = append(s.onShutdown, f)
}

// ListenAndServe listens on s.HTTP.Addr (":http" when empty) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	addr := s.HTTP.Addr
	if addr == "" {
		addr = ":http"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln and serves them until ctx is cancelled, a signal in
// Signals arrives or Drain is called; then it drains (see the package documentation)
// and returns. It returns nil after a clean drain, an error wrapping ErrShutdownTimeout
// when connections had to be closed with requests in flight, or the error that stopped
// the server from serving.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	log := s.Logger.With("addr", ln.Addr().String())
	srv := s.HTTP
	srv.Handler = s.wrap(srv.Handler)
	base := srv.BaseContext
	srv.BaseContext = func(l net.Listener) context.Context {
		c := context.Background()
		if base != nil {
			c = base(l)
		}
		return context.WithValue(c, serverKey{}, s)
	}

	signals := s.Signals
	if signals == nil {
		signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	sigCh := make(chan os.Signal, 2)
	if len(signals) > 0 {
		signal.Notify(sigCh, signals...)
		defer signal.Stop(sigCh)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	s.Health.SetServing(true)
	s.Metrics.Ready.Set(1)
	if s.Registration != nil {
		if err := s.Registration.SetState(ctx, StateReady); err != nil {
			log.Warn("registry: could not mark instance ready", "err", err)
		}
	}
	log.Info("serving")

	var why string
	select {
	case err := <-serveErr:
		s.Health.SetServing(false)
		s.Metrics.Ready.Set(0)
		s.deregister(log)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		why = "context cancelled"
	case sig := <-sigCh:
		why = "signal " + sig.String()
	case <-s.drainCh:
		why = "drain requested"
	}

	// Phase 1 and 2: fail readiness, keep serving with Connection: close.
	start := time.Now()
	s.draining.Store(true)
	s.Health.SetDraining(true)
	s.Metrics.Ready.Set(0)
	s.Metrics.Draining.Set(1)
	delay := s.DrainDelay
	if delay == 0 {
		delay = DefaultDrainDelay
	}
	if delay < 0 {
		delay = 0
	}
	log.Info("draining: readiness fails, still serving", "reason", why, "drain_delay", delay)
	if s.Registration != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.Registration.SetState(rctx, StateDraining); err != nil {
			log.Warn("registry: could not mark instance draining", "err", err)
		}
		cancel()
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case sig := <-sigCh:
			log.Info("second signal: skipping the rest of the drain delay", "signal", sig.String())
		}
		t.Stop()
	}
	d := time.Since(start)
	s.Metrics.PhaseSeconds.WithLabelValues("drain_delay").Set(d.Seconds())
	log.Info("drain delay over", "phase", "drain_delay", "duration", d)

	// Phase 3: close the listener, wait for in-flight requests, stop long-lived ones.
	start = time.Now()
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	log.Info("shutting down: listener closed, waiting for requests",
		"in_flight", s.inFlight.Load(), "long_lived", s.long.count(), "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.stopLong()
	s.mu.Lock()
	for _, f := range s.onShutdown {
		go f()
	}
	s.mu.Unlock()
	var result error
	errShutdown := srv.Shutdown(sctx)
	errLong := s.long.wait(sctx)
	if errShutdown != nil || errLong != nil {
		s.Metrics.ForcedClose.Inc()
		_ = srv.Close()
		result = fmt.Errorf("after %s: %w", timeout, ErrShutdownTimeout)
		log.Warn("shutdown timeout: closed connections with requests in flight",
			"in_flight", s.inFlight.Load(), "long_lived", s.long.count())
	}
	<-serveErr // http.ErrServerClosed
	d = time.Since(start)
	s.Metrics.PhaseSeconds.WithLabelValues("shutdown").Set(d.Seconds())
	s.Metrics.Draining.Set(0)
	log.Info("shutdown over", "phase", "shutdown", "duration", d)

	// Phase 4: leave the registry.
	s.deregister(log)
	s.Health.SetServing(false)
	log.Info("stopped")
	return result
}

func (s *Server) deregister(log *slog.Logger) {
	if s.Registration == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Registration.Close(ctx); err != nil {
		log.Warn("registry: could not deregister", "err", err)
	}
}

// wrap adds the probes, the metrics endpoint, accounting and Connection: close.
func (s *Server) wrap(app http.Handler) http.Handler {
	if app == nil {
		app = http.DefaultServeMux
	}
	path := func(p, def string) string {
		if p == "" {
			return def
		}
		return p
	}
	ready, live, metrics := path(s.ReadyPath, "/readyz"), path(s.LivePath, "/livez"), path(s.MetricsPath, "/metrics")
	readyH, liveH := s.Health.ReadyHandler(), s.Health.LiveHandler()
	metricsH := s.Metrics.handler(s.Logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			// The client finishes this request and opens its next connection elsewhere.
			w.Header().Set("Connection", "close")
			s.Metrics.ConnectionClose.Inc()
		}
		switch r.URL.Path {
		case ready:
			readyH.ServeHTTP(w, r)
			return
		case live:
			liveH.ServeHTTP(w, r)
			return
		case metrics:
			metricsH.ServeHTTP(w, r)
			return
		}
		s.inFlight.Add(1)
		s.Metrics.InFlight.Inc()
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.inFlight.Add(-1)
			s.Metrics.InFlight.Dec()
			code := rw.code
			if code == 0 {
				code = http.StatusOK
			}
			s.Metrics.Requests.WithLabelValues(strconv.Itoa(code/100) + "xx").Inc()
		}()
		app.ServeHTTP(rw, r)
	})
}

type serverKey struct{}

// LongLived registers the request r as long-lived: a stream, a server-sent events
// feed, a hijacked (WebSocket) connection, anything that would not end on its own when
// the server stops. The returned context is done when the request's own context is, or
// when the server shuts down after its drain delay; the handler must then finish
// promptly (send a last event, close the WebSocket with "going away", ...) and call done.
// The server waits for done, up to its shutdown timeout, even for hijacked connections.
//
// Outside a Server, LongLived returns a cancellable child of r's context.
func LongLived(r *http.Request) (ctx context.Context, done func()) {
	s, _ := r.Context().Value(serverKey{}).(*Server)
	if s == nil {
		return context.WithCancel(r.Context())
	}
	s.long.add()
	s.Metrics.LongLived.Inc()
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.stopCtx, cancel)
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			stop()
			cancel()
			s.Metrics.LongLived.Dec()
			s.long.done()
		})
	}
}

// LongLivedHandler wraps h so that each of its requests is registered with LongLived:
// h's request context is done when the server asks long-lived requests to finish.
func LongLivedHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, done := LongLived(r)
		defer done()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// tracker counts running long-lived requests and lets a caller wait for none.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusWriter records the status code and passes Flush, Hijack and Unwrap through.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack implements http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("lifecycle: the response writer cannot be hijacked")
	}
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
