package catalog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
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

// instance is one instance of the example run in-process by start.
type instance struct {
	t    *testing.T
	base string
	stop func()
}

// start runs an instance with cfg (its Listen, Logger and timeouts filled in) until the
// test ends or stop is called, and waits until it is ready.
func start(t *testing.T, cfg Config) *instance {
	t.Helper()
	cfg.Listen = freeAddr(t)
	cfg.DrainDelay = 100 * time.Millisecond
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	in := &instance{t: t, base: "http://" + cfg.Listen}
	stopped := false
	in.stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s %s instance: %v", cfg.Release, cfg.Role, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("%s %s instance did not stop", cfg.Release, cfg.Role)
		}
	}
	t.Cleanup(in.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(in.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return in
			}
		}
		select {
		case err := <-done:
			t.Fatalf("%s %s instance stopped before it got ready: %v", cfg.Release, cfg.Role, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s instance never got ready", cfg.Release, cfg.Role)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) get(path string) (int, string) {
	in.t.Helper()
	resp, err := http.Get(in.base + path)
	if err != nil {
		in.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func (in *instance) post(path, body string) (int, string) {
	in.t.Helper()
	resp, err := http.Post(in.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		in.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatalf("POST %s: body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// addItem adds an item through the API and returns its id.
func (in *instance) addItem(name string, price int) int64 {
	in.t.Helper()
	body, _ := json.Marshal(Item{Name: name, PriceCents: price})
	code, resp := in.post("/api/items", string(body))
	var it Item
	if code != 201 || json.Unmarshal([]byte(resp), &it) != nil || it.ID == 0 {
		in.t.Fatalf("add item %q: %d %s", name, code, resp)
	}
	return it.ID
}

// item reads an item through the API.
func (in *instance) item(id int64) Item {
	in.t.Helper()
	code, resp := in.get(fmt.Sprint("/api/items/", id))
	var it Item
	if code != 200 || json.Unmarshal([]byte(resp), &it) != nil {
		in.t.Fatalf("get item %d: %d %s", id, code, resp)
	}
	return it
}

// underLoad runs fn while a client adds and reads items through in, and returns how
// many items it added and the requests that failed.
func (in *instance) underLoad(fn func() string) (added int, failed []string, result string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"name": "load %d", "price_cents": %d}`, n, n)
			resp, err := http.Post(in.base+"/api/items", "application/json", strings.NewReader(body))
			if err == nil {
				var it Item
				err = json.NewDecoder(resp.Body).Decode(&it)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 201 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				if err == nil {
					added++
					resp, err = http.Get(fmt.Sprint(in.base, "/api/items/", it.ID))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("read item %d: status %d", it.ID, resp.StatusCode)
						}
					}
				}
			}
			if err != nil {
				failed = append(failed, err.Error())
			}
		}
	}()
	result = fn()
	close(stop)
	<-done
	return added, failed, result
}

func TestCatalog(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := Setup(ctx, pgtest.NewPool(t, url)); err != nil {
		t.Fatal(err)
	}
	in := start(t, Config{PostgresURL: url, AppVersion: "test"}) // unpinned, release v1, role all

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
		code, body := in.get(tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.wantHas) {
			t.Errorf("GET %s = %d %s; want %d containing %q", tc.path, code, body, tc.wantCode, tc.wantHas)
		}
	}
	if code, body := in.get("/content/sample?ms=100"); code != 200 || len(body) < BlobSize {
		t.Errorf("content: %d, %d bytes", code, len(body))
	}
	for _, body := range []string{`{"name": "", "price_cents": 5}`, `{"name": "x", "price_cents": -1}`, `{"name": "x", "price_cents": 3000000000}`} {
		if code, _ := in.post("/api/items", body); code != 400 {
			t.Errorf("POST %s = %d; want 400", body, code)
		}
	}
	in.addItem("new", 5)
	if code, _ := in.post("/api/tasks", `{"work_ms": 10}`); code != 201 {
		t.Errorf("add task: %d", code)
	}
	pool := pgtest.NewPool(t, url)
	waitTasksDone(t, pool)

	// Maintenance gates the costly route.
	if _, err := lifecycle.SetMaintenance(ctx, pool, "", true, "test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := in.get("/api/report")
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("report still served with maintenance on")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The registry knows the instance.
	versions, err := (&lifecycle.Registry{DB: pool}).Versions(ctx)
	if err != nil || len(versions) != 1 || versions[0].AppVersion != "test" {
		t.Fatalf("registry: %+v, %v", versions, err)
	}

	// An events stream ends with "bye" when the instance drains.
	resp, err := http.Get(in.base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != "event: tick\n" {
		t.Fatalf("events started with %q", line)
	}
	stopped := make(chan struct{})
	go func() { in.stop(); close(stopped) }()
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "event: bye") {
		t.Fatalf("events ended without bye: %q", rest)
	}
	<-stopped
	versions, _ = (&lifecycle.Registry{DB: pool}).Versions(ctx)
	if len(versions) != 0 {
		t.Fatalf("instance still registered after its exit: %+v", versions)
	}
}

// waitTasksDone waits until no task is pending.
func waitTasksDone(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pending int
		if err := db.QueryRow(context.Background(), "SELECT count(*) FROM tasks WHERE done_at IS NULL").Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workers left %d tasks pending", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpgradeAcrossReleases upgrades the example v1 → v2 → v3 the way `tandem upgrade`
// does: each release's migrations are started while the previous release's code still
// runs, both releases read and write side by side, the old one stops, and only then is
// the migration completed.
func TestUpgradeAcrossReleases(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	m, err := migrate.Open(ctx, url, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	apply := func(release string, complete bool) (versionSchema string) {
		t.Helper()
		migs, err := migrate.ReadDir(filepath.Join("releases", release, "migrations"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Migrate(ctx, migs, complete); err != nil {
			t.Fatalf("migrate to %s: %v", release, err)
		}
		_, vs, err := m.LatestVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	pinned := func(vs string) *pgxpool.Pool {
		t.Helper()
		p, err := lifecycle.NewPool(ctx, url, vs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	scalar := func(db *pgxpool.Pool, sql string, args ...any) string {
		t.Helper()
		var s *string
		if err := db.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if s == nil {
			return "NULL"
		}
		return *s
	}
	base := pgtest.NewPool(t, url) // the physical tables, for the tasks
	tasks := 0
	addTasks := func(ins ...*instance) {
		t.Helper()
		for _, in := range ins {
			for range 3 {
				if code, body := in.post("/api/tasks", `{"work_ms": 20}`); code != 201 {
					t.Fatalf("add task: %d %s", code, body)
				}
				tasks++
			}
		}
	}

	// v1, created by migrations and seeded through its version schema.
	const seeded = 20000
	vs1 := apply("v1", true)
	p1 := pinned(vs1)
	for range 2 { // idempotent
		if err := Seed(ctx, p1, seeded); err != nil {
			t.Fatal(err)
		}
	}
	if n := scalar(p1, "SELECT count(*)::text FROM items"); n != fmt.Sprint(seeded) {
		t.Fatalf("seeded %s items; want %d", n, seeded)
	}
	checksum := func(db *pgxpool.Pool) string {
		t.Helper()
		return scalar(db, "SELECT md5(string_agg(id || ':' || price_cents, ',' ORDER BY id)) FROM items WHERE id <= $1", seeded)
	}
	sum := checksum(p1)
	v1 := start(t, Config{PostgresURL: url, VersionSchema: vs1, Release: "v1"})
	if it := v1.item(7); it.Name != "item 7" {
		t.Fatalf("v1 item 7: %+v", it)
	}
	addTasks(v1)

	// v2 expands beside v1.
	loadAdded := 0
	underLoad := func(old *instance, fn func() string) string {
		t.Helper()
		added, failed, vs := old.underLoad(fn)
		if failed != nil {
			t.Errorf("requests to the running release failed during the migration: %v", failed)
		}
		if added == 0 {
			t.Error("no request completed during the migration: the load did not overlap it")
		}
		t.Logf("%d items added through the running release while %s was started", added, vs)
		loadAdded += added
		return vs
	}
	vs2 := underLoad(v1, func() string { return apply("v2", false) })
	if vs2 == vs1 {
		t.Fatalf("v2's version schema is v1's: %s", vs2)
	}
	p2 := pinned(vs2)
	v2 := start(t, Config{PostgresURL: url, VersionSchema: vs2, Release: "v2"})
	fromV1 := v1.addItem("from v1", 5)
	fromV2 := v2.addItem("from v2", 7)
	for _, c := range []struct {
		reader *instance
		id     int64
		want   Item
	}{
		{v2, fromV1, Item{ID: fromV1, Name: "from v1", PriceCents: 5}},
		{v1, fromV2, Item{ID: fromV2, Name: "from v2", PriceCents: 7}},
		{v2, 7, Item{ID: 7, Name: "item 7", PriceCents: 7 * 37}},
	} {
		if got := c.reader.item(c.id); got != c.want {
			t.Errorf("item %d: %+v; want %+v", c.id, got, c.want)
		}
	}
	// The computed column is filled for every row: the seeded ones (backfill), v1's
	// (trigger) and v2's (its own insert).
	if n := scalar(p2, `SELECT count(*)::text FROM items WHERE label IS DISTINCT FROM title || ' (' || price_cents || ' cents)'`); n != "0" {
		t.Errorf("%s rows with a wrong label", n)
	}
	if l := scalar(p2, "SELECT label FROM items WHERE id = $1", fromV1); l != "from v1 (5 cents)" {
		t.Errorf("label of v1's row: %q", l)
	}
	if typ := scalar(p2, "SELECT pg_typeof(price_cents)::text FROM items LIMIT 1"); typ != "bigint" {
		t.Errorf("v2 sees price_cents as %s; want bigint", typ)
	}
	if sku := scalar(p1, "SELECT sku FROM items WHERE id = $1", fromV1); !strings.HasPrefix(sku, "SKU-") {
		t.Errorf("v1 wrote sku %q", sku)
	}
	if sku := scalar(p1, "SELECT sku FROM items WHERE id = $1", fromV2); sku != "NULL" {
		t.Errorf("v2 wrote sku %q; want none", sku)
	}
	addTasks(v1, v2)
	waitTasksDone(t, base)

	// v1 leaves, then v2 contracts.
	v1.stop()
	if err := m.Complete(ctx); err != nil {
		t.Fatalf("complete v2: %v", err)
	}
	if got := v2.item(fromV1); got.Name != "from v1" || got.PriceCents != 5 {
		t.Errorf("v2 after complete: %+v", got)
	}
	afterV2 := v2.addItem("after v2", 9)
	addTasks(v2)

	// v3 expands beside v2.
	vs3 := underLoad(v2, func() string { return apply("v3", false) })
	p3 := pinned(vs3)
	v3 := start(t, Config{PostgresURL: url, VersionSchema: vs3, Release: "v3"})
	w3 := start(t, Config{PostgresURL: url, VersionSchema: vs3, Release: "v3", Role: "worker"})
	if code, _ := w3.get("/api/items/1"); code != 404 {
		t.Errorf("a worker served /api: %d", code)
	}
	long := strings.Repeat("x", 300)
	fromV2Long := v2.addItem(long, 11)
	if got := v3.item(fromV2Long); got.Name != long[:200] {
		t.Errorf("v3 reads v2's long name as %d characters; want 200", len(got.Name))
	}
	if code, body := v3.post("/api/items", fmt.Sprintf(`{"name": %q, "price_cents": 1}`, long)); code != 400 {
		t.Errorf("v3 took a 300-character name: %d %s", code, body)
	}
	fromV3 := v3.addItem("from v3", 13)
	for _, c := range []struct {
		reader *instance
		id     int64
		want   Item
	}{
		{v3, afterV2, Item{ID: afterV2, Name: "after v2", PriceCents: 9}},
		{v2, fromV3, Item{ID: fromV3, Name: "from v3", PriceCents: 13}},
	} {
		if got := c.reader.item(c.id); got != c.want {
			t.Errorf("item %d: %+v; want %+v", c.id, got, c.want)
		}
	}
	if l := scalar(p3, "SELECT label FROM items WHERE id = $1", fromV3); l != "from v3 (13 cents)" {
		t.Errorf("label of v3's row: %q", l)
	}
	if _, err := p3.Exec(ctx, "SELECT sku FROM items"); err == nil {
		t.Error("v3 still sees sku")
	}
	addTasks(v2, v3)
	waitTasksDone(t, base)

	// v2 leaves, then v3 contracts.
	v2.stop()
	if err := m.Complete(ctx); err != nil {
		t.Fatalf("complete v3: %v", err)
	}
	if got := v3.item(fromV1); got.Name != "from v1" || got.PriceCents != 5 {
		t.Errorf("v3 after complete: %+v", got)
	}
	v3.addItem("after v3", 15)
	addTasks(v3)
	waitTasksDone(t, base)
	if code, _ := v3.get("/content/sample?ms=0"); code != 200 {
		t.Errorf("v3 content: %d", code)
	}

	// The table has v3's shape, its checks validated.
	if got := scalar(base, `SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY column_name)
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'items'`); got !=
		"created_at timestamp with time zone NO, id bigint NO, label text NO, price_cents bigint NO, title text NO" {
		t.Errorf("items after v3: %s", got)
	}
	if got := scalar(base, `SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY pg_get_constraintdef(oid))
		FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND contype = 'c'`); got !=
		"CHECK ((length(title) <= 200)), CHECK ((price_cents >= 0))" {
		t.Errorf("checks after v3: %s", got)
	}

	if got := scalar(base, `SELECT pg_get_indexdef('public.tasks_pending'::regclass)`); !strings.HasSuffix(got, "WHERE (done_at IS NULL)") {
		t.Errorf("tasks_pending: %s", got)
	}

	// No row lost or changed, no task lost or done twice.
	if got := checksum(p3); got != sum {
		t.Errorf("the seeded rows changed: checksum %s, was %s", got, sum)
	}
	if n := scalar(p3, "SELECT count(*)::text FROM items"); n != fmt.Sprint(seeded+6+loadAdded) {
		t.Errorf("%s items; want %d", n, seeded+6+loadAdded)
	}
	if got := scalar(base, "SELECT count(*) || ' ' || count(*) FILTER (WHERE attempts = 1 AND done_by IS NOT NULL) FROM tasks"); got != fmt.Sprintf("%d %d", tasks, tasks) {
		t.Errorf("tasks (all, done once): %s; want %d of each", got, tasks)
	}
}

func TestRoles(t *testing.T) {
	s := &service{maint: &lifecycle.Maintenance{}}
	paths := []string{"/api/items/1", "/api/items", "/api/report", "/content/sample", "/events"}
	tests := []struct {
		role  string
		serve []string
	}{
		{"api", paths}, // the web tier: the API and the content
		{"content", paths[3:]},
		{"worker", nil},
		{"all", paths},
	}
	for _, tc := range tests {
		mux := s.routes(tc.role)
		for _, p := range paths {
			r, _ := http.NewRequest("GET", p, nil)
			_, pattern := mux.Handler(r)
			served := pattern != ""
			want := false
			for _, w := range tc.serve {
				want = want || w == p
			}
			if served != want {
				t.Errorf("role %s serves %s: %v; want %v", tc.role, p, served, want)
			}
		}
	}
}

func TestMainRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--release", "v9"},
		{"--role", "everything"},
		{"extra"},
	} {
		if code := Main(context.Background(), "catalog", args); code != 2 {
			t.Errorf("Main %v = %d; want 2", args, code)
		}
	}
}
