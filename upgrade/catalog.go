package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Catalog is the releases of one app, oldest first: what `plan` computes an upgrade
// path through when the target's compatible-from does not reach the running version.
type Catalog struct {
	// Releases are the app's releases, in ascending version order.
	Releases []*Release
	// Source is the directory or file the catalog was read from ("" when built).
	Source string
}

// CatalogFile is the name of a catalog file listing the releases of a directory.
const CatalogFile = "releases.yaml"

// ReadCatalog reads a release catalog: a catalog file (`releases:`, a list of release
// directories or tandem.yaml files, relative to the file), or a directory holding one
// (releases.yaml), or else a directory whose subdirectories each hold a tandem.yaml.
func ReadCatalog(path string) (*Catalog, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read release catalog: %w", err)
	}
	if st.IsDir() {
		file := filepath.Join(path, CatalogFile)
		if _, err := os.Stat(file); err == nil {
			return readCatalogFile(file)
		}
		return readCatalogDir(path)
	}
	return readCatalogFile(path)
}

func readCatalogFile(file string) (*Catalog, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read release catalog: %w", err)
	}
	var doc struct {
		Releases []string `yaml:"releases"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlError(file, err)
	}
	if len(doc.Releases) == 0 {
		return nil, &ReleaseError{File: file, Key: "releases", Msg: "missing or empty",
			Fix: "list the release directories (each with a tandem.yaml), relative to this file"}
	}
	var rels []*Release
	for _, r := range doc.Releases {
		p := r
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		rel, err := ReadRelease(p)
		if err != nil {
			return nil, fmt.Errorf("%s: releases: %s: %w", file, r, err)
		}
		rels = append(rels, rel)
	}
	return newCatalog(file, rels)
}

func readCatalogDir(dir string) (*Catalog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read release catalog: %w", err)
	}
	var rels []*Release
	for _, e := range entries {
		file := filepath.Join(dir, e.Name(), "tandem.yaml")
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			continue
		}
		rel, err := ReadRelease(file)
		if err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	if len(rels) == 0 {
		return nil, fmt.Errorf("release catalog %s: no subdirectory holds a tandem.yaml, and there is no %s (fix: point --catalog at the directory of the releases)", dir, CatalogFile)
	}
	return newCatalog(dir, rels)
}

// NewCatalog makes a catalog of rels: one app, each version once.
func NewCatalog(rels ...*Release) (*Catalog, error) { return newCatalog("", rels) }

func newCatalog(source string, rels []*Release) (*Catalog, error) {
	c := &Catalog{Source: source, Releases: slices.Clone(rels)}
	slices.SortStableFunc(c.Releases, func(a, b *Release) int { return CompareVersions(a.Version, b.Version) })
	where := source
	if where == "" {
		where = "release catalog"
	}
	for i, r := range c.Releases {
		if r.App != c.Releases[0].App {
			return nil, fmt.Errorf("%s: %s is of app %s, %s of app %s (fix: one catalog per app)",
				where, r.File, r.App, c.Releases[0].File, c.Releases[0].App)
		}
		if i > 0 && CompareVersions(r.Version, c.Releases[i-1].Version) == 0 {
			return nil, fmt.Errorf("%s: version %s twice, in %s and %s (fix: remove one)", where, r.Version, c.Releases[i-1].File, r.File)
		}
	}
	return c, nil
}

// Release returns the catalog's release of version v.
func (c *Catalog) Release(v string) (*Release, bool) {
	for _, r := range c.Releases {
		if CompareVersions(r.Version, v) == 0 {
			return r, true
		}
	}
	return nil, false
}

// Versions lists the catalog's versions, oldest first.
func (c *Catalog) Versions() []string {
	var vs []string
	for _, r := range c.Releases {
		vs = append(vs, r.Version)
	}
	return vs
}

// UnreachableError says why no zero-downtime path leads from a version to a target.
type UnreachableError struct {
	From, To string
	// Stuck is the version the path got to; Next the oldest release after it, whose
	// compatible-from is newer.
	Stuck string
	Next  *Release
}

func (e *UnreachableError) Error() string {
	if e.Next == nil {
		return fmt.Sprintf("no zero-downtime path from %s to %s", e.From, e.To)
	}
	return fmt.Sprintf("no zero-downtime path from %s to %s: no release up to %s may run beside %s (the next one, %s, is compatible from %s); "+
		"add the releases in between to the catalog, or run a maintenance-window upgrade with --allow-downtime",
		e.From, e.To, e.To, e.Stuck, e.Next.Version, e.Next.CompatibleFrom)
}

// Path returns the hops from version from to version to: as few as the releases'
// compatible-from allow (the required stops), each the newest release that may run
// beside the one before it. From "" (nothing installed) the path is the target alone;
// to a version not newer than from, too (the plan judges it). It returns an
// *UnreachableError when some release in between is missing.
func (c *Catalog) Path(from, to string) ([]*Release, error) {
	target, ok := c.Release(to)
	if !ok {
		return nil, fmt.Errorf("release %s is not in the catalog (it has %s)", to, strings.Join(c.Versions(), ", "))
	}
	if from == "" || CompareVersions(to, from) <= 0 {
		return []*Release{target}, nil
	}
	var hops []*Release
	cur := from
	for CompareVersions(cur, to) < 0 {
		var best, next *Release
		for _, r := range c.Releases {
			if CompareVersions(r.Version, cur) <= 0 || CompareVersions(r.Version, to) > 0 {
				continue
			}
			if next == nil {
				next = r
			}
			if CompareVersions(r.CompatibleFrom, cur) <= 0 {
				best = r
			}
		}
		if best == nil {
			return nil, &UnreachableError{From: from, To: to, Stuck: cur, Next: next}
		}
		hops = append(hops, best)
		cur = best.Version
	}
	return hops, nil
}
