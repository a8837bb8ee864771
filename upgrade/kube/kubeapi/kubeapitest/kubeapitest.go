// Package kubeapitest backs kubeapi.Interface with a client-go clientset, for tests:
// client-go's fake clientset (an object tracker behind client-go's typed clients), or
// the clientset of the test cluster. Only tests import it, so that the tandem binary
// does not link client-go's clientset.
package kubeapitest

import (
	"k8s.io/client-go/kubernetes"

	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi"
)

// Clientset is kubeapi.Interface over a client-go clientset.
type Clientset struct{ kubernetes.Interface }

// Deployments returns the clientset's Deployments.
func (c Clientset) Deployments(ns string) kubeapi.Deployments { return c.AppsV1().Deployments(ns) }

// ReplicaSets returns the clientset's ReplicaSets.
func (c Clientset) ReplicaSets(ns string) kubeapi.ReplicaSets { return c.AppsV1().ReplicaSets(ns) }

// Pods returns the clientset's Pods.
func (c Clientset) Pods(ns string) kubeapi.Pods { return c.CoreV1().Pods(ns) }

// Events returns the clientset's Events.
func (c Clientset) Events(ns string) kubeapi.Events { return c.CoreV1().Events(ns) }

// PersistentVolumeClaims returns the clientset's PersistentVolumeClaims.
func (c Clientset) PersistentVolumeClaims(ns string) kubeapi.PersistentVolumeClaims {
	return c.CoreV1().PersistentVolumeClaims(ns)
}

// PodDisruptionBudgets returns the clientset's PodDisruptionBudgets.
func (c Clientset) PodDisruptionBudgets(ns string) kubeapi.PodDisruptionBudgets {
	return c.PolicyV1().PodDisruptionBudgets(ns)
}

// Services returns the clientset's Services.
func (c Clientset) Services(ns string) kubeapi.Services { return c.CoreV1().Services(ns) }

// EndpointSlices returns the clientset's EndpointSlices.
func (c Clientset) EndpointSlices(ns string) kubeapi.EndpointSlices {
	return c.DiscoveryV1().EndpointSlices(ns)
}

var _ kubeapi.Interface = Clientset{}
