package upgrade

import (
	"context"
	"fmt"
	"strings"
)

// stepPreflight checks again, at the start of the run, what plan checked: the window
// and the pending migrations. An upgrade resumed at this step re-plans; later steps do
// not, since their own changes would fail the checks.
func (u *Upgrader) stepPreflight(ctx context.Context, rec *Record) error {
	plan, err := u.plan(ctx, rec.Release, rec.Mode == ModeDowntime)
	if err != nil {
		return err
	}
	var problems []string
	for _, p := range plan.Problems {
		// The plan sees this very upgrade in progress; that is not a problem here.
		if plan.InProgress != nil && plan.InProgress.ID == rec.ID && strings.Contains(p, fmt.Sprintf("upgrade %d ", rec.ID)) {
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("preflight: %s", strings.Join(problems, "; "))
	}
	for _, b := range plan.Backfills {
		rows := fmt.Sprintf("~%d rows", b.Rows)
		if b.Rows < 0 {
			rows = "size unknown (never analyzed)"
		}
		u.event(ctx, rec, StepPreflight, fmt.Sprintf("expand will fill %s (%s), %s", b.Table, b.Operation, rows), 0)
	}
	return nil
}
