package upgrade

import (
	"context"
	"fmt"

	"github.com/tandem-pg/tandem/lifecycle"
)

// stepMaintenance turns maintenance mode on or off. Workers gated by it finish their
// current task and take no new one while it is on; serving continues.
func (u *Upgrader) stepMaintenance(ctx context.Context, rec *Record, on bool) error {
	reason := ""
	if on {
		reason = fmt.Sprintf("tandem upgrade %d of %s to %s", rec.ID, rec.App, rec.To)
	}
	if _, err := lifecycle.SetMaintenance(ctx, u.pool, u.opts.StateSchema, on, reason); err != nil {
		return err
	}
	state := "off"
	if on {
		state = "on"
	}
	u.event(ctx, rec, rec.Step, "maintenance mode "+state, 0)
	return nil
}
