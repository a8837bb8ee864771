package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is where an instance is in its lifecycle, as recorded in the registry.
type State string

// The states of a registered instance.
const (
	StateStarting State = "starting"
	StateReady    State = "ready"
	StateDraining State = "draining"
)

// Instance is one running process of an app, as recorded in the registry.
type Instance struct {
	ID            string    `json:"id"`
	App           string    `json:"app"`
	Role          string    `json:"role"` // api, content, worker, ...
	AppVersion    string    `json:"app_version"`
	SchemaVersion string    `json:"schema_version"`
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	State         State     `json:"state"`
	StartedAt     time.Time `json:"started_at"`
	HeartbeatAt   time.Time `json:"heartbeat_at"`
}

// VersionCount is one app and schema version alive now, with how many instances run it.
type VersionCount struct {
	App           string `json:"app"`
	AppVersion    string `json:"app_version"`
	SchemaVersion string `json:"schema_version"`
	Instances     int    `json:"instances"`
}

// Registry is the instance registry in the state schema's "instances" table. Instances
// Register themselves and refresh a heartbeat; rows whose heartbeat is older than TTL
// are expired: ignored by queries and deleted by Expire.
type Registry struct {
	// DB is the database holding the registry.
	DB DB
	// Schema is the state schema; empty means DefaultStateSchema.
	Schema string
	// TTL is how long an instance stays alive without a heartbeat; 0 means 30s.
	TTL time.Duration
	// Heartbeat is how often a Registration refreshes its row; 0 means TTL/3.
	Heartbeat time.Duration
	// Logger receives heartbeat failures; nil means slog.Default().
	Logger *slog.Logger
}

func (r *Registry) ttl() time.Duration {
	if r.TTL <= 0 {
		return 30 * time.Second
	}
	return r.TTL
}

func (r *Registry) heartbeat() time.Duration {
	if r.Heartbeat <= 0 {
		return r.ttl() / 3
	}
	return r.Heartbeat
}

// Registration is one instance's entry in the registry, kept alive by a heartbeat until
// Close.
type Registration struct {
	reg    *Registry
	mu     sync.Mutex
	inst   Instance
	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

// Register records inst (State defaults to "starting"; ID, Host and PID are filled in
// when empty) and starts refreshing its heartbeat in the background. The state schema is
// created if needed.
func (r *Registry) Register(ctx context.Context, inst Instance) (*Registration, error) {
	if err := EnsureStateSchema(ctx, r.DB, r.Schema); err != nil {
		return nil, err
	}
	if inst.Host == "" {
		inst.Host, _ = os.Hostname()
	}
	if inst.PID == 0 {
		inst.PID = os.Getpid()
	}
	if inst.ID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		inst.ID = fmt.Sprintf("%s-%d-%s", inst.Host, inst.PID, hex.EncodeToString(b))
	}
	if inst.State == "" {
		inst.State = StateStarting
	}
	g := &Registration{reg: r, inst: inst, done: make(chan struct{})}
	if err := g.upsert(ctx); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.stop = cancel
	go g.loop(hctx)
	return g, nil
}

// Instance returns the instance as registered.
func (g *Registration) Instance() Instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inst
}

func (g *Registration) upsert(ctx context.Context) error {
	g.mu.Lock()
	inst := g.inst
	g.mu.Unlock()
	_, err := g.reg.DB.Exec(ctx, `INSERT INTO `+table(g.reg.Schema, "instances")+`
		(id, app, role, app_version, schema_version, host, pid, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, heartbeat_at = now()`,
		inst.ID, inst.App, inst.Role, inst.AppVersion, inst.SchemaVersion, inst.Host, inst.PID, string(inst.State))
	if err != nil {
		return fmt.Errorf("registry: record instance %s: %w", inst.ID, err)
	}
	return nil
}

func (g *Registration) loop(ctx context.Context) {
	defer close(g.done)
	log := g.reg.Logger
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(g.reg.heartbeat())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.upsert(ctx); err != nil && ctx.Err() == nil {
			log.Warn("registry heartbeat failed", "err", err)
		}
		if _, err := g.reg.Expire(ctx); err != nil && ctx.Err() == nil {
			log.Warn("registry expiry failed", "err", err)
		}
	}
}

// SetState records the instance's new state.
func (g *Registration) SetState(ctx context.Context, st State) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errors.New("registry: registration closed")
	}
	g.inst.State = st
	g.mu.Unlock()
	return g.upsert(ctx)
}

// Close stops the heartbeat and removes the instance from the registry.
func (g *Registration) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	g.stop()
	<-g.done
	if _, err := g.reg.DB.Exec(ctx, "DELETE FROM "+table(g.reg.Schema, "instances")+" WHERE id = $1", g.inst.ID); err != nil {
		return fmt.Errorf("registry: deregister %s: %w", g.inst.ID, err)
	}
	return nil
}

// Expire deletes the rows of instances whose heartbeat is older than the TTL and
// returns how many it deleted.
func (r *Registry) Expire(ctx context.Context) (int64, error) {
	tag, err := r.DB.Exec(ctx, "DELETE FROM "+table(r.Schema, "instances")+
		" WHERE heartbeat_at < now() - make_interval(secs => $1)", r.ttl().Seconds())
	if err != nil {
		return 0, fmt.Errorf("registry: expire instances: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Instances returns the instances alive now (heartbeat within the TTL), oldest first.
// A missing registry table means no instances.
func (r *Registry) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := r.DB.Query(ctx, `SELECT id, app, role, app_version, schema_version, host, pid, state,
			started_at, heartbeat_at
		FROM `+table(r.Schema, "instances")+`
		WHERE heartbeat_at >= now() - make_interval(secs => $1)
		ORDER BY started_at, id`, r.ttl().Seconds())
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("registry: list instances: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Instance, error) {
		var i Instance
		var st string
		err := row.Scan(&i.ID, &i.App, &i.Role, &i.AppVersion, &i.SchemaVersion, &i.Host, &i.PID, &st,
			&i.StartedAt, &i.HeartbeatAt)
		i.State = State(st)
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list instances: %w", err)
	}
	return out, nil
}

// Versions answers "which versions are alive now": each app and schema version with at
// least one instance whose heartbeat is within the TTL, whatever its state.
func (r *Registry) Versions(ctx context.Context) ([]VersionCount, error) {
	rows, err := r.DB.Query(ctx, `SELECT app, app_version, schema_version, count(*)
		FROM `+table(r.Schema, "instances")+`
		WHERE heartbeat_at >= now() - make_interval(secs => $1)
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, r.ttl().Seconds())
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("registry: alive versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VersionCount, error) {
		var v VersionCount
		err := row.Scan(&v.App, &v.AppVersion, &v.SchemaVersion, &v.Instances)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: alive versions: %w", err)
	}
	return out, nil
}
