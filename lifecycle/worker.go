package lifecycle

import (
	"context"
	"log/slog"
	"time"
)

// Gate is what a Worker asks before taking a task. *Maintenance is a Gate: it blocks
// while maintenance mode is on.
type Gate interface {
	Wait(ctx context.Context) error
}

// TakeFunc takes one task and runs it to the end under ctx. It reports whether there
// was a task to take. It should take and finish the task in one transaction (claim the
// row with SELECT ... FOR UPDATE SKIP LOCKED, work, mark it done, commit) so that a task
// whose ctx ends before the commit goes back to the queue when the transaction rolls back.
type TakeFunc func(ctx context.Context) (took bool, err error)

// Worker runs a task loop that drains cleanly: once its context is cancelled (SIGTERM)
// it takes no new task, lets the running one finish for up to Grace, then cancels it,
// which returns the task to the queue.
type Worker struct {
	// Gate, when set, is waited on before each task.
	Gate Gate
	// Grace is how long the running task may go on after the worker is told to stop;
	// 0 means 20s.
	Grace time.Duration
	// Idle is how long to wait after finding the queue empty or failing; 0 means 1s.
	Idle time.Duration
	// Wake, when set, ends an idle wait early (a LISTEN/NOTIFY on new tasks, say).
	Wake <-chan struct{}
	// Logger receives task errors and the drain; nil means slog.Default().
	Logger *slog.Logger
}

// Run calls take in a loop until ctx is cancelled, then drains as described on Worker.
// It returns nil once the loop has stopped.
func (w *Worker) Run(ctx context.Context, take TakeFunc) error {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	grace, idle := w.Grace, w.Idle
	if grace <= 0 {
		grace = 20 * time.Second
	}
	if idle <= 0 {
		idle = time.Second
	}
	// Tasks run under taskCtx: it outlives ctx by the grace period.
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	stopGrace := context.AfterFunc(ctx, func() {
		log.Info("worker draining: no new tasks", "grace", grace)
		time.AfterFunc(grace, cancelTasks)
	})
	defer stopGrace()

	for ctx.Err() == nil {
		if w.Gate != nil {
			if err := w.Gate.Wait(ctx); err != nil {
				break
			}
		}
		took, err := take(taskCtx)
		if err != nil {
			if taskCtx.Err() != nil {
				log.Warn("worker: task cancelled at the end of the grace period; it returns to the queue", "err", err)
				break
			}
			log.Warn("worker: task failed", "err", err)
		}
		if took && err == nil {
			continue
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-w.Wake:
		}
		t.Stop()
	}
	log.Info("worker stopped")
	return nil
}
