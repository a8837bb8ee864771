package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tandem-pg/tandem/lifecycle"
)

// stepRoll rolls one workload to the release through the backend: new instance first,
// ready and registered with the new schema version, then an old one stops and drains.
// What the workload ran before is recorded once, before the first change, so that
// abort can go back to it even after a crash in the middle of the roll.
func (u *Upgrader) stepRoll(ctx context.Context, rec *Record, name string) error {
	w, ok := rec.Release.workload(name)
	if !ok {
		return fmt.Errorf("release %s has no workload %q", rec.To, name)
	}
	t := u.target(rec, w)
	if err := u.snapshotOnce(ctx, rec, t); err != nil {
		return err
	}
	began := time.Now()
	err := u.opts.Backend.Roll(ctx, t, u.registeredGate(rec.Release, rec.To, rec.NewVersionSchema), func(line string) {
		u.progress(rec.Step, line)
	})
	if err != nil {
		return fmt.Errorf("roll workload %s to %s: %w", name, rec.To, err)
	}
	u.event(ctx, rec, rec.Step, fmt.Sprintf("workload %s runs %s (roll took %s; old instances drain)", name, rec.To,
		time.Since(began).Round(time.Millisecond)), 0)
	return nil
}

// snapshotOnce records what t's workload runs now, before the upgrade's first change to
// it, so that abort can go back to it even after a crash in the middle of that change.
func (u *Upgrader) snapshotOnce(ctx context.Context, rec *Record, t Target) error {
	name := t.Workload.Name
	if _, ok := rec.Snapshots[name]; ok {
		return nil
	}
	snap, err := u.opts.Backend.Snapshot(ctx, t)
	if err != nil {
		return fmt.Errorf("record what workload %s runs now: %w", name, err)
	}
	if rec.Snapshots == nil {
		rec.Snapshots = map[string]json.RawMessage{}
	}
	rec.Snapshots[name] = snap
	return u.st.save(ctx, u.pool, rec)
}

func (r *Release) workload(name string) (Workload, bool) {
	for _, w := range r.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// registeredGate accepts a new instance once the registry shows it, by host and pid,
// with the release and the schema version it must run.
func (u *Upgrader) registeredGate(rel *Release, release, versionSchema string) ReadyGate {
	reg, app := u.registry(rel), rel.App
	return func(ctx context.Context, in Instance) (bool, string, error) {
		all, err := reg.Instances(ctx)
		if err != nil {
			return false, "", err
		}
		for _, r := range all {
			if r.App != app || r.Host != in.Host || (in.PID > 0 && r.PID != in.PID) {
				continue
			}
			if r.AppVersion != release || r.SchemaVersion != versionSchema {
				return false, "", fmt.Errorf("instance %s registered as %s on schema version %s, but the release is %s on %s: "+
					"check the workload's command passes {app-version} and {version-schema}", in.Name, r.AppVersion, r.SchemaVersion, release, versionSchema)
			}
			if r.State != lifecycle.StateReady {
				return false, "registered, state " + string(r.State), nil
			}
			return true, "", nil
		}
		return false, fmt.Sprintf("not in the registry yet (host %s, pid %d)", in.Host, in.PID), nil
	}
}
