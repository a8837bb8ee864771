package upgrade

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// stepWaitOldGone waits until no instance of the old version is left, on both
// signals: the registry shows no live instance of the app on another release or schema
// version, and the backend shows no instance of another revision, draining ones
// included. On timeout it names who is still there.
func (u *Upgrader) stepWaitOldGone(ctx context.Context, rec *Record) error {
	return u.waitOnly(ctx, rec, rec.To, rec.NewVersionSchema, rec.Release.Timeouts.OldGone.Duration)
}

// waitOnly waits until only release on versionSchema runs.
func (u *Upgrader) waitOnly(ctx context.Context, rec *Record, release, versionSchema string, timeout time.Duration) error {
	reg := u.registry(rec.Release)
	deadline := time.Now().Add(timeout)
	revision := Revision(release, versionSchema)
	var regGoneAt, backendGoneAt time.Time
	for {
		var others []string
		all, err := reg.Instances(ctx)
		if err != nil {
			return err
		}
		for _, in := range all {
			if in.App == rec.App && (in.AppVersion != release || in.SchemaVersion != versionSchema) {
				others = append(others, fmt.Sprintf("registry: %s %s on %s (id %s, %s, heartbeat %s ago)", in.App, in.AppVersion,
					in.SchemaVersion, in.ID, in.State, time.Since(in.HeartbeatAt).Round(time.Second)))
			}
		}
		if len(others) == 0 && regGoneAt.IsZero() {
			regGoneAt = time.Now()
			u.event(ctx, rec, rec.Step, "registry: no instance of another version is alive", 0)
		}
		nBackend := 0
		for _, w := range rec.Release.RollOrder() {
			ins, err := u.opts.Backend.Instances(ctx, u.target(rec, w))
			if err != nil {
				return err
			}
			for _, in := range ins {
				if in.Revision != revision {
					nBackend++
					s := fmt.Sprintf("%s: %s %s runs %s (%s)", u.opts.Backend.Name(), w.Name, in.Name, in.Release, in.State)
					if in.Reason != "" {
						s += ": " + in.Reason
					}
					others = append(others, s)
				}
			}
		}
		if nBackend == 0 && backendGoneAt.IsZero() {
			backendGoneAt = time.Now()
			u.event(ctx, rec, rec.Step, u.opts.Backend.Name()+": no instance of another revision is left, draining ones included", 0)
		}
		if len(others) == 0 {
			return nil
		}
		u.progress(rec.Step, fmt.Sprintf("waiting for %d old instance(s): %s", len(others), strings.Join(others, "; ")))
		if time.Now().After(deadline) {
			return fmt.Errorf("the old version is still there after %s: %s (raise timeouts.old-gone, or see why they do not stop)",
				timeout, strings.Join(others, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(u.opts.PollInterval):
		}
	}
}
