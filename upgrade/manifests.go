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

// manifestPaths is every manifest the release names: its own manifests, then each kube
// workload's manifests directory, each once.
func (r *Release) manifestPaths() []string {
	var paths []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	add(r.ManifestsPath())
	for _, w := range r.Workloads {
		add(r.KubeManifestsDir(w))
	}
	return paths
}

// CheckManifests is the plan's preflight of the release's Kubernetes manifests: it runs
// `tandem check` on them (the release's manifests and each workload's kube.manifests)
// when the release's backend is kube and it names any, and returns the result (nil when
// there is nothing to check) and, as the plan's problems, each finding at error level
// and input it cannot read.
func CheckManifests(ctx context.Context, rel *Release) (*check.Result, []string) {
	paths := rel.manifestPaths()
	if rel.Backend != "kube" || len(paths) == 0 {
		return nil, nil
	}
	in, err := check.Files{Paths: paths}.Read(ctx)
	if err != nil {
		return nil, []string{fmt.Sprintf("the release's manifests cannot be checked: %v", err)}
	}
	res := check.Check(in, check.Options{})
	var problems []string
	for _, f := range res.Findings {
		if f.Severity == check.SeverityError {
			problems = append(problems, fmt.Sprintf("%s:%d: %s [%s]; `tandem check %s` shows the fix", f.File, f.Line, f.Message, f.Rule, f.File))
		}
	}
	return res, problems
}
