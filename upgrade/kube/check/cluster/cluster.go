// Package cluster reads the objects `tandem check` looks at (Deployments,
// PersistentVolumeClaims, PodDisruptionBudgets) from a live cluster, as a check.Source:
// the checks are the same as on manifests.
package cluster

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-pg/tandem/upgrade/kube/check"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi"
)

// Source reads from a cluster through Client.
type Source struct {
	// Client is the connection (a *kubeapi.Client).
	Client kubeapi.Interface
	// Namespace is the namespace read; "" reads all of them.
	Namespace string
	// Name names the cluster in findings, in place of a file (e.g. "cluster prod").
	Name string
}

// pageSize bounds the objects of one List call.
const pageSize = 500

// Read lists the Deployments, claims and budgets of the namespace.
func (s Source) Read(ctx context.Context) (*check.Input, error) {
	in := &check.Input{}
	add := func(kind, ns, name string, o *check.Object) {
		o.Kind, o.Namespace, o.Name, o.File = kind, ns, name, s.Name
		in.Objects = append(in.Objects, o)
		in.Read++
	}
	where := "all namespaces"
	if s.Namespace != "" {
		where = "namespace " + s.Namespace
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("%s: list %s in %s: %w (the check needs get and list on deployments, persistentvolumeclaims and poddisruptionbudgets)",
			s.Name, what, where, err)
	}
	ns := s.Namespace
	deps, err := all(ctx, func(ctx context.Context, o metav1.ListOptions) ([]appsv1.Deployment, string, error) {
		l, err := s.Client.Deployments(ns).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		return nil, fail("deployments", err)
	}
	pvcs, err := all(ctx, func(ctx context.Context, o metav1.ListOptions) ([]corev1.PersistentVolumeClaim, string, error) {
		l, err := s.Client.PersistentVolumeClaims(ns).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		return nil, fail("persistentvolumeclaims", err)
	}
	pdbs, err := all(ctx, func(ctx context.Context, o metav1.ListOptions) ([]policyv1.PodDisruptionBudget, string, error) {
		l, err := s.Client.PodDisruptionBudgets(ns).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		return nil, fail("poddisruptionbudgets", err)
	}
	for i := range deps {
		add("Deployment", deps[i].Namespace, deps[i].Name, &check.Object{Deployment: &deps[i]})
	}
	for i := range pvcs {
		add("PersistentVolumeClaim", pvcs[i].Namespace, pvcs[i].Name, &check.Object{PVC: &pvcs[i]})
	}
	for i := range pdbs {
		add("PodDisruptionBudget", pdbs[i].Namespace, pdbs[i].Name, &check.Object{PDB: &pdbs[i]})
	}
	return in, nil
}

// all calls list page by page until the server has no more.
func all[T any](ctx context.Context, list func(context.Context, metav1.ListOptions) ([]T, string, error)) ([]T, error) {
	var out []T
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		items, cont, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if cont == "" {
			return out, nil
		}
		opts.Continue = cont
	}
}

// Connect builds a Source from a kubeconfig (path "" for $KUBECONFIG or ~/.kube/config,
// else the in-cluster config), a context ("" for the current one) and a namespace (""
// for the context's; allNamespaces reads every namespace).
func Connect(kubeconfig, kubeContext, namespace string, allNamespaces bool) (Source, error) {
	cfg, ns, name, err := kubeapi.Config(kubeconfig, kubeContext)
	if err != nil {
		return Source{}, err
	}
	client, err := kubeapi.New(cfg)
	if err != nil {
		return Source{}, err
	}
	s := Source{Client: client, Name: "cluster " + name}
	if !allNamespaces {
		s.Namespace = namespace
		if s.Namespace == "" {
			s.Namespace = ns
		}
	}
	return s, nil
}
