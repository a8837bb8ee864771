package upgrade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/migrate"
)

const validRelease = `app: catalog
version: v2
compatible-from: v1
migrations: migrations
workloads:
  - name: api
    role: api
    order: 1
    local:
      instances: 2
      command: ["./app", "--listen", "{listen}", "--version-schema", "{version-schema}", "--app-version", "{app-version}"]
  - name: worker
    role: worker
    order: 0
    local:
      command: ["./app", "--listen", "{listen}", "--role", "worker", "--version-schema", "{version-schema}", "--app-version", "{app-version}"]
`

func writeRelease(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadRelease(t *testing.T) {
	path := writeRelease(t, validRelease+"backfill:\n  impact: low\n  rate: 5000\n")
	rel, err := ReadRelease(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if rel.Schema != "public" || rel.Maintenance != MaintenanceExpand || rel.Backend != "local" {
		t.Errorf("defaults: schema %q, maintenance %q, backend %q", rel.Schema, rel.Maintenance, rel.Backend)
	}
	if rel.Workloads[1].Local.Instances != 1 || rel.Timeouts.OldGone.Duration <= 0 || rel.Timeouts.Ready.Duration <= 0 {
		t.Errorf("defaults: %+v, %+v", rel.Workloads[1].Local, rel.Timeouts)
	}
	if rel.Backfill.Impact != migrate.ImpactLow || rel.Backfill.Rate != 5000 {
		t.Errorf("backfill %+v", rel.Backfill)
	}
	if got := rel.RollOrder(); got[0].Name != "worker" || got[1].Name != "api" {
		t.Errorf("roll order %s, %s: want worker (order 0) first", got[0].Name, got[1].Name)
	}
	if rel.MigrationsDir() != filepath.Join(filepath.Dir(path), "migrations") {
		t.Errorf("migrations dir %s", rel.MigrationsDir())
	}
}

// TestReleaseErrors checks that each mistake is named with the file, the key (and the
// line, where the key exists) and a fix.
func TestReleaseErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantKey string
		want    string
	}{
		{"no app", func(s string) string { return strings.Replace(s, "app: catalog\n", "", 1) }, "app", "missing"},
		{"no version", func(s string) string { return strings.Replace(s, "version: v2\n", "", 1) }, "version", "missing"},
		{"no window", func(s string) string { return strings.Replace(s, "compatible-from: v1\n", "", 1) }, "compatible-from", "missing"},
		{"migrations not found", func(s string) string { return strings.Replace(s, "migrations: migrations", "migrations: nowhere", 1) },
			"migrations", "not found"},
		{"bad role", func(s string) string { return strings.Replace(s, "role: api", "role: web", 1) }, "workloads[0].role", `"web" is not a role`},
		{"bad policy", func(s string) string { return s + "maintenance: always\n" }, "maintenance", "not a policy"},
		{"bad backend", func(s string) string { return s + "backend: nomad\n" }, "backend", "not a backend"},
		{"no command", func(s string) string {
			return strings.Replace(s, `      command: ["./app", "--listen", "{listen}", "--version-schema", "{version-schema}", "--app-version", "{app-version}"]`+"\n", "", 1)
		}, "workloads[0].local.command", "missing"},
		{"no listen", func(s string) string {
			return strings.Replace(s, `"--listen", "{listen}", "--version`, `"--version`, 1)
		},
			"workloads[0].local.command", "{listen}"},
		{"no version schema", func(s string) string { return strings.Replace(s, `"--version-schema", "{version-schema}", `, ``, 1) },
			"workloads[0].local.command", "{version-schema}"},
		{"bad name", func(s string) string { return strings.Replace(s, "name: api", "name: ../api", 1) }, "workloads[0].name", "not a workload name"},
		{"too many", func(s string) string { return strings.Replace(s, "instances: 2", "instances: 99", 1) }, "workloads[0].local.instances", "out of range"},
		{"window after version", func(s string) string { return strings.Replace(s, "compatible-from: v1", "compatible-from: v3", 1) },
			"compatible-from", "newer than"},
		{"twice", func(s string) string { return strings.Replace(s, "name: worker", "name: api", 1) }, "workloads[1].name", "listed twice"},
		{"unknown key", func(s string) string { return s + "compatible_from: v1\n" }, "", "compatible_from"},
		{"bad duration", func(s string) string { return s + "timeouts:\n  old-gone: soon\n" }, "", "not a duration"},
		{"negative min-ready", func(s string) string { return strings.Replace(s, "order: 1", "order: 1\n    min-ready: -1s", 1) },
			"workloads[0].min-ready", "must not be negative"},
		{"bad impact", func(s string) string { return s + "backfill:\n  impact: gentle\n" }, "", "want low, normal or max"},
		{"negative rate", func(s string) string { return s + "backfill:\n  rate: -5\n" }, "backfill", "must not be negative"},
		{"not yaml", func(s string) string { return s + "workloads: [\n" }, "", "not valid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRelease(t, tc.edit(validRelease))
			_, err := ReadRelease(path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path) {
				t.Errorf("%q does not start with the file", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("%q does not say %q", msg, tc.want)
			}
			re, ok := err.(*ReleaseError)
			if !ok {
				t.Fatalf("%T, want *ReleaseError", err)
			}
			if re.Key != tc.wantKey {
				t.Errorf("key %q, want %q", re.Key, tc.wantKey)
			}
			if re.Fix == "" {
				t.Errorf("%q gives no fix", msg)
			}
		})
	}
}

