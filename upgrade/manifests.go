package upgrade

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

// ManifestsPath is the release's Kubernetes manifests (a file or a directory) as a
// path; "" when it names none.
func (r *Release) ManifestsPath() string {
	if r.Manifests == "" || filepath.IsAbs(r.Manifests) {
		return r.Manifests
	}
	return filepath.Join(r.Dir, r.Manifests)
}

// CheckManifests is the plan's preflight of the release's Kubernetes manifests: it runs
// `tandem check` on them when the release's backend is kube and it names manifests, and
// returns the result (nil when there is nothing to check) and, as the plan's problems,
// each finding at error level and input it cannot read.
func CheckManifests(ctx context.Context, rel *Release) (*check.Result, []string) {
	path := rel.ManifestsPath()
	if rel.Backend != "kube" || path == "" {
		return nil, nil
	}
	in, err := check.Files{Paths: []string{path}}.Read(ctx)
	if err != nil {
		return nil, []string{fmt.Sprintf("the release's manifests cannot be checked: %v", err)}
	}
	res := check.Check(in, check.Options{})
	var problems []string
	for _, f := range res.Findings {
		if f.Severity == check.SeverityError {
			problems = append(problems, fmt.Sprintf("%s:%d: %s [%s]; `tandem check %s` shows the fix", f.File, f.Line, f.Message, f.Rule, path))
		}
	}
	return res, problems
}
