package lifecycle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerHelperEnv) != "" {
		os.Exit(workerHelper())
	}
	pgtest.Main(m)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// eventually polls cond until it holds, failing the test after a generous bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type served struct {
	srv  *Server
	addr string
	done chan error
}

func startServer(t *testing.T, ctx context.Context, s *Server) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Signals == nil {
		s.Signals = []os.Signal{}
	}
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	out := &served{srv: s, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { out.done <- s.Serve(ctx, ln) }()
	eventually(t, "server ready", func() bool {
		resp, err := http.Get("http://" + out.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return out
}

func status(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainPhases walks one server through every phase of the drain.
func TestDrainPhases(t *testing.T) {
	release := make(chan struct{})
	var inFlightStarted atomic.Bool
	var shutdownCalled atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		inFlightStarted.Store(true)
		<-release
		fmt.Fprint(w, "slow done")
	})
	mux.Handle("/stream", LongLivedHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hi")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		fmt.Fprintln(w, "bye")
	})))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Server{
		HTTP: &http.Server{Handler: mux},
		// Phases 1 and 2 below must fit in it, a few requests, also on a busy machine.
		DrainDelay:      3 * time.Second,
		ShutdownTimeout: 30 * time.Second,
	}
	s.OnShutdown(func() { shutdownCalled.Store(true) })
	sv := startServer(t, ctx, s)
	base := "http://" + sv.addr
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer keepAlive.CloseIdleConnections()

	// Before the drain: keep-alive responses, live and ready.
	resp, err := keepAlive.Get(base + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("Connection: close before the drain")
	}

	// A long-lived stream and an in-flight request, both running when the drain starts.
	streamResp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer streamResp.Body.Close()
	streamBody := bufio.NewReader(streamResp.Body)
	if line, _ := streamBody.ReadString('\n'); line != "hi\n" {
		t.Fatalf("stream started with %q", line)
	}
	slowDone := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slowDone <- string(b)
	}()
	eventually(t, "in-flight request started", inFlightStarted.Load)

	cancel()

	// Phase 1: readiness fails at once, liveness does not, the listener is still open.
	eventually(t, "readiness fails", func() bool {
		return status(t, http.DefaultClient, base+"/readyz") == http.StatusServiceUnavailable
	})
	if got := status(t, http.DefaultClient, base+"/livez"); got != 200 {
		t.Fatalf("/livez while draining = %d, want 200", got)
	}
	// Phase 2: still serving, on the old keep-alive connection too, with Connection: close.
	resp, err = keepAlive.Get(base + "/hello")
	if err != nil {
		t.Fatalf("request during the drain delay failed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("during the drain delay: %d %q", resp.StatusCode, b)
	}
	if !resp.Close {
		t.Fatal("response during the drain delay lacks Connection: close")
	}
	select {
	case err := <-sv.done:
		t.Fatalf("Serve returned during the drain delay: %v", err)
	default:
	}

	// Phase 3: the listener closes; the long-lived stream is told to stop.
	eventually(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", sv.addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	rest, err := io.ReadAll(streamBody)
	if err != nil || string(rest) != "bye\n" {
		t.Fatalf("stream ended with %q, %v; want a clean \"bye\"", rest, err)
	}
	if !shutdownCalled.Load() {
		eventually(t, "OnShutdown callback", shutdownCalled.Load)
	}
	// The in-flight request is still waited for.
	select {
	case err := <-sv.done:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	default:
	}
	close(release)
	if got := <-slowDone; got != "slow done" {
		t.Fatalf("in-flight request: %q", got)
	}
	select {
	case err := <-sv.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestShutdownTimeout: a request that never ends does not keep the server forever.
func TestShutdownTimeout(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Server{
		HTTP: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			<-stuck
		})},
		DrainDelay:      -1,
		ShutdownTimeout: 200 * time.Millisecond,
	}
	sv := startServer(t, ctx, s)
	go func() {
		resp, err := http.Get("http://" + sv.addr + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	select {
	case err := <-sv.done:
		if !errors.Is(err, ErrShutdownTimeout) {
			t.Fatalf("Serve = %v, want ErrShutdownTimeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its shutdown timeout")
	}
}

// TestDrainMethod: Drain starts the drain without a signal or a context.
func TestDrainMethod(t *testing.T) {
	s := &Server{HTTP: &http.Server{Handler: http.NotFoundHandler()}, DrainDelay: -1}
	sv := startServer(t, context.Background(), s)
	s.Drain()
	s.Drain() // idempotent
	select {
	case err := <-sv.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after Drain")
	}
	if !s.Draining() {
		t.Fatal("Draining() = false after the drain")
	}
}

func TestHealthChecks(t *testing.T) {
	fail := func(context.Context) error { return errors.New("down") }
	pass := func(context.Context) error { return nil }
	tests := []struct {
		name      string
		serving   bool
		draining  bool
		ready     []Check
		live      []Check
		wantReady int
		wantLive  int
	}{
		{"not serving yet", false, false, nil, nil, 503, 200},
		{"serving, no checks", true, false, nil, nil, 200, 200},
		{"serving, checks pass", true, false, []Check{pass, pass}, []Check{pass}, 200, 200},
		{"a readiness check fails", true, false, []Check{pass, fail}, nil, 503, 200},
		{"a liveness check fails", true, false, nil, []Check{fail}, 200, 503},
		{"draining", true, true, []Check{pass}, []Check{pass}, 503, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Health{}
			h.SetServing(tc.serving)
			h.SetDraining(tc.draining)
			for i, c := range tc.ready {
				h.AddReadinessCheck(fmt.Sprint("r", i), c)
			}
			for i, c := range tc.live {
				h.AddLivenessCheck(fmt.Sprint("l", i), c)
			}
			for _, p := range []struct {
				h    http.Handler
				want int
			}{{h.ReadyHandler(), tc.wantReady}, {h.LiveHandler(), tc.wantLive}} {
				rec := httptest.NewRecorder()
				p.h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				if rec.Code != p.want {
					t.Errorf("status %d, want %d (body %s)", rec.Code, p.want, rec.Body.String())
				}
			}
		})
	}
}

// TestHijackedLongLived: a hijacked connection registered with LongLived is told to stop
// and waited for, which http.Server.Shutdown alone does not do.
func TestHijackedLongLived(t *testing.T) {
	var released atomic.Bool
	s := &Server{DrainDelay: -1, ShutdownTimeout: 30 * time.Second}
	s.HTTP = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, done := LongLived(r)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			done()
			return
		}
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		buf.Flush()
		go func() {
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond) // a slow close handshake
			conn.Write([]byte("bye\n"))
			conn.Close()
			released.Store(true)
			done()
		}()
	})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sv := startServer(t, ctx, s)
	conn, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
	r := bufio.NewReader(conn)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Fatalf("upgrade answered %q", line)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the upgrade's headers: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	cancel()
	if rest, _ := io.ReadAll(r); string(rest) != "bye\n" {
		t.Fatalf("hijacked connection ended with %q, want \"bye\"", rest)
	}
	select {
	case err := <-sv.done:
		if err != nil {
			t.Fatal(err)
		}
		if !released.Load() {
			t.Fatal("Serve returned before the hijacked connection was released")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
}