func TestReleaseErrorLine(t *testing.T) {
	path := writeRelease(t, strings.Replace(validRelease, "role: api", "role: web", 1))
	_, err := ReadRelease(path)
	if re, ok := err.(*ReleaseError); !ok || re.Line != 7 {
		t.Errorf("%v: want line 7", err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"v1", "v2", -1},
		{"v2", "v10", -1},
		{"v10", "v9", 1},
		{"1.9.0", "1.10.0", -1},
		{"v1.2", "1.2", 0},
		{"3.0.0", "3.0.0-rc1", -1},
		{"2024.01", "2024.1", 0},
		{"v2", "v2", 0},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestStepsOf(t *testing.T) {
	rel := &Release{Workloads: []Workload{{Name: "api", Order: 1}, {Name: "worker", Order: 2}}}
	tests := map[string]string{
		MaintenanceExpand:  "preflight maintenance-on expand maintenance-off roll/api roll/worker wait-old-gone contract done",
		MaintenanceUpgrade: "preflight maintenance-on expand roll/api roll/worker wait-old-gone contract maintenance-off done",
		MaintenanceOff:     "preflight expand roll/api roll/worker wait-old-gone contract done",
	}
	for policy, want := range tests {
		rel.Maintenance = policy
		if got := strings.Join(StepsOf(rel), " "); got != want {
			t.Errorf("%s: %s, want %s", policy, got, want)
		}
	}
}

const validKubeRelease = `app: catalog
version: v2
compatible-from: v1
migrations: migrations
backend: kube
workloads:
  - name: api
    role: api
    kube:
      namespace: shop
      container: catalog
      image: localhost/catalog:v2
  - name: worker
    role: worker
    kube:
      deployment: catalog-worker
      image: localhost/catalog:v2
`

func TestReadKubeRelease(t *testing.T) {
	rel, err := ReadRelease(writeRelease(t, validKubeRelease))
	if err != nil {
		t.Fatal(err)
	}
	api, worker := rel.Workloads[0].Kube, rel.Workloads[1].Kube
	if api.Deployment != "api" || api.Namespace != "shop" || api.Container != "catalog" || api.Image != "localhost/catalog:v2" {
		t.Errorf("api: %+v (the deployment defaults to the workload's name)", api)
	}
	if worker.Deployment != "catalog-worker" || worker.Namespace != "" {
		t.Errorf("worker: %+v", worker)
	}
	if rel.KubeManifestsDir(rel.Workloads[0]) != "" {
		t.Errorf("manifests dir %q without manifests", rel.KubeManifestsDir(rel.Workloads[0]))
	}
}

// TestKubeReleaseErrors checks each mistake in a kube section is named with its key and
// a fix.
func TestKubeReleaseErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantKey string
		want    string
	}{
		{"no kube section", func(s string) string {
			return strings.Replace(s, "    kube:\n      deployment: catalog-worker\n      image: localhost/catalog:v2\n", "", 1)
		}, "workloads[1].kube", "missing"},
		{"no image", func(s string) string { return strings.Replace(s, "      image: localhost/catalog:v2\n", "", 1) },
			"workloads[0].kube.image", "missing"},
		{"bad image", func(s string) string { return strings.Replace(s, "localhost/catalog:v2", `"localhost/catalog v2"`, 1) },
			"workloads[0].kube.image", "not an image reference"},
		{"bad deployment", func(s string) string {
			return strings.Replace(s, "deployment: catalog-worker", "deployment: Catalog_Worker", 1)
		},
			"workloads[1].kube.deployment", "not a Deployment name"},
		{"bad namespace", func(s string) string { return strings.Replace(s, "namespace: shop", "namespace: shop.eu", 1) },
			"workloads[0].kube.namespace", "not a namespace name"},
		{"bad container", func(s string) string { return strings.Replace(s, "container: catalog", "container: -catalog", 1) },
			"workloads[0].kube.container", "not a container name"},
		{"manifests not found", func(s string) string {
			return strings.Replace(s, "      image: localhost/catalog:v2\n", "      manifests: deploy\n", 1)
		}, "workloads[0].kube.manifests", "not found"},
		{"unknown key", func(s string) string { return strings.Replace(s, "namespace: shop", "namespaces: shop", 1) }, "", "namespaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRelease(t, tc.edit(validKubeRelease))
			_, err := ReadRelease(path)
			if err == nil {
				t.Fatal("accepted")
			}
			re, ok := err.(*ReleaseError)
			if !ok {
				t.Fatalf("%T, want *ReleaseError", err)
			}
			if re.Key != tc.wantKey || !strings.Contains(err.Error(), tc.want) || re.Fix == "" || !strings.HasPrefix(err.Error(), path) {
				t.Errorf("%q (key %q): want key %q, %q, a fix and the file", err, re.Key, tc.wantKey, tc.want)
			}
		})
	}
}
