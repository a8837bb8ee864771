package lifecycle

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// heldGate is the Gate of m that tells whether a worker is held at it: in a Wait that
// began while maintenance was on, which does not return until it is off.
type heldGate struct {
	m    *Maintenance
	held atomic.Bool
}

func (g *heldGate) Wait(ctx context.Context) error {
	g.held.Store(g.m.Enabled())
	defer g.held.Store(false)
	return g.m.Wait(ctx)
}

func waitChanged(t *testing.T, m *Maintenance, want bool) {
	t.Helper()
	for m.Enabled() != want {
		select {
		case <-m.Changed():
		case <-time.After(20 * time.Second):
			t.Fatalf("maintenance did not become %v", want)
		}
	}
}

// TestMaintenanceNotify: a change reaches a watcher through NOTIFY (polling is made too
// slow to matter), a worker blocks on the gate and resumes, and the middleware answers 503.
func TestMaintenanceNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	m, err := WatchMaintenance(ctx, pool, MaintenanceOptions{PollInterval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Enabled() {
		t.Fatal("maintenance on in a fresh database")
	}
	// Let the listener start LISTENing: it reads the flag again once it does, so a change
	// made before that is still seen; but a NOTIFY-only path wants the LISTEN in place.
	time.Sleep(200 * time.Millisecond)

	var taken atomic.Int64
	gate := &heldGate{m: m}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		w := &Worker{Gate: gate, Idle: 10 * time.Millisecond, Logger: testLogger(t)}
		_ = w.Run(wctx, func(context.Context) (bool, error) {
			taken.Add(1)
			return false, nil
		})
	}()
	eventually(t, "worker takes tasks", func() bool { return taken.Load() > 0 })

	h := m.Middleware(10*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	get := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/costly", nil))
		return rec
	}
	if rec := get(); rec.Code != 200 {
		t.Fatalf("costly route with maintenance off: %d", rec.Code)
	}

	st, err := SetMaintenance(ctx, pool, "", true, "expand users")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Reason != "expand users" {
		t.Fatalf("SetMaintenance returned %+v", st)
	}
	waitChanged(t, m, true)
	if rec := get(); rec.Code != 503 || rec.Header().Get("Retry-After") != "10" {
		t.Fatalf("costly route with maintenance on: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// The worker comes back to the gate and is held there (a task that passed the gate
	// before the change is over by then): it takes nothing more.
	eventually(t, "worker held at the gate", gate.held.Load)
	before := taken.Load()
	time.Sleep(300 * time.Millisecond)
	if after := taken.Load(); after != before {
		t.Fatalf("worker took %d tasks while maintenance was on", after-before)
	}

	if _, err := SetMaintenance(ctx, pool, "", false, ""); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, m, false)
	eventually(t, "worker resumes", func() bool { return taken.Load() > before })

	got, err := GetMaintenance(ctx, pool, "")
	if err != nil || got.Enabled {
		t.Fatalf("GetMaintenance = %+v, %v", got, err)
	}
	stopWorker()
	<-workerDone
}

// TestMaintenancePolling: a change made without NOTIFY is still seen by polling.
func TestMaintenancePolling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	m, err := WatchMaintenance(ctx, pool, MaintenanceOptions{Schema: "st", PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO st.maintenance (enabled, reason) VALUES (true, 'silent')`); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, m, true)
	if m.Status().Reason != "silent" {
		t.Fatalf("status %+v", m.Status())
	}
	gateCtx, cancelGate := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelGate()
	if err := m.Wait(gateCtx); err == nil {
		t.Fatal("gate open while maintenance is on")
	}
}

func TestGetMaintenanceWithoutState(t *testing.T) {
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	st, err := GetMaintenance(context.Background(), pool, "")
	if err != nil || st.Enabled {
		t.Fatalf("GetMaintenance on a fresh database = %+v, %v", st, err)
	}
}
