package main

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/internal/buildinfo"
	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/migrate"
)

func TestVersionCommand(t *testing.T) {
	want := buildinfo.Read().String()
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out := tandem(t, args...); code != cli.ExitOK || !strings.HasPrefix(out, "tandem "+want+"\n") {
			t.Errorf("tandem %s: exit %d, %q; want tandem %s", strings.Join(args, " "), code, out, want)
		}
	}
	code, out := tandem(t, "version", "--json")
	var info buildinfo.Info
	if err := json.Unmarshal([]byte(out), &info); code != cli.ExitOK || err != nil || info.Version == "" || info.GoVersion != runtime.Version() {
		t.Errorf("tandem version --json: exit %d, %+v (%v):\n%s", code, info, err, out)
	}
	if code, out := tandem(t, "version", "extra"); code != cli.ExitUsage {
		t.Errorf("tandem version extra: exit %d, %s; want %d", code, out, cli.ExitUsage)
	}
}

// TestBackfillFlagsAndStepVersions: the pacing flags refuse impossible values with their
// range; start and complete record the Tandem version that ran them, and status shows it.
func TestBackfillFlagsAndStepVersions(t *testing.T) {
	url := pgtest.NewOwnerDatabase(t)
	db := "--postgres-url=" + url
	dir := t.TempDir()
	create := writeFile(t, dir, "01.json", `{"operations": [{"create_table": {"name": "items", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "qty", "type": "int"}]}}]}`)
	add := writeFile(t, dir, "02.json", `{"operations": [{"add_column": {"table": "items", "up": "coalesce(qty, 0)", "column": {"name": "q2", "type": "int"}}}]}`)
	for _, s := range []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"start", add, db, "--backfill-impact=fast"}, cli.ExitUsage, `--backfill-impact: backfill impact "fast": want low, normal or max`},
		{[]string{"start", add, db, "--backfill-rate=-5"}, cli.ExitUsage, "--backfill-rate -5: want rows per second, 0 or more (0: no cap)"},
		{[]string{"migrate", filepath.Dir(create), db, "--backfill-impact=slow"}, cli.ExitUsage, "--backfill-impact"},
		{[]string{"start", create, db, "--complete"}, cli.ExitOK, "completed 01"},
		{[]string{"start", add, db, "--backfill-impact=low", "--backfill-rate=1000"}, cli.ExitOK, "started 02"},
		{[]string{"status", db}, cli.ExitOK, "[start by " + buildinfo.Read().String() + "]"},
		{[]string{"complete", db}, cli.ExitOK, "migration 02 completed"},
	} {
		code, out := tandem(t, s.args...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) {
			t.Fatalf("tandem %s: exit %d, output:\n%s\nwant exit %d and output containing %q", strings.Join(s.args, " "), code, out, s.wantCode, s.wantOut)
		}
	}
	code, out := tandem(t, "status", "--json", db)
	var st migrate.Status
	if err := json.Unmarshal([]byte(out), &st); code != cli.ExitOK || err != nil || len(st.History) != 2 {
		t.Fatalf("status --json: exit %d (%v):\n%s", code, err, out)
	}
	v := buildinfo.Read().String()
	for _, h := range st.History {
		if h.TandemVersions["start"] != v || h.TandemVersions["complete"] != v {
			t.Errorf("history entry %s: Tandem versions %v, want start and complete by %s", h.Name, h.TandemVersions, v)
		}
	}
}
