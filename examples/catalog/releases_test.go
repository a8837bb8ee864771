package catalog

import (
	"bytes"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
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
	Migrations     string `yaml:"migrations"`
	Schema         string `yaml:"schema"`
	Maintenance    string `yaml:"maintenance"`
	Workloads      []struct {
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

		// The migrations named parse, and extend the previous release's unchanged.
		dir := path.Join(v, rd.Migrations)
		migs, err := migrate.ReadDir(filepath.Join("releases", filepath.FromSlash(dir)))
		if err != nil {
			t.Fatalf("%s: migrations: %v", file, err)
		}
		entries, err := fs.ReadDir(ReleaseFiles, dir)
		if err != nil {
			t.Fatal(err)
		}
		cur := map[string][]byte{}
		for _, e := range entries {
			if cur[e.Name()], err = fs.ReadFile(ReleaseFiles, path.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		if len(migs) != len(cur) || len(cur) <= len(prev) {
			t.Errorf("%s: %d migrations of %d files; the previous release had %d", dir, len(migs), len(cur), len(prev))
		}
		for name, b := range prev {
			if !bytes.Equal(cur[name], b) {
				t.Errorf("%s/%s differs from the previous release's copy (or is missing): a release's directory must hold the earlier migrations unchanged", dir, name)
			}
		}
		prev = cur
	}
}
