package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	reg := &Registry{DB: pool, Schema: "tandem_state", TTL: 30 * time.Second, Logger: testLogger(t)}

	v1, err := reg.Register(ctx, Instance{App: "shop", Role: "api", AppVersion: "1.0", SchemaVersion: "public_v1"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := reg.Register(ctx, Instance{App: "shop", Role: "worker", AppVersion: "2.0", SchemaVersion: "public_v2"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := reg.Register(ctx, Instance{App: "shop", Role: "api", AppVersion: "0.9", SchemaVersion: "public_v0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.SetState(ctx, StateDraining); err != nil {
		t.Fatal(err)
	}
	// The old instance died without deregistering: its heartbeat is an hour old.
	old.stop()
	<-old.done
	if _, err := pool.Exec(ctx, `UPDATE tandem_state.instances SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`,
		old.Instance().ID); err != nil {
		t.Fatal(err)
	}

	insts, err := reg.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, i := range insts {
		states[i.AppVersion] = i.State
	}
	want := map[string]State{"1.0": StateDraining, "2.0": StateStarting}
	if len(states) != len(want) || states["1.0"] != want["1.0"] || states["2.0"] != want["2.0"] {
		t.Fatalf("alive instances %v, want %v", states, want)
	}

	versions, err := reg.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || versions[0].SchemaVersion != "public_v1" || versions[1].SchemaVersion != "public_v2" {
		t.Fatalf("alive versions %+v", versions)
	}

	n, err := reg.Expire(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1 stale row deleted", n, err)
	}

	if err := v1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v1.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	versions, err = reg.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 || versions[0].AppVersion != "2.0" {
		t.Fatalf("after deregistering v1: %+v", versions)
	}
	if err := v2.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryHeartbeat(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	reg := &Registry{DB: pool, TTL: 30 * time.Second, Heartbeat: 50 * time.Millisecond}
	g, err := reg.Register(ctx, Instance{App: "a", Role: "api", AppVersion: "1", SchemaVersion: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	// Age the row; the heartbeat brings it back.
	if _, err := pool.Exec(ctx, `UPDATE tandem.instances SET heartbeat_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "heartbeat refreshes the row", func() bool {
		insts, err := reg.Instances(ctx)
		return err == nil && len(insts) == 1
	})
}

func TestRegistryWithoutTables(t *testing.T) {
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	reg := &Registry{DB: pool, Schema: "nowhere"}
	if v, err := reg.Versions(context.Background()); err != nil || len(v) != 0 {
		t.Fatalf("Versions on an empty database = %v, %v", v, err)
	}
}

func TestNewPoolPinsVersion(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	tests := []struct {
		name, version, wantPath, wantSetting string
	}{
		{"pinned", "public_v2", `"public_v2"`, "public_v2"},
		{"not pinned", "", `"$user", public`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := NewPool(ctx, url, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			var path, setting string
			if err := pool.QueryRow(ctx, "SELECT current_setting('search_path'), coalesce(current_setting('tandem.version_schema', true), '')").
				Scan(&path, &setting); err != nil {
				t.Fatal(err)
			}
			if path != tc.wantPath || setting != tc.wantSetting {
				t.Fatalf("search_path %q, setting %q; want %q, %q", path, setting, tc.wantPath, tc.wantSetting)
			}
		})
	}
}

// TestEnsureStateSchemaConcurrent: instances starting together all set up the state.
func TestEnsureStateSchemaConcurrent(t *testing.T) {
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- EnsureStateSchema(context.Background(), pool, "") }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
