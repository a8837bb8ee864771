package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MaintenanceStatus is the maintenance flag as stored in the state schema.
type MaintenanceStatus struct {
	Enabled   bool      `json:"enabled"`
	Reason    string    `json:"reason,omitempty"`
	ChangedBy string    `json:"changed_by,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
}

// MaintenanceChannel returns the LISTEN/NOTIFY channel on which changes of the
// maintenance flag of state schema schema are announced.
func MaintenanceChannel(schema string) string {
	return stateSchema(schema) + ".maintenance"
}

// SetMaintenance turns maintenance mode on or off, records why and by whom, and notifies
// the instances watching it. The state schema is created if needed.
func SetMaintenance(ctx context.Context, db DB, schema string, enabled bool, reason string) (MaintenanceStatus, error) {
	if err := EnsureStateSchema(ctx, db, schema); err != nil {
		return MaintenanceStatus{}, err
	}
	by, _ := os.Hostname()
	if u := os.Getenv("USER"); u != "" {
		by = u + "@" + by
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return MaintenanceStatus{}, fmt.Errorf("set maintenance: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var st MaintenanceStatus
	err = tx.QueryRow(ctx, `INSERT INTO `+table(schema, "maintenance")+` AS m (id, enabled, reason, changed_by, changed_at)
		VALUES (true, $1, $2, $3, now())
		ON CONFLICT (id) DO UPDATE SET enabled = EXCLUDED.enabled, reason = EXCLUDED.reason,
			changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at
		RETURNING enabled, reason, changed_by, changed_at`, enabled, reason, by).
		Scan(&st.Enabled, &st.Reason, &st.ChangedBy, &st.ChangedAt)
	if err != nil {
		return MaintenanceStatus{}, fmt.Errorf("set maintenance: %w", err)
	}
	payload := "off"
	if enabled {
		payload = "on"
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", MaintenanceChannel(schema), payload); err != nil {
		return MaintenanceStatus{}, fmt.Errorf("set maintenance: notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return MaintenanceStatus{}, fmt.Errorf("set maintenance: %w", err)
	}
	return st, nil
}

// GetMaintenance reads the maintenance flag. A state schema that was never set up means
// maintenance is off.
func GetMaintenance(ctx context.Context, db DB, schema string) (MaintenanceStatus, error) {
	var st MaintenanceStatus
	err := db.QueryRow(ctx, "SELECT enabled, reason, changed_by, changed_at FROM "+table(schema, "maintenance")+
		" WHERE id").Scan(&st.Enabled, &st.Reason, &st.ChangedBy, &st.ChangedAt)
	if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
		return MaintenanceStatus{}, nil
	}
	if err != nil {
		return MaintenanceStatus{}, fmt.Errorf("read maintenance flag: %w", err)
	}
	return st, nil
}

// Maintenance follows the maintenance flag from inside an instance. Changes arrive at
// once through LISTEN/NOTIFY; the flag is also polled, so a lost notification or a
// broken listening connection delays a change by at most PollInterval.
//
// Workers call Wait before taking a task; Middleware answers 503 for costly routes
// while maintenance is on. Create it with WatchMaintenance.
type Maintenance struct {
	pool    *pgxpool.Pool
	schema  string
	poll    time.Duration
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	status  MaintenanceStatus
	changed chan struct{} // closed and replaced on every change
}

// MaintenanceOptions tune WatchMaintenance. The zero value is a good default.
type MaintenanceOptions struct {
	// Schema is the state schema; empty means DefaultStateSchema.
	Schema string
	// PollInterval is how often the flag is read even without notifications; 0 means 5s.
	PollInterval time.Duration
	// Logger receives changes and errors; nil means slog.Default().
	Logger *slog.Logger
	// Metrics, when set, get the Maintenance gauge updated.
	Metrics *Metrics
}

// WatchMaintenance reads the maintenance flag and keeps following it until ctx is
// cancelled. It creates the state schema if needed.
func WatchMaintenance(ctx context.Context, pool *pgxpool.Pool, opts MaintenanceOptions) (*Maintenance, error) {
	if err := EnsureStateSchema(ctx, pool, opts.Schema); err != nil {
		return nil, err
	}
	st, err := GetMaintenance(ctx, pool, opts.Schema)
	if err != nil {
		return nil, err
	}
	m := &Maintenance{
		pool: pool, schema: stateSchema(opts.Schema), poll: opts.PollInterval,
		log: opts.Logger, metrics: opts.Metrics, changed: make(chan struct{}),
	}
	if m.poll <= 0 {
		m.poll = 5 * time.Second
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.set(st)
	go m.listen(ctx)
	go m.pollLoop(ctx)
	return m, nil
}

// Enabled reports whether maintenance mode is on.
func (m *Maintenance) Enabled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status.Enabled
}

// Status returns the flag as last seen.
func (m *Maintenance) Status() MaintenanceStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Changed returns a channel closed at the next change of the flag.
func (m *Maintenance) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Wait is the worker gate: it returns nil at once when maintenance is off, blocks while
// it is on, and returns ctx's error if ctx ends first.
func (m *Maintenance) Wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		on, ch := m.status.Enabled, m.changed
		m.mu.Unlock()
		if !on {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Middleware answers 503 Service Unavailable with a Retry-After header (in seconds;
// 0 means 30) while maintenance is on, and calls next otherwise. Wrap only the routes
// that are costly: serving continues during maintenance.
func (m *Maintenance) Middleware(retryAfter time.Duration, next http.Handler) http.Handler {
	if retryAfter <= 0 {
		retryAfter = 30 * time.Second
	}
	secs := strconv.Itoa(int((retryAfter + time.Second - 1) / time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.Enabled() {
			w.Header().Set("Retry-After", secs)
			http.Error(w, "maintenance in progress, retry later", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (m *Maintenance) set(st MaintenanceStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.metrics != nil {
		v := 0.0
		if st.Enabled {
			v = 1
		}
		m.metrics.Maintenance.Set(v)
	}
	if st.Enabled == m.status.Enabled && st.Reason == m.status.Reason &&
		st.ChangedBy == m.status.ChangedBy && st.ChangedAt.Equal(m.status.ChangedAt) {
		return
	}
	if st.Enabled != m.status.Enabled {
		m.log.Info("maintenance mode changed", "enabled", st.Enabled, "reason", st.Reason, "by", st.ChangedBy)
	}
	m.status = st
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Maintenance) refresh(ctx context.Context) error {
	st, err := GetMaintenance(ctx, m.pool, m.schema)
	if err != nil {
		return err
	}
	m.set(st)
	return nil
}

func (m *Maintenance) pollLoop(ctx context.Context) {
	t := time.NewTicker(m.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("maintenance: poll failed", "err", err)
		}
	}
}

// listen holds a connection that LISTENs on the channel, reconnecting after errors.
func (m *Maintenance) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := m.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("maintenance: listening failed, polling until it is back", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.poll)
	}
}

func (m *Maintenance) listenOnce(ctx context.Context) error {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that was LISTENing goes back to no pool: destroy it.
	defer func() {
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{MaintenanceChannel(m.schema)}.Sanitize()); err != nil {
		return err
	}
	// A change made between our last read and LISTEN would be missed: read again.
	if err := m.refresh(ctx); err != nil {
		return err
	}
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		if err := m.refresh(ctx); err != nil {
			return err
		}
	}
}
