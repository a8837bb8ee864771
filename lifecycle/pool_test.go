package lifecycle

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func TestWarmPool(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	setup := pgtest.NewPool(t, url)
	if _, err := setup.Exec(ctx, `CREATE TABLE things (id bigint PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		query   string
		wantErr string // "" for success
	}{
		{"opens and warms every connection", `SELECT name FROM things WHERE id = $1`, ""},
		{"the warm query's error is returned", `SELECT price FROM items WHERE id = $1`, `relation "items" does not exist`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 3
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			var warmed atomic.Int32
			err = WarmPool(ctx, pool, 0, func(ctx context.Context, c *pgx.Conn) error {
				warmed.Add(1)
				var name string
				if err := c.QueryRow(ctx, tc.query, 1).Scan(&name); err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				return nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("WarmPool: %v, want an error containing %s", err, tc.wantErr)
				}
				if s := pool.Stat(); s.AcquiredConns() != 0 {
					t.Errorf("WarmPool failed with %d connections still acquired", s.AcquiredConns())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := pool.Stat(); s.TotalConns() != 3 || s.IdleConns() != 3 || warmed.Load() != 3 {
				t.Fatalf("after WarmPool: %d connections, %d idle, %d warmed; want 3 of each", s.TotalConns(), s.IdleConns(), warmed.Load())
			}
			// Each connection ran the query once: pgx's statement cache holds it, so the
			// server has it prepared on every session.
			var conns []*pgxpool.Conn
			defer func() {
				for _, c := range conns {
					c.Release()
				}
			}()
			pids := map[uint32]bool{}
			for range 3 {
				c, err := pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				pids[c.Conn().PgConn().PID()] = true
				var n int
				if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement = $1`, tc.query).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Errorf("session %d has the warm query prepared %d times, want once", c.Conn().PgConn().PID(), n)
				}
			}
			if s := pool.Stat(); s.TotalConns() != 3 || len(pids) != 3 {
				t.Errorf("the pool has %d connections (%d sessions seen), want the 3 warmed", s.TotalConns(), len(pids))
			}
		})
	}
}

// TestWarmPoolGap: with a gap, the pool's sessions start one at a time, at least the gap
// apart, as the server records their start.
func TestWarmPoolGap(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	watch := pgtest.NewPool(t, url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	const app, gap = "warm-gap", 40 * time.Millisecond
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := WarmPool(ctx, pool, gap, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := watch.Query(ctx, `SELECT backend_start FROM pg_stat_activity WHERE application_name = $1 ORDER BY backend_start`, app)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != 4 {
		t.Fatalf("%d sessions started, want the pool's 4", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < gap {
			t.Errorf("sessions %d and %d started %s apart, want at least %s", i, i+1, d, gap)
		}
	}

	// A context that ends during a gap stops the warm-up, and leaves nothing acquired.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	other, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = WarmPool(short, other, time.Second, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WarmPool with a context ending in a gap: %v, want context.DeadlineExceeded", err)
	}
	if s := other.Stat(); s.AcquiredConns() != 0 {
		t.Errorf("WarmPool stopped with %d connections still acquired", s.AcquiredConns())
	}
}

func TestClosePool(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	watch := pgtest.NewPool(t, url)
	open := func(t *testing.T, app string) *pgxpool.Pool {
		t.Helper()
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 4
		cfg.ConnConfig.RuntimeParams["application_name"] = app
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := WarmPool(ctx, pool, 0, nil); err != nil {
			t.Fatal(err)
		}
		return pool
	}
	sessions := func(t *testing.T, app string) int {
		t.Helper()
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("sessions end one at a time", func(t *testing.T) {
		pool := open(t, "close-spaced")
		if n := sessions(t, "close-spaced"); n != 4 {
			t.Fatalf("%d sessions after warming, want 4", n)
		}
		done := make(chan struct{})
		// A gap wide enough for the polls below to see each count on a busy machine,
		// where one poll's query may take a good part of 100 ms.
		go func() { ClosePool(ctx, pool, 500*time.Millisecond); close(done) }()
		seen := map[int]bool{}
		for finished := false; !finished; {
			select {
			case <-done:
				finished = true
			case <-time.After(20 * time.Millisecond):
			}
			seen[sessions(t, "close-spaced")] = true
		}
		between := 0
		for n := range seen {
			if n > 0 && n < 4 {
				between++
			}
		}
		if between < 2 {
			t.Errorf("session counts seen while closing: %v; want them to fall one at a time", seen)
		}
		waitSessions(t, func() int { return sessions(t, "close-spaced") })
		if _, err := pool.Acquire(ctx); err == nil {
			t.Error("the pool still hands out connections after ClosePool")
		}
	})

	t.Run("an ended context closes the rest at once", func(t *testing.T) {
		pool := open(t, "close-cancelled")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ClosePool(cctx, pool, time.Hour) // would take hours if it waited
		waitSessions(t, func() int { return sessions(t, "close-cancelled") })
	})
}

// waitSessions waits until count reports no session (a closed session leaves
// pg_stat_activity when its server process has exited), or fails after a while.
func waitSessions(t *testing.T, count func() int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if count() == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%d sessions still open after the pool was closed", count())
}
