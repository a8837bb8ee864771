// Package cluster reads the objects `tandem check` looks at (Deployments,
// PersistentVolumeClaims, PodDisruptionBudgets) from a live cluster, as a check.Source:
// the checks are the same as on manifests.
package cluster

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

// Source reads from a cluster through Client.
type Source struct {
	Client kubernetes.Interface
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
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		l, err := s.Client.AppsV1().Deployments(s.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fail("deployments", err)
		}
		for i := range l.Items {
			d := &l.Items[i]
			add("Deployment", d.Namespace, d.Name, &check.Object{Deployment: d})
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	opts = metav1.ListOptions{Limit: pageSize}
	for {
		l, err := s.Client.CoreV1().PersistentVolumeClaims(s.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fail("persistentvolumeclaims", err)
		}
		for i := range l.Items {
			c := &l.Items[i]
			add("PersistentVolumeClaim", c.Namespace, c.Name, &check.Object{PVC: c})
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	opts = metav1.ListOptions{Limit: pageSize}
	for {
		l, err := s.Client.PolicyV1().PodDisruptionBudgets(s.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fail("poddisruptionbudgets", err)
		}
		for i := range l.Items {
			b := &l.Items[i]
			add("PodDisruptionBudget", b.Namespace, b.Name, &check.Object{PDB: b})
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	return in, nil
}

// Connect builds a Source from a kubeconfig (path "" for $KUBECONFIG or ~/.kube/config,
// else the in-cluster config), a context ("" for the current one) and a namespace (""
// for the context's; allNamespaces reads every namespace).
func Connect(kubeconfig, kubeContext, namespace string, allNamespaces bool) (Source, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return Source{}, fmt.Errorf("kubeconfig: %w (give --kubeconfig, set KUBECONFIG, or run in a pod)", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Source{}, fmt.Errorf("kubernetes client: %w", err)
	}
	name := kubeContext
	if name == "" {
		if raw, err := cc.RawConfig(); err == nil {
			name = raw.CurrentContext
		}
	}
	if name == "" {
		name = cfg.Host
	}
	s := Source{Client: client, Name: "cluster " + name}
	if !allNamespaces {
		s.Namespace = namespace
		if s.Namespace == "" {
			if s.Namespace, _, err = cc.Namespace(); err != nil {
				return Source{}, fmt.Errorf("kubeconfig: namespace: %w", err)
			}
		}
	}
	return s, nil
}
