// Package kubeapi is Tandem's connection to a Kubernetes API server: the configuration
// (kubeconfig or in-cluster), typed access to exactly the objects Tandem reads and
// writes (Deployments, ReplicaSets, Pods, Events, PersistentVolumeClaims,
// PodDisruptionBudgets, Services, EndpointSlices), and server-side apply of any kind
// the cluster serves, found by a discovery of its own.
//
// It is built on client-go's rest client with a scheme that holds only
// the API groups above (core/v1, apps/v1, discovery/v1, policy/v1), instead of
// client-go's typed clientset, whose scheme registers every API group and, with the
// discovery and REST mapper, cost every tandem command about 18 ms of package
// initialisation and the binary 37 MB (docs/lint-rules.md, "Large files and speed"). The methods have the
// signatures of client-go's typed clients, so that a test can back Interface with
// client-go's fake clientset (package kubeapitest).
package kubeapi

import (
	"context"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
)

// theScheme holds the API groups Tandem uses, and metav1's options, Status and
// WatchEvent. It is made by the first New, so that commands that do not talk to a
// cluster do not pay for it.
var theScheme = sync.OnceValue(newScheme)

// groups are the API group versions of the scheme, each served by a REST client.
var groups = []struct {
	gv  schema.GroupVersion
	add func(*runtime.Scheme) error
}{
	{corev1.SchemeGroupVersion, corev1.AddToScheme},
	{appsv1.SchemeGroupVersion, appsv1.AddToScheme},
	{discoveryv1.SchemeGroupVersion, discoveryv1.AddToScheme},
	{policyv1.SchemeGroupVersion, policyv1.AddToScheme},
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	for _, g := range groups {
		if err := g.add(s); err != nil {
			panic(fmt.Sprintf("kubeapi: register %s: %v", g.gv, err)) // a programming error, caught by any test
		}
	}
	return s
}

// Interface is the typed part of Client: the objects Tandem reads and writes, each with
// the operations it performs on them. Client implements it over an API server;
// kubeapitest over client-go's fake clientset.
type Interface interface {
	Deployments(namespace string) Deployments
	ReplicaSets(namespace string) ReplicaSets
	Pods(namespace string) Pods
	Events(namespace string) Events
	PersistentVolumeClaims(namespace string) PersistentVolumeClaims
	PodDisruptionBudgets(namespace string) PodDisruptionBudgets
	Services(namespace string) Services
	EndpointSlices(namespace string) EndpointSlices
}

// Deployments are the operations on apps/v1 Deployments.
type Deployments interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.Deployment, error)
	List(ctx context.Context, opts metav1.ListOptions) (*appsv1.DeploymentList, error)
	Create(ctx context.Context, d *appsv1.Deployment, opts metav1.CreateOptions) (*appsv1.Deployment, error)
	Update(ctx context.Context, d *appsv1.Deployment, opts metav1.UpdateOptions) (*appsv1.Deployment, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*appsv1.Deployment, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// ReplicaSets are the operations on apps/v1 ReplicaSets.
type ReplicaSets interface {
	List(ctx context.Context, opts metav1.ListOptions) (*appsv1.ReplicaSetList, error)
}

// Pods are the operations on core/v1 Pods.
type Pods interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Events are the operations on core/v1 Events.
type Events interface {
	Create(ctx context.Context, e *corev1.Event, opts metav1.CreateOptions) (*corev1.Event, error)
}

// PersistentVolumeClaims are the operations on core/v1 PersistentVolumeClaims.
type PersistentVolumeClaims interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.PersistentVolumeClaim, error)
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PersistentVolumeClaimList, error)
}

// PodDisruptionBudgets are the operations on policy/v1 PodDisruptionBudgets.
type PodDisruptionBudgets interface {
	List(ctx context.Context, opts metav1.ListOptions) (*policyv1.PodDisruptionBudgetList, error)
}

