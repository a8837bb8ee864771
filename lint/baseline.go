package lint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// fingerprint identifies a finding independently of its line: the rule, the table and
// the statement's words (its text with whitespace collapsed, see collapseSpace). Editing
// lines above a statement keeps it; changing the statement does not.
func fingerprint(rule, table, words string) string {
	var buf [512]byte // most statements fit: no allocation
	b := append(buf[:0], rule...)
	b = append(append(append(append(b, 0), table...), 0), words...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// BaselineEntry is one accepted finding.
type BaselineEntry struct {
	Rule        string `json:"rule"`
	File        string `json:"file"`
	Fingerprint string `json:"fingerprint"`
	// Line and Statement are for people reading the file; matching ignores them.
	Line      int    `json:"line"`
	Statement string `json:"statement"`
}

// Baseline records the findings a team accepts today, so that a run fails only on new
// ones. A finding matches an entry with the same rule, file and fingerprint; each entry
// matches one finding.
type Baseline struct {
	Version  int             `json:"version"`
	Findings []BaselineEntry `json:"findings"`
}

const baselineVersion = 1

// NewBaseline records every finding of res.
func NewBaseline(res *Result) *Baseline {
	b := &Baseline{Version: baselineVersion, Findings: []BaselineEntry{}}
	for _, f := range res.Findings {
		if f.Rule == ParseErrorRule {
			continue // a file that does not parse is never accepted
		}
		b.Findings = append(b.Findings, BaselineEntry{Rule: f.Rule, File: baselinePath(f.File), Fingerprint: f.Fingerprint, Line: f.Line, Statement: f.Statement})
	}
	sort.SliceStable(b.Findings, func(i, j int) bool {
		x, y := b.Findings[i], b.Findings[j]
		if x.File != y.File {
			return x.File < y.File
		}
		return x.Line < y.Line
	})
	return b
}

// baselinePath normalises a file name so that a baseline written on one system matches
// on another.
func baselinePath(p string) string { return filepath.ToSlash(filepath.Clean(p)) }

// ReadBaseline reads a baseline file written by [Baseline.Write].
func ReadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("read baseline %s: %w (write a new one with --update-baseline)", path, err)
	}
	if b.Version != baselineVersion {
		return nil, fmt.Errorf("read baseline %s: version %d is not %d (write a new one with --update-baseline)", path, b.Version, baselineVersion)
	}
	return &b, nil
}

// Write saves the baseline as indented JSON, replacing the file atomically.
func (b *Baseline) Write(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("write baseline: %w", err), os.Remove(tmp))
	}
	return nil
}

// Apply hides the findings of res that the baseline holds and returns how many it hid.
func (b *Baseline) Apply(res *Result) int {
	left := map[string]int{}
	for _, e := range b.Findings {
		left[e.Rule+"\x00"+e.File+"\x00"+e.Fingerprint]++
	}
	return res.Hide(func(f Finding) bool {
		k := f.Rule + "\x00" + baselinePath(f.File) + "\x00" + f.Fingerprint
		if left[k] > 0 {
			left[k]--
			return true
		}
		return false
	})
}

// Hide removes the findings for which hide returns true, counts them in res.Hidden and
// returns how many it removed. Parse errors are never hidden.
func (r *Result) Hide(hide func(Finding) bool) int {
	kept := r.Findings[:0]
	n := 0
	for _, f := range r.Findings {
		if f.Rule != ParseErrorRule && hide(f) {
			n++
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	r.Hidden += n
	return n
}
