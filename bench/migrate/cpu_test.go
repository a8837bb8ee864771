package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRoleOfTitle(t *testing.T) {
	for _, tc := range []struct {
		title string
		want  role
	}{
		{"postgres: autovacuum worker bench_3\x00", roleAutovacuum},
		{"postgres: autovacuum launcher \x00", roleBackground},
		{"postgres: checkpointer ", roleBackground},
		{"postgres: background writer ", roleBackground},
		{"postgres: walwriter ", roleBackground},
		{"postgres: logical replication launcher ", roleBackground},
		{"postgres: postgres bench_3 127.0.0.1(53414) idle", roleTandem},
		{"postgres: parallel worker for PID 1234 ", roleTandem},
		{"", roleTandem}, // a process that exited before its title was read
	} {
		if got := roleOfTitle(tc.title); got != tc.want {
			t.Errorf("roleOfTitle(%q) = %s, want %s", tc.title, roleNames[got], roleNames[tc.want])
		}
	}
}

func TestParseCPULine(t *testing.T) {
	for _, tc := range []struct {
		line       string
		busy, idle time.Duration
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 20 30 400 5 0 6 1 0 0", 157 * clockTick, 405 * clockTick},
		{"cpu  1 2 3 4", 6 * clockTick, 4 * clockTick},
		{"cpu0 1 2 3 4 5", 0, 0}, // not the machine's line
		{"", 0, 0},
	} {
		busy, idle := parseCPULine(tc.line)
		if busy != tc.busy || idle != tc.idle {
			t.Errorf("parseCPULine(%q) = %s, %s; want %s, %s", tc.line, busy, idle, tc.busy, tc.idle)
		}
	}
}

// TestCPUAccountSplitsRoles runs work on a pool's connections (the load) and on a
// connection made and closed within the window (counted as Tandem's), on a real server,
// and checks each role's CPU time.
func TestCPUAccountSplitsRoles(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.NewPool(t, url)
	pids, err := backendPIDs(ctx, pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := startCPUAccount(pids)
	if err != nil {
		t.Skipf("no CPU account of this server (not a local one?): %v", err)
	}
	const work = "SELECT count(*) FROM generate_series(1, 2000000)"
	// The load does twice the work of the other session, on two connections at once.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := pool.Exec(ctx, work); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, work); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * cpuSample) // a sample sees its work before it exits
	other.Close(ctx)
	u := acct.stop()

	if u.role[roleLoad] <= u.role[roleTandem] || u.role[roleTandem] <= 0 {
		t.Errorf("load backends %s, other sessions %s: want both > 0, the load's the larger (twice the work)", u.role[roleLoad], u.role[roleTandem])
	}
	if u.role[roleBench] <= 0 {
		t.Errorf("bench process %s, want > 0", u.role[roleBench])
	}
	var sum time.Duration
	for r := range nRoles {
		sum += u.role[r]
	}
	// The roles, the rest of the machine and its idle time cover its capacity (the
	// machine's counters tick at 10ms; the server's processes are read to the ns).
	if capacity := u.wall * time.Duration(u.cpus); sum < capacity*3/4 || sum > capacity*5/4 {
		t.Errorf("roles sum to %s over %s on %d CPUs (%s), want about that", sum, u.wall, u.cpus, capacity)
	}
}
