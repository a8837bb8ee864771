package kubeapi

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// TestSchemeDecodes: what the API server sends for every operation of Interface decodes
// into its typed object, errors (Status) and watch events included.
func TestSchemeDecodes(t *testing.T) {
	dec := serializer.NewCodecFactory(theScheme()).UniversalDeserializer()
	tests := []struct {
		body string
		want runtime.Object
	}{
		{`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"}}`, &appsv1.Deployment{}},
		{`{"apiVersion":"apps/v1","kind":"DeploymentList","items":[{"metadata":{"name":"api"}}]}`, &appsv1.DeploymentList{}},
		{`{"apiVersion":"apps/v1","kind":"ReplicaSetList","items":[]}`, &appsv1.ReplicaSetList{}},
		{`{"apiVersion":"v1","kind":"PodList","items":[]}`, &corev1.PodList{}},
		{`{"apiVersion":"v1","kind":"Event","metadata":{"name":"e"}}`, &corev1.Event{}},
		{`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data"}}`, &corev1.PersistentVolumeClaim{}},
		{`{"apiVersion":"v1","kind":"PersistentVolumeClaimList","items":[]}`, &corev1.PersistentVolumeClaimList{}},
		{`{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"}}`, &corev1.Service{}},
		{`{"apiVersion":"policy/v1","kind":"PodDisruptionBudgetList","items":[]}`, &policyv1.PodDisruptionBudgetList{}},
		{`{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSliceList","items":[]}`, &discoveryv1.EndpointSliceList{}},
		{`{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404}`, &metav1.Status{}},
	}
	for _, tc := range tests {
		got, gvk, err := dec.Decode([]byte(tc.body), nil, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if reflect.TypeOf(got) != reflect.TypeOf(tc.want) {
			t.Errorf("%s decoded as %T (%v), want %T", tc.body, got, gvk, tc.want)
		}
	}
	for _, g := range groups {
		if _, err := theScheme().New(g.gv.WithKind("WatchEvent")); err != nil {
			t.Errorf("%s: watch events are not registered: %v", g.gv, err)
		}
	}
}

// TestParameters: the options of each operation become the query parameters the API
// server reads, in every API group of the scheme.
func TestParameters(t *testing.T) {
	params := runtime.NewParameterCodec(theScheme())
	limit := int64(500)
	tests := []struct {
		opts runtime.Object
		want string
	}{
		{&metav1.ListOptions{LabelSelector: "app=api", Limit: limit, Continue: "c1", ResourceVersion: "7", Watch: true},
			"continue=c1&labelSelector=app%3Dapi&limit=500&resourceVersion=7&watch=true"},
		{&metav1.GetOptions{}, ""},
		{&metav1.UpdateOptions{FieldManager: "tandem"}, "fieldManager=tandem"},
		{&metav1.CreateOptions{}, ""},
		{&metav1.PatchOptions{FieldManager: "tandem"}, "fieldManager=tandem"},
	}
	for _, g := range groups {
		for _, tc := range tests {
			v, err := params.EncodeParameters(tc.opts, g.gv)
			if err != nil {
				t.Errorf("%s: %T: %v", g.gv, tc.opts, err)
				continue
			}
			if got := v.Encode(); got != tc.want {
				t.Errorf("%s: %T: %q, want %q", g.gv, tc.opts, got, tc.want)
			}
		}
	}
}

// TestFindKind: a kind maps to its resource, not to a subresource of the same kind, with
// its scope; a kind the group version does not serve is an error naming both.
func TestFindKind(t *testing.T) {
	apps := &metav1.APIResourceList{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments/status", Kind: "Deployment", Namespaced: true},
		{Name: "deployments", Kind: "Deployment", Namespaced: true},
		{Name: "deployments/scale", Kind: "Scale", Group: "autoscaling", Version: "v1", Namespaced: true},
	}}
	sched := &metav1.APIResourceList{GroupVersion: "scheduling.k8s.io/v1", APIResources: []metav1.APIResource{
		{Name: "priorityclasses", Kind: "PriorityClass"},
	}}
	tests := []struct {
		list    *metav1.APIResourceList
		gvk     schema.GroupVersionKind
		want    mapping
		wantErr string
	}{
		{apps, appsv1.SchemeGroupVersion.WithKind("Deployment"), mapping{appsv1.SchemeGroupVersion.WithResource("deployments"), true}, ""},
		{sched, schema.GroupVersionKind{Group: "scheduling.k8s.io", Version: "v1", Kind: "PriorityClass"},
			mapping{schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}, false}, ""},
		{apps, appsv1.SchemeGroupVersion.WithKind("Scale"), mapping{}, "serves apps/v1 but no kind Scale"},
		{apps, appsv1.SchemeGroupVersion.WithKind("Widget"), mapping{}, "serves apps/v1 but no kind Widget"},
	}
	for _, tc := range tests {
		got, err := findKind(tc.list, tc.gvk)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: %v, want an error saying %q", tc.gvk, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.gvk, got, err, tc.want)
		}
	}
}