// Services are the operations on core/v1 Services.
type Services interface {
	Create(ctx context.Context, s *corev1.Service, opts metav1.CreateOptions) (*corev1.Service, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// EndpointSlices are the operations on discovery/v1 EndpointSlices.
type EndpointSlices interface {
	List(ctx context.Context, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Config returns the API server's configuration: from kubeconfig (a path; "" means
// $KUBECONFIG, then ~/.kube/config) and context ("" means the current one), or the
// in-cluster configuration when no kubeconfig is found and tandem runs in a pod. It also
// returns the namespace that configuration names (the pod's own in the cluster;
// "default" when it names none) and the cluster's name for messages (the context, else
// the server's address).
func Config(kubeconfig, kubeContext string) (cfg *rest.Config, namespace, name string, err error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err = cc.ClientConfig()
	if err != nil {
		return nil, "", "", fmt.Errorf("kubernetes: no usable kubeconfig or in-cluster configuration (%w): "+
			"set --kubeconfig or KUBECONFIG, or run tandem in a pod with a service account", err)
	}
	namespace, _, err = cc.Namespace()
	if err != nil {
		return nil, "", "", fmt.Errorf("kubernetes: the kubeconfig's namespace: %w (correct the context's namespace in the kubeconfig)", err)
	}
	if namespace == "" {
		namespace = "default"
	}
	name = kubeContext
	if name == "" {
		if raw, err := cc.RawConfig(); err == nil {
			name = raw.CurrentContext
		}
	}
	if name == "" {
		name = cfg.Host
	}
	cfg.UserAgent = "tandem"
	return cfg, namespace, name, nil
}

// Client is a connection to an API server. It implements Interface, and applies
// manifests (Apply). It is safe for concurrent use.
type Client struct {
	rest   map[schema.GroupVersion]*rest.RESTClient
	params runtime.ParameterCodec

	mu       sync.Mutex
	mappings map[schema.GroupVersionKind]mapping // discovery's answers, for this Client's life
}

// New returns a Client for cfg. Its requests share one HTTP client. They are
// rate-limited as client-go's clientset limits them: by cfg.RateLimiter, else by one
// limiter of cfg.QPS and cfg.Burst when QPS is set, else by client-go's default limit
// per API group.
func New(cfg *rest.Config) (*Client, error) {
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: a QPS of %g needs a burst above 0", cfg.QPS)
		}
		cfg = rest.CopyConfig(cfg)
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	scheme := theScheme()
	codecs := serializer.NewCodecFactory(scheme)
	c := &Client{rest: map[schema.GroupVersion]*rest.RESTClient{}, mappings: map[schema.GroupVersionKind]mapping{},
		params: runtime.NewParameterCodec(scheme)}
	for _, g := range groups {
		gc := rest.CopyConfig(cfg)
		gv := g.gv
		gc.GroupVersion = &gv
		gc.APIPath = "/apis"
		if gv.Group == "" {
			gc.APIPath = "/api"
		}
		gc.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, codecs).WithoutConversion()
		if gc.UserAgent == "" {
			gc.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		if c.rest[gv], err = rest.RESTClientForConfigAndClient(gc, hc); err != nil {
			return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
		}
	}
	return c, nil
}

// typedFor returns the typed operations on one resource of one API group in a namespace.
func typedFor[T object, L runtime.Object](c *Client, gv schema.GroupVersion, resource, namespace string, newT func() T, newL func() L) typed[T, L] {
	return typed[T, L]{rc: c.rest[gv], params: c.params, resource: resource, namespace: namespace, newT: newT, newL: newL}
}

// Deployments returns the Deployments of a namespace ("" for all).
func (c *Client) Deployments(namespace string) Deployments {
	return typedFor(c, appsv1.SchemeGroupVersion, "deployments", namespace,
		func() *appsv1.Deployment { return &appsv1.Deployment{} }, func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} })
}

// ReplicaSets returns the ReplicaSets of a namespace ("" for all).
func (c *Client) ReplicaSets(namespace string) ReplicaSets {
	return typedFor(c, appsv1.SchemeGroupVersion, "replicasets", namespace,
		func() *appsv1.ReplicaSet { return &appsv1.ReplicaSet{} }, func() *appsv1.ReplicaSetList { return &appsv1.ReplicaSetList{} })
}

// Pods returns the Pods of a namespace ("" for all).
func (c *Client) Pods(namespace string) Pods {
	return typedFor(c, corev1.SchemeGroupVersion, "pods", namespace,
		func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} })
}

// Events returns the Events of a namespace.
func (c *Client) Events(namespace string) Events {
	return typedFor(c, corev1.SchemeGroupVersion, "events", namespace,
		func() *corev1.Event { return &corev1.Event{} }, func() *corev1.EventList { return &corev1.EventList{} })
}

// PersistentVolumeClaims returns the PersistentVolumeClaims of a namespace ("" for all).
func (c *Client) PersistentVolumeClaims(namespace string) PersistentVolumeClaims {
	return typedFor(c, corev1.SchemeGroupVersion, "persistentvolumeclaims", namespace,
		func() *corev1.PersistentVolumeClaim { return &corev1.PersistentVolumeClaim{} },
		func() *corev1.PersistentVolumeClaimList { return &corev1.PersistentVolumeClaimList{} })
}

// PodDisruptionBudgets returns the PodDisruptionBudgets of a namespace ("" for all).
func (c *Client) PodDisruptionBudgets(namespace string) PodDisruptionBudgets {
	return typedFor(c, policyv1.SchemeGroupVersion, "poddisruptionbudgets", namespace,
		func() *policyv1.PodDisruptionBudget { return &policyv1.PodDisruptionBudget{} },
		func() *policyv1.PodDisruptionBudgetList { return &policyv1.PodDisruptionBudgetList{} })
}

// Services returns the Services of a namespace.
func (c *Client) Services(namespace string) Services {
	return typedFor(c, corev1.SchemeGroupVersion, "services", namespace,
		func() *corev1.Service { return &corev1.Service{} }, func() *corev1.ServiceList { return &corev1.ServiceList{} })
}

// EndpointSlices returns the EndpointSlices of a namespace ("" for all).
func (c *Client) EndpointSlices(namespace string) EndpointSlices {
	return typedFor(c, discoveryv1.SchemeGroupVersion, "endpointslices", namespace,
		func() *discoveryv1.EndpointSlice { return &discoveryv1.EndpointSlice{} },
		func() *discoveryv1.EndpointSliceList { return &discoveryv1.EndpointSliceList{} })
}
