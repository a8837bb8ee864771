package lifecycle

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

const workerHelperEnv = "LIFECYCLE_TEST_WORKER_URL"

// workerHelper is the worker process of TestWorkerDrain: it runs a Worker over the
// table tasks until SIGTERM, announcing each task it takes on stdout.
func workerHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(context.Background(), os.Getenv(workerHelperEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	grace, _ := time.ParseDuration(os.Getenv("LIFECYCLE_TEST_WORKER_GRACE"))
	w := &Worker{Grace: grace, Idle: 20 * time.Millisecond}
	err = w.Run(ctx, func(ctx context.Context) (bool, error) {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var id int
			var ms int
			err := tx.QueryRow(ctx, `SELECT id, work_ms FROM tasks WHERE done_by IS NULL
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&id, &ms)
			if err != nil {
				return err
			}
			fmt.Printf("took %d\n", id)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			_, err = tx.Exec(ctx, `UPDATE tasks SET done_by = $2 WHERE id = $1`, id, os.Getpid())
			return err
		}) == nil, nil
	})
	if err != nil {
		return 1
	}
	fmt.Println("exited")
	return 0
}

// TestWorkerDrain kills a worker process with SIGTERM in the middle of a task: the task
// is finished within the grace period, or returned to the queue; none is lost, and no
// new task is taken after the signal.
func TestWorkerDrain(t *testing.T) {
	tests := []struct {
		name     string
		grace    time.Duration
		workMS   int
		wantDone bool // the task running at SIGTERM is finished (else it is returned)
	}{
		{"finishes the running task within the grace period", 30 * time.Second, 1500, true},
		{"returns the task when the grace period ends", 300 * time.Millisecond, 60_000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url := pgtest.NewDatabase(t)
			pool := pgtest.NewPool(t, url)
			if _, err := pool.Exec(ctx, `CREATE TABLE tasks (id int PRIMARY KEY, work_ms int NOT NULL, done_by int)`); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO tasks SELECT g, $1 FROM generate_series(1, 3) g`, tc.workMS); err != nil {
				t.Fatal(err)
			}

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), workerHelperEnv+"="+url, "LIFECYCLE_TEST_WORKER_GRACE="+tc.grace.String())
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			lines := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			select {
			case l := <-lines:
				if l != "took 1" {
					t.Fatalf("worker said %q, want \"took 1\"", l)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("worker took no task")
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var said []string
			for l := range lines {
				said = append(said, l)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("worker exited with %v", err)
			}
			if len(said) != 1 || said[0] != "exited" {
				t.Fatalf("after SIGTERM the worker said %q; want only \"exited\" (no new task)", strings.Join(said, "; "))
			}

			// Every task is either done by the worker or back in the queue, claimable.
			var done int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE done_by IS NOT NULL`).Scan(&done); err != nil {
				t.Fatal(err)
			}
			wantDone := 0
			if tc.wantDone {
				wantDone = 1
			}
			if done != wantDone {
				t.Fatalf("%d tasks done, want %d", done, wantDone)
			}
			var claimable int
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT id FROM tasks WHERE done_by IS NULL
					FOR UPDATE SKIP LOCKED) t`).Scan(&claimable)
			}); err != nil {
				t.Fatal(err)
			}
			if claimable != 3-wantDone {
				t.Fatalf("%d tasks claimable, want %d: a task was lost", claimable, 3-wantDone)
			}
		})
	}
}
