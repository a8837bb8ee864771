package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A Check reports whether one dependency is healthy. It returns nil when it is.
type Check func(ctx context.Context) error

type namedCheck struct {
	name  string
	check Check
}

// Health answers the readiness (/readyz) and liveness (/livez) probes.
//
// An instance is ready when it is serving, not draining, and every readiness check
// passes; it is live when every liveness check passes (draining does not affect
// liveness: a draining instance must not be restarted). The zero value is ready to use;
// a Server marks it serving and draining as its lifecycle goes.
type Health struct {
	// Timeout bounds each probe's checks together; 0 means 2s.
	Timeout time.Duration

	mu       sync.RWMutex
	ready    []namedCheck
	live     []namedCheck
	serving  atomic.Bool
	draining atomic.Bool
}

// ErrNotServing is the readiness error of an instance that is not serving yet.
var ErrNotServing = errors.New("not serving yet")

// ErrDraining is the readiness error of an instance that is draining.
var ErrDraining = errors.New("draining")

// AddReadinessCheck adds a check that must pass for /readyz to succeed, for example
// PingCheck or SchemaCheck.
func (h *Health) AddReadinessCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ready = append(h.ready, namedCheck{name, c})
}

// AddLivenessCheck adds a check that must pass for /livez to succeed. Keep liveness
// checks local to the process (a deadlock detector, say): a database outage should make
// instances unready, not restart them all.
func (h *Health) AddLivenessCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = append(h.live, namedCheck{name, c})
}

// SetServing marks the instance as serving (or not). Server calls it; call it yourself
// only when you run the probes without a Server.
func (h *Health) SetServing(v bool) { h.serving.Store(v) }

// SetDraining marks the instance as draining: readiness fails from now on.
func (h *Health) SetDraining(v bool) { h.draining.Store(v) }

// Draining reports whether the instance is draining.
func (h *Health) Draining() bool { return h.draining.Load() }

// CheckResult is the outcome of one check in a probe's report.
type CheckResult struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
}

// HealthReport is the body of a probe's answer.
type HealthReport struct {
	Status string        `json:"status"` // "ok" or "fail"
	Reason string        `json:"reason,omitempty"`
	Checks []CheckResult `json:"checks,omitempty"`
}

// Ready runs the readiness checks. It returns nil when the instance is ready.
func (h *Health) Ready(ctx context.Context) error {
	r := h.readyReport(ctx)
	if r.Status == "ok" {
		return nil
	}
	return errors.New(r.Reason)
}

// Live runs the liveness checks. It returns nil when the instance is live.
func (h *Health) Live(ctx context.Context) error {
	r := h.liveReport(ctx)
	if r.Status == "ok" {
		return nil
	}
	return errors.New(r.Reason)
}

func (h *Health) readyReport(ctx context.Context) HealthReport {
	switch {
	case h.draining.Load():
		return HealthReport{Status: "fail", Reason: ErrDraining.Error()}
	case !h.serving.Load():
		return HealthReport{Status: "fail", Reason: ErrNotServing.Error()}
	}
	h.mu.RLock()
	checks := h.ready
	h.mu.RUnlock()
	return h.run(ctx, checks)
}

func (h *Health) liveReport(ctx context.Context) HealthReport {
	h.mu.RLock()
	checks := h.live
	h.mu.RUnlock()
	return h.run(ctx, checks)
}

func (h *Health) run(ctx context.Context, checks []namedCheck) HealthReport {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep := HealthReport{Status: "ok", Checks: make([]CheckResult, len(checks))}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Checks[i].Name = c.name
			if err := c.check(ctx); err != nil {
				rep.Checks[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	for _, c := range rep.Checks {
		if c.Error != "" {
			rep.Status = "fail"
			rep.Reason = fmt.Sprintf("check %s failed: %s", c.Name, c.Error)
			break
		}
	}
	return rep
}

// ReadyHandler answers readiness probes: 200 when ready, 503 otherwise, with a JSON
// Report as the body.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReport(w, h.readyReport(r.Context()))
	})
}

// LiveHandler answers liveness probes: 200 when live, 503 otherwise, with a JSON HealthReport
// as the body.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReport(w, h.liveReport(r.Context()))
	})
}

func writeReport(w http.ResponseWriter, rep HealthReport) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// Pinger is anything that can ping its database, such as *pgxpool.Pool.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingCheck is a readiness check that passes when the database answers.
func PingCheck(db Pinger) Check {
	return func(ctx context.Context) error { return db.Ping(ctx) }
}

// SchemaCheck is a readiness check that passes when the Postgres schema named schema
// exists: use it with the version schema (migrate.VersionSchema) an instance needs, so
// that an instance of a new version is not ready before its migration has started.
func SchemaCheck(db DB, schema string) Check {
	return func(ctx context.Context) error {
		var ok bool
		err := db.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok)
		if err != nil {
			return fmt.Errorf("look up schema %q: %w", schema, err)
		}
		if !ok {
			return fmt.Errorf("schema %q does not exist", schema)
		}
		return nil
	}
}
