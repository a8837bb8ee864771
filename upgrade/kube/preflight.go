package kube

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

// Preflight runs `tandem check` on the Deployments the release's workloads name, as they
// run on the cluster, with the claims their pods mount, before anything changes: each
// finding at error level is a problem of the plan, which refuses the upgrade (e.g. a
// ReadWriteOnce volume under RollingUpdate, whose new pod would wait on Multi-Attach
// forever). Workloads whose manifests the release gives are checked from those
// manifests instead (upgrade.CheckManifests), as is every workload of a release with
// its own manifests. A rule is silenced for a Deployment with the annotation
// tandem.dev/check-ignore on its pod template. It reads with get only: deployments and
// persistentvolumeclaims.
func (b *Backend) Preflight(ctx context.Context, rel *upgrade.Release) ([]string, error) {
	if rel.Backend != "kube" || rel.ManifestsPath() != "" {
		return nil, nil
	}
	in := &check.Input{}
	seen := map[string]bool{}
	add := func(kind, ns, name string, o *check.Object) {
		key := kind + "/" + ns + "/" + name
		if seen[key] {
			return
		}
		seen[key] = true
		o.Kind, o.Namespace, o.Name, o.File = kind, ns, name, "cluster"
		in.Objects = append(in.Objects, o)
		in.Read++
	}
	for _, w := range rel.Workloads {
		if rel.KubeManifestsDir(w) != "" {
			continue
		}
		r, err := b.refOf(upgrade.Target{Workload: w})
		if err != nil {
			return nil, err
		}
		d, err := b.deployment(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("preflight: %w", err)
		}
		add("Deployment", d.Namespace, d.Name, &check.Object{Deployment: d})
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim == nil {
				continue
			}
			pvc, err := b.c.PersistentVolumeClaims(r.ns).Get(ctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue // the pod would not start either way; the rollout says so
			}
			if err != nil {
				return nil, fmt.Errorf("preflight: read persistentvolumeclaim %s/%s of deployment %s: %w", r.ns, v.PersistentVolumeClaim.ClaimName, r, err)
			}
			add("PersistentVolumeClaim", pvc.Namespace, pvc.Name, &check.Object{PVC: pvc})
		}
	}
	if len(in.Objects) == 0 {
		return nil, nil
	}
	// Budgets are not read (a warning only, and one more permission).
	res := check.Check(in, check.Options{Disable: []string{check.RuleDisruptionBudget}})
	var problems []string
	for _, f := range res.Findings {
		if f.Severity == check.SeverityError {
			ns := ""
			if parts := strings.Split(f.Object, "/"); len(parts) == 3 {
				ns = " -n " + parts[1]
			}
			problems = append(problems, fmt.Sprintf("%s [%s]; `tandem check --cluster%s` shows the fix", f.Message, f.Rule, ns))
		}
	}
	return problems, nil
}
