package migrate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestBackfillThrottleHoldsBackForALaggingReplica runs a backfill with a real streaming
// standby of the test server whose replay is paused: the backfill's WAL piles up, the
// replay lag pg_stat_replication shows grows past the impact's mark, and the throttle
// holds back for it; once replay resumes and the standby catches up, the throttle comes
// back to full speed and the backfill finishes.
func TestBackfillThrottleHoldsBackForALaggingReplica(t *testing.T) {
	defer func(calm, recovery time.Duration) { throttleCalm, throttleRecovery = calm, recovery }(throttleCalm, throttleRecovery)
	throttleCalm, throttleRecovery = 200*time.Millisecond, 500*time.Millisecond

	ctx := context.Background()
	// The standby reports its replay position every second, idle or not.
	standby, err := pgx.Connect(ctx, pgtest.Standby(t, map[string]string{"wal_receiver_status_interval": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close(ctx)

	const rows = 20000
	var mu sync.Mutex
	var reports []BackfillProgress
	e := newEnv(t, func(o *Options) {
		o.BackfillImpact = ImpactLow // holds back from a replay lag of 1s
		o.BackfillRate = rows / 3    // at least 3s of backfill
		o.Progress = func(p BackfillProgress) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, p)
		}
	})
	// pg_stat_replication shows the lag to superusers and pg_read_all_stats only.
	admin, err := pgx.Connect(ctx, pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := queryString(t, e.db, "SELECT current_user")
	if _, err := admin.Exec(ctx, "GRANT pg_read_all_stats TO "+qi(role)); err != nil {
		t.Fatal(err)
	}
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, pad text)")
	e.exec(fmt.Sprintf("INSERT INTO items SELECT i, i, repeat('x', 100) FROM generate_series(1, %d) i", rows))
	e.exec("ANALYZE items")
	if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := standby.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer resume()

	startErr := make(chan error, 1)
	go func() {
		startErr <- e.m.Start(ctx, e.parse(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "q2", "type": "int"}}}]}`))
	}()
	// waitFor polls the reports from index from on until one meets cond, and returns its
	// index, or fails the test.
	waitFor := func(what string, from int, cond func(p BackfillProgress) bool) int {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			for i := from; i < len(reports); i++ {
				if p := reports[i]; cond(p) {
					mu.Unlock()
					return i
				}
			}
			mu.Unlock()
			select {
			case err := <-startErr:
				t.Fatalf("start ended (%v) before %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	held := waitFor("the throttle to hold back for the replica", 0, func(p BackfillProgress) bool {
		return p.Throttle != nil && p.Throttle.HoldingBack && strings.Contains(p.Throttle.Reason, "replicas replay")
	})
	mu.Lock()
	reason := reports[held].Throttle.Reason
	mu.Unlock()
	t.Logf("held back: %s", reason)

	// Replay resumes: the standby catches up, and the backfill speeds up again.
	resume()
	for deadline := time.Now().Add(30 * time.Second); queryString(t, admin, "SELECT coalesce(max(replay_lag) >= interval '1s', false)::text FROM pg_stat_replication") == "true"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not catch up")
		}
	}
	waitFor("the throttle to stop holding back", held, func(p BackfillProgress) bool {
		return p.Throttle != nil && !p.Throttle.HoldingBack && !p.Done
	})
	if err := <-startErr; err != nil {
		t.Fatalf("start: %v", err)
	}
	expectString(t, e.version("02"), "SELECT count(*)::text FROM items WHERE q2 = qty * 2", fmt.Sprint(rows))
}