// TestResourcePath: the path a server-side apply patches, for the core group, a named
// group, a namespaced and a cluster-scoped kind.
func TestResourcePath(t *testing.T) {
	tests := []struct {
		m         mapping
		namespace string
		want      string
	}{
		{mapping{corev1.SchemeGroupVersion.WithResource("services"), true}, "shop", "/api/v1/namespaces/shop/services/api"},
		{mapping{appsv1.SchemeGroupVersion.WithResource("deployments"), true}, "shop", "/apis/apps/v1/namespaces/shop/deployments/api"},
		{mapping{schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}, false}, "",
			"/apis/scheduling.k8s.io/v1/priorityclasses/api"},
		{mapping{corev1.SchemeGroupVersion.WithResource("namespaces"), false}, "", "/api/v1/namespaces/api"},
	}
	for _, tc := range tests {
		if got := path.Join(resourcePath(tc.m, tc.namespace, "api")...); got != tc.want {
			t.Errorf("%v in %q: %s, want %s", tc.m.resource, tc.namespace, got, tc.want)
		}
	}
}

// TestConfig reads a kubeconfig: the current context or a named one, its namespace
// ("default" when none) and its name; a missing file or an unknown context is an error
// saying how to give one. A Client is made from the configuration without a request.
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	kc := `apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: secret}
contexts:
- name: prod
  context: {cluster: a, user: u, namespace: shop}
- name: lab
  context: {cluster: b, user: u}
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		context               string
		host, namespace, name string
	}{
		{"", "https://a.example:6443", "shop", "prod"},
		{"lab", "https://b.example:6443", "default", "lab"},
	}
	for _, tc := range tests {
		cfg, ns, name, err := Config(path, tc.context)
		if err != nil {
			t.Fatalf("context %q: %v", tc.context, err)
		}
		if cfg.Host != tc.host || ns != tc.namespace || name != tc.name || cfg.UserAgent != "tandem" {
			t.Errorf("context %q: host %s, namespace %s, name %s, agent %s; want %s, %s, %s", tc.context, cfg.Host, ns, name, cfg.UserAgent, tc.host, tc.namespace, tc.name)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("context %q: %v", tc.context, err)
		}
		if len(c.rest) != len(groups) {
			t.Errorf("%d REST clients, want one per API group (%d)", len(c.rest), len(groups))
		}
	}
	cfg, _, _, err := Config(path, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for gv, rc := range c.rest {
		if rc.GetRateLimiter() == nil || rc.GetRateLimiter().QPS() != 50 {
			t.Errorf("%s: rate limiter %v, want the kubeconfig's 50 per second", gv, rc.GetRateLimiter())
		}
	}
	cfg.Burst = 0
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("a QPS without a burst: %v, want an error saying so", err)
	}
	for _, tc := range []struct{ path, context, want string }{
		{filepath.Join(dir, "absent"), "", "absent"},
		{path, "staging", "staging"},
	} {
		_, _, _, err := Config(tc.path, tc.context)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--kubeconfig") {
			t.Errorf("Config(%s, %q): %v, want an error naming %q and --kubeconfig", tc.path, tc.context, err, tc.want)
		}
	}
}
