package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/upgrade"
)

// TestUpgradePathCLI plans v1 -> v3 through the catalog (two hops), without it (refused,
// with the reason) and with --allow-downtime (a maintenance window, with its expected
// downtime).
func TestUpgradePathCLI(t *testing.T) {
	e := newCLIEnv(t)
	if code, out := e.tandem("upgrade", "apply", e.release("v1")); code != 0 {
		t.Fatalf("install v1: exit %d\n%s", code, out)
	}
	cat := filepath.Join(e.dir, "releases")
	code, out := e.tandem("upgrade", "plan", "--catalog", cat, "v3")
	if code != 0 || !strings.Contains(out, "path to v3: v1 -> v2 -> v3 (2 hops") || !strings.Contains(out, "hop 2: v3 (compatible from v2") {
		t.Errorf("plan --catalog v3: exit %d, want the two hops\n%s", code, out)
	}
	code, out = e.tandem("upgrade", "plan", "--catalog", cat, "v3", "--json")
	var pp upgrade.PathPlan
	if err := json.Unmarshal([]byte(out), &pp); code != 0 || err != nil || len(pp.Hops) != 2 || pp.Target != "v3" || !pp.Possible {
		t.Errorf("plan --catalog v3 --json: exit %d (%v)\n%s", code, err, out)
	}
	if code, out := e.tandem("upgrade", "plan", e.release("v3")); code != 1 || !strings.Contains(out, "no zero-downtime path from v1 to v3") ||
		!strings.Contains(out, "--allow-downtime") {
		t.Errorf("plan v3 alone: exit %d, want 1 with the reason and the way out\n%s", code, out)
	}
	if code, out := e.tandem("upgrade", "plan", "--allow-downtime", e.release("v3")); code != 0 || !strings.Contains(out, "MAINTENANCE WINDOW") ||
		!strings.Contains(out, "expected downtime: ~") {
		t.Errorf("plan --allow-downtime v3: exit %d\n%s", code, out)
	}
	if code, out := e.tandem("upgrade", "plan", "--catalog", cat, "v9"); code != 2 || !strings.Contains(out, "v1, v2, v3") {
		t.Errorf("plan --catalog v9: exit %d, want 2 naming the catalog's versions\n%s", code, out)
	}
}

// TestUpgradePathKill9 kills `tandem upgrade apply --catalog releases v3` (two hops) with
// SIGKILL between the hops and inside the second one, each moment seen in the recorded
// state, then finishes the path with `tandem upgrade resume`. (A kill inside a single
// upgrade is TestUpgradeKill9's.)
func TestUpgradePathKill9(t *testing.T) {
	for _, tc := range []struct {
		name string
		when string // the kill comes once this query returns true
	}{
		{"hop-1-done", `SELECT count(*) FILTER (WHERE status = 'done') = 1 FROM tandem.upgrades WHERE path_id > 0`},
		{"hop-2-roll", `SELECT count(*) = 2 AND bool_or(to_version = 'v3' AND step = 'roll/api') FROM tandem.upgrades WHERE path_id > 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t)
			if code, out := e.tandem("upgrade", "apply", e.release("v1")); code != 0 {
				t.Fatalf("install v1: exit %d\n%s", code, out)
			}
			ctx := context.Background()
			pool := pgtest.NewPool(t, e.url)
			c := e.cmd("upgrade", "apply", "--catalog", filepath.Join(e.dir, "releases"), "v3")
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				var now bool
				_ = pool.QueryRow(ctx, tc.when).Scan(&now)
				if now {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the moment to kill at never came (%s); the output:\n%s", tc.when, out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			_ = c.Process.Signal(syscall.SIGKILL)
			_ = c.Wait()
			var where string
			_ = pool.QueryRow(ctx, `SELECT coalesce(string_agg(to_version || ':' || status || '@' || step, ', ' ORDER BY id), '')
				FROM tandem.upgrades WHERE path_id > 0`).Scan(&where)
			t.Logf("killed at %s; the path's upgrades: %s; its output:\n%s", tc.name, where, out.String())

			code, rout := e.tandem("upgrade", "resume", "--app", "catalog")
			if code != 0 {
				t.Fatalf("resume: exit %d\n%s", code, rout)
			}
			code, sout := e.tandem("upgrade", "status", "--app", "catalog", "--json")
			var rep upgrade.StatusReport
			if code != 0 || json.Unmarshal([]byte(sout), &rep) != nil || rep.Upgrade.To != "v3" || rep.Upgrade.Status != upgrade.StatusDone ||
				rep.Path == nil || rep.Path.Status != upgrade.StatusDone || len(rep.Path.Upgrades) != 2 {
				t.Fatalf("status after resume: exit %d\n%s", code, sout)
			}
			if got := e.servedBy(); got != "v3" {
				t.Errorf("served by %q after resume, want v3", got)
			}
		})
	}
}
