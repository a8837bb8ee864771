package haproxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/haproxy"
	"github.com/tandem-pg/tandem/internal/haproxytest"
)

// server is an HTTP server that answers its name.
func server(t *testing.T, name string) haproxy.Endpoint {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return haproxy.Endpoint{Name: name, Addr: strings.TrimPrefix(s.URL, "http://")}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// answer is who answers a request through HAProxy.
func answer(t *testing.T, port int) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// settles returns who answers once a reload's new process has taken over (a reload
// hands the change to a new process; it takes the listener over a moment later).
func settles(t *testing.T, port int, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := answer(t, port)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRouterCoalesces: with an interval, a change right after an application waits for
// the interval, and the changes queued meanwhile reach HAProxy together, the last one
// winning; without one, each change is applied on its own.
func TestRouterCoalesces(t *testing.T) {
	haproxytest.Require(t)
	for _, mode := range []string{haproxy.ModeReload, haproxy.ModeRuntime} {
		t.Run(mode, func(t *testing.T) {
			a, b, c := server(t, "a"), server(t, "b"), server(t, "c")
			port := freePort(t)
			h, err := haproxy.New("", t.TempDir(), port, mode, false)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			if err := h.Start(context.Background(), []haproxy.Endpoint{a}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var applied []time.Time
			var lines []string
			// Long enough for the steps below, up to the answer within the interval, to
			// fit in it on a busy machine (a reload's takeover alone may take a second).
			const interval = 4 * time.Second
			rt := haproxy.NewRouter(h, haproxy.RouterOptions{Interval: interval, OnEvent: func(s string) {
				mu.Lock()
				applied, lines = append(applied, time.Now()), append(lines, s)
				mu.Unlock()
			}})
			defer rt.Close()
			rt.Set([]haproxy.Endpoint{b}, "to b")
			rt.Wait()
			if got := settles(t, port, "b"); got != "b" {
				t.Fatalf("after the first change HAProxy routes to %q, want b", got)
			}
			rt.Set([]haproxy.Endpoint{a}, "to a")
			time.Sleep(100 * time.Millisecond)
			rt.Set([]haproxy.Endpoint{c}, "to c")
			if got := answer(t, port); got != "b" {
				t.Errorf("within the interval HAProxy routes to %q, want still b", got)
			}
			rt.Wait()
			if got := settles(t, port, "c"); got != "c" {
				t.Errorf("after the interval HAProxy routes to %q, want c (the last change)", got)
			}
			if err := rt.Err(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(applied) != 2 || !strings.Contains(lines[1], "to a, to c") {
				t.Fatalf("applications %q, want two, the second carrying both changes", lines)
			}
			// Events come once an application is done; the interval runs between their
			// starts: allow the first one's own duration.
			if gap := applied[1].Sub(applied[0]); gap < interval-200*time.Millisecond {
				t.Errorf("the second application came %s after the first, before the interval %s", gap, interval)
			}
		})
	}
}
