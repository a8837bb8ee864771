package upgrade

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func rel(version, compatibleFrom string) *Release {
	return &Release{App: "catalog", Version: version, CompatibleFrom: compatibleFrom, File: version + "/tandem.yaml"}
}

func TestCatalogPath(t *testing.T) {
	cat, err := NewCatalog(rel("v3", "v2"), rel("v1", "v1"), rel("v2", "v1"), rel("v4", "v2"), rel("v5", "v5"), rel("v10", "v5"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cat.Versions(), " "); got != "v1 v2 v3 v4 v5 v10" {
		t.Errorf("versions %s, want ascending", got)
	}
	tests := []struct {
		from, to string
		want     string // hops, or the error's text
	}{
		{"", "v3", "v3"},      // first install: the target alone
		{"v1", "v2", "v2"},    // within the window
		{"v1", "v3", "v2 v3"}, // v3 needs v2: one required stop
		{"v1", "v4", "v2 v4"}, // v4 beside v2: v3 is skipped
		{"v2", "v4", "v4"},    // the newest release the running one allows
		{"v3", "v3", "v3"},    // the same release again
		{"v4", "v2", "v2"},    // back: the plan judges it
		{"v1", "v5", "no zero-downtime path from v1 to v5: no release up to v5 may run beside v4 (the next one, v5, is compatible from v5)"},
		{"v5", "v10", "v10"}, // v10 > v5 as numbers
		{"v1", "v9", "release v9 is not in the catalog"},
	}
	for _, tc := range tests {
		t.Run(tc.from+"-"+tc.to, func(t *testing.T) {
			hops, err := cat.Path(tc.from, tc.to)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q, want %q", err, tc.want)
				}
				return
			}
			var got []string
			for _, h := range hops {
				got = append(got, h.Version)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("path %v, want %s", got, tc.want)
			}
		})
	}
	var ue *UnreachableError
	if _, err := cat.Path("v1", "v5"); !errors.As(err, &ue) || ue.Stuck != "v4" || ue.Next.Version != "v5" {
		t.Errorf("unreachable: %v, want an *UnreachableError stuck at v4", err)
	}
}

func TestNewCatalogErrors(t *testing.T) {
	other := rel("v2", "v1")
	other.App = "shop"
	for _, tc := range []struct {
		rels []*Release
		want string
	}{
		{[]*Release{rel("v1", "v1"), rel("v1", "v1")}, "version v1 twice"},
		{[]*Release{rel("v1", "v1"), other}, "one catalog per app"},
	} {
		if _, err := NewCatalog(tc.rels...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCatalog: %v, want %q", err, tc.want)
		}
	}
}

func TestReadCatalog(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		body := strings.NewReplacer("version: v2", "version: "+v, "compatible-from: v1", "compatible-from: v1").Replace(validRelease)
		if err := os.MkdirAll(filepath.Join(dir, v, "migrations"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v, "tandem.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a release"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := ReadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cat.Versions(), []string{"v1", "v2"}) {
		t.Errorf("directory catalog: %v", cat.Versions())
	}

	// A catalog file lists its releases; it wins over the subdirectories.
	file := filepath.Join(dir, CatalogFile)
	if err := os.WriteFile(file, []byte("releases: [v2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cat, err = ReadCatalog(dir); err != nil || !slices.Equal(cat.Versions(), []string{"v2"}) {
		t.Errorf("catalog file: %v, %v", cat, err)
	}
	for body, want := range map[string]string{
		"releases: []\n":       "releases.yaml: releases: missing or empty",
		"releases: [v7]\n":     "releases.yaml: releases: v7",
		"release: [v1]\n":      "releases.yaml:1",
		"releases: [v1, v1]\n": "version v1 twice",
	} {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadCatalog(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, err := ReadCatalog(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no subdirectory holds a tandem.yaml") {
		t.Errorf("empty directory: %v", err)
	}
}

func TestStepsOfModes(t *testing.T) {
	r := &Release{Maintenance: MaintenanceExpand, Contract: ContractNow,
		Workloads: []Workload{{Name: "api", Order: 1}, {Name: "worker", Order: 2}}}
	deferred := *r
	deferred.Contract = ContractDeferred
	tests := []struct {
		name          string
		rel           *Release
		mode          string
		completeFirst bool
		want          string
	}{
		{"rolling", r, ModeRolling, false, "preflight maintenance-on expand maintenance-off roll/api roll/worker wait-old-gone contract done"},
		{"deferred", &deferred, ModeRolling, false, "preflight maintenance-on expand maintenance-off roll/api roll/worker wait-old-gone done"},
		{"after a deferred one", r, ModeRolling, true, "preflight complete-deferred maintenance-on expand maintenance-off roll/api roll/worker wait-old-gone contract done"},
		{"rollback", r, ModeRollback, false, "preflight roll/api roll/worker wait-old-gone done"},
		{"downtime", &deferred, ModeDowntime, true, "preflight stop/worker stop/api wait-old-gone complete-deferred expand contract start/api start/worker done"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(stepsFor(tc.rel, tc.mode, tc.completeFirst), " "); got != tc.want {
				t.Errorf("steps\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	rec := &Record{Release: &deferred, Step: StepWaitOldGone}
	if rec.contractBegun() {
		t.Error("a deferred upgrade at wait-old-gone: contract begun, want not (abort must stay possible)")
	}
	rec = &Record{Release: r, Step: StepContract}
	if !rec.contractBegun() {
		t.Error("at contract: want contract begun")
	}
}
