package catalog

import (
	"bytes"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tandem-pg/tandem/migrate"
)

// releaseDescription is the part of tandem.yaml this test reads; package upgrade
// validates the whole of it.
type releaseDescription struct {
	App            string `yaml:"app"`
	Version        string `yaml:"version"`
	CompatibleFrom string `yaml:"compatible-from"`
	Streams        []struct {
		Name       string   `yaml:"name"`
		Kind       string   `yaml:"kind"`
		Dir        string   `yaml:"dir"`
		PreDeploy  string   `yaml:"pre-deploy"`
		PostDeploy string   `yaml:"post-deploy"`
		After      []string `yaml:"after"`
		PlainNames bool     `yaml:"plain-names"`
	} `yaml:"streams"`
	VersionSchema string `yaml:"version-schema"`
	Schema        string `yaml:"schema"`
	Maintenance   string `yaml:"maintenance"`
	Workloads     []struct {
		Name  string `yaml:"name"`
		Role  string `yaml:"role"`
		Order int    `yaml:"order"`
		Local struct {
			Instances int      `yaml:"instances"`
			Command   []string `yaml:"command"`
		} `yaml:"local"`
	} `yaml:"workloads"`
}

// TestReleaseFiles checks each release's tandem.yaml against its directory, and that a
// release's directory holds the previous release's migrations unchanged plus its own.
func TestReleaseFiles(t *testing.T) {
	dirs, err := fs.ReadDir(ReleaseFiles, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		names = append(names, d.Name())
	}
	if !slices.Equal(names, Releases) {
		t.Fatalf("release directories %v; want %v", names, Releases)
	}
	prev := map[string][]byte{} // the previous release's migration files
	for i, v := range Releases {
		if _, ok := releaseSQL[v]; !ok {
			t.Errorf("release %s has no SQL in releaseSQL", v)
		}
		file := path.Join(v, "tandem.yaml")
		data, err := fs.ReadFile(ReleaseFiles, file)
		if err != nil {
			t.Fatal(err)
		}
		var rd releaseDescription
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&rd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		from := slices.Index(Releases, rd.CompatibleFrom)
		if rd.App != App || rd.Version != v || from < 0 || from > i || rd.Schema != "public" || rd.Maintenance != "expand" {
			t.Errorf("%s: %+v", file, rd)
		}
		if len(rd.Workloads) == 0 {
			t.Errorf("%s: no workloads", file)
		}
		for j, w := range rd.Workloads {
			cmd := w.Local.Command
			flag := func(name string) string {
				if k := slices.Index(cmd, name); k >= 0 && k+1 < len(cmd) {
					return cmd[k+1]
				}
				return ""
			}
			if !slices.Contains(Roles, w.Role) || w.Order != j+1 || w.Local.Instances < 1 ||
				len(cmd) < 3 || cmd[0] != "{tandem}" || flag("--role") != w.Role || flag("--release") != v ||
				flag("--listen") != "{listen}" || flag("--version-schema") != "{version-schema}" {
				t.Errorf("%s: workload %d: %+v", file, j, w)
			}
		}

		// Each stream's files parse, and extend the previous release's unchanged; the
		// core stream (dir "migrations", as Setup and the tests read it) gains some in
		// every release.
		cur := map[string][]byte{}
		for _, st := range rd.Streams {
			for _, d := range []string{st.Dir, st.PreDeploy, st.PostDeploy} {
				if d == "" {
					continue
				}
				dir := path.Join(v, d)
				full := filepath.Join("releases", filepath.FromSlash(dir))
				if st.Kind == "sql" {
					if _, err := migrate.ReadSQLDir(full); err != nil {
						t.Fatalf("%s: stream %s: %v", file, st.Name, err)
					}
				} else if _, err := migrate.ReadDir(full); err != nil {
					t.Fatalf("%s: stream %s: %v", file, st.Name, err)
				}
				entries, err := fs.ReadDir(ReleaseFiles, dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if cur[path.Join(d, e.Name())], err = fs.ReadFile(ReleaseFiles, path.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		core := func(files map[string][]byte) int {
			n := 0
			for name := range files {
				if strings.HasPrefix(name, "migrations/") {
					n++
				}
			}
			return n
		}
		if core(cur) <= core(prev) || rd.Streams[0].Dir != "migrations" {
			t.Errorf("%s: the core stream (dir migrations) has %d files; the previous release had %d", file, core(cur), core(prev))
		}
		for name, b := range prev {
			if !bytes.Equal(cur[name], b) {
				t.Errorf("%s/%s differs from the previous release's copy (or is missing): a release's directory must hold the earlier migrations unchanged", v, name)
			}
		}
		prev = cur
	}
}
