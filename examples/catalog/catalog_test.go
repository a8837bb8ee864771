package catalog

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/lifecycle"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestCatalog(t *testing.T) {
	url := pgtest.NewDatabase(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listen: addr, PostgresURL: url, AppVersion: "test", DrainDelay: 200 * time.Millisecond,
			ShutdownTimeout: 20 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("instance never got ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return resp.StatusCode, string(b)
	}
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	tests := []struct {
		path     string
		wantCode int
		wantHas  string
	}{
		{"/api/items/7", 200, `"name":"item 7"`},
		{"/api/items/999999", 404, "no such item"},
		{"/api/items/x", 400, "number"},
		{"/api/items?limit=2", 200, `"id":2`},
		{"/api/report", 200, `"items":1000`},
		{"/content/nope", 404, "no such blob"},
	}
	for _, tc := range tests {
		code, body := get(tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.wantHas) {
			t.Errorf("GET %s = %d %s; want %d containing %q", tc.path, code, body, tc.wantCode, tc.wantHas)
		}
	}
	if code, body := get("/content/sample?ms=100"); code != 200 || len(body) < BlobSize {
		t.Errorf("content: %d, %d bytes", code, len(body))
	}
	if code := post("/api/items", `{"name": "new", "price_cents": 5}`); code != 201 {
		t.Errorf("add item: %d", code)
	}
	if code := post("/api/tasks", `{"work_ms": 10}`); code != 201 {
		t.Errorf("add task: %d", code)
	}
	pool := pgtest.NewPool(t, url)
	for {
		var pending int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM tasks WHERE done_at IS NULL").Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not do the task")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Maintenance gates the costly route.
	if _, err := lifecycle.SetMaintenance(context.Background(), pool, "", true, "test"); err != nil {
		t.Fatal(err)
	}
	for {
		code, _ := get("/api/report")
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("report still served with maintenance on")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The registry knows the instance.
	versions, err := (&lifecycle.Registry{DB: pool}).Versions(context.Background())
	if err != nil || len(versions) != 1 || versions[0].AppVersion != "test" {
		t.Fatalf("registry: %+v, %v", versions, err)
	}

	// An events stream ends with "bye" when the instance drains.
	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != "event: tick\n" {
		t.Fatalf("events started with %q", line)
	}
	cancel()
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "event: bye") {
		t.Fatalf("events ended without bye: %q", rest)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("instance did not stop")
	}
	versions, _ = (&lifecycle.Registry{DB: pool}).Versions(context.Background())
	if len(versions) != 0 {
		t.Fatalf("instance still registered after its exit: %+v", versions)
	}
}
