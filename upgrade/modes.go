package upgrade

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Modes of an upgrade (Record.Mode, Plan.Mode).
const (
	// ModeRolling is the zero-downtime upgrade: expand, roll, wait, contract.
	ModeRolling = "rolling"
	// ModeDowntime is a maintenance-window upgrade, for a release the running version
	// cannot run beside: stop the old instances, migrate and complete, start the new ones.
	ModeDowntime = "downtime"
	// ModeRollback rolls the app back to the release before a deferred contract, on its
	// own schema version, which that contract keeps: no database change.
	ModeRollback = "rollback"
)

// Contract policies of a release (Release.Contract).
const (
	ContractNow      = "now"      // contract at the end of the upgrade (the default)
	ContractDeferred = "deferred" // contract at the start of the next upgrade
)

// Steps of the other modes. A stop step is "stop/<workload>", a start step
// "start/<workload>".
const (
	StepCompleteDeferred = "complete-deferred"
	StepStopPrefix       = "stop/"
	StepStartPrefix      = "start/"
)

// Steps returns the steps of the upgrade, in order.
func (r *Record) Steps() []string {
	return stepsFor(r.Release, r.Mode, r.PendingContract != nil)
}

// stepsFor returns the steps of an upgrade to rel in mode; completeFirst adds the step
// that completes an earlier release's deferred contract.
func stepsFor(rel *Release, mode string, completeFirst bool) []string {
	steps := []string{StepPreflight}
	switch mode {
	case ModeRollback:
		for _, w := range rel.RollOrder() {
			steps = append(steps, StepRollPrefix+w.Name)
		}
		return append(steps, StepWaitOldGone, StepDone)
	case ModeDowntime:
		// Nothing runs while the schema changes, so maintenance mode has no one to hold
		// back, and the contract is never deferred.
		order := rel.RollOrder()
		slices.Reverse(order)
		for _, w := range order {
			steps = append(steps, StepStopPrefix+w.Name)
		}
		steps = append(steps, StepWaitOldGone)
		if completeFirst {
			steps = append(steps, StepCompleteDeferred)
		}
		steps = append(steps, StepExpand, StepContract)
		for _, w := range rel.RollOrder() {
			steps = append(steps, StepStartPrefix+w.Name)
		}
		return append(steps, StepDone)
	}
	if completeFirst {
		steps = append(steps, StepCompleteDeferred)
	}
	if rel.Maintenance != MaintenanceOff {
		steps = append(steps, StepMaintenanceOn)
	}
	steps = append(steps, StepExpand)
	if rel.Maintenance == MaintenanceExpand {
		steps = append(steps, StepMaintenanceOff)
	}
	for _, w := range rel.RollOrder() {
		steps = append(steps, StepRollPrefix+w.Name)
	}
	steps = append(steps, StepWaitOldGone)
	if rel.Contract != ContractDeferred {
		steps = append(steps, StepContract)
	}
	if rel.Maintenance == MaintenanceUpgrade {
		steps = append(steps, StepMaintenanceOff)
	}
	return append(steps, StepDone)
}

// contractBegun reports whether the upgrade's own contract has begun, after which the
// old version's schema may be gone and abort is refused.
func (r *Record) contractBegun() bool {
	steps := r.Steps()
	c := slices.Index(steps, StepContract)
	return c >= 0 && slices.Index(steps, r.Step) >= c
}

// runModeStep runs the steps of the other modes.
func (u *Upgrader) runModeStep(ctx context.Context, rec *Record, step string) error {
	switch {
	case step == StepCompleteDeferred:
		return u.stepCompleteDeferred(ctx, rec)
	case strings.HasPrefix(step, StepStopPrefix):
		return u.stepStop(ctx, rec, strings.TrimPrefix(step, StepStopPrefix))
	case strings.HasPrefix(step, StepStartPrefix):
		// Starting the new release's instances is a roll with nothing left to replace.
		return u.stepRoll(ctx, rec, strings.TrimPrefix(step, StepStartPrefix))
	}
	return fmt.Errorf("unknown step %q", step)
}
