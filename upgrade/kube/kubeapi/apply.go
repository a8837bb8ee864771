package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// mapping is where the API server serves a kind: its resource, and whether its objects
// live in a namespace.
type mapping struct {
	resource   schema.GroupVersionResource
	namespaced bool
}

// Apply server-side applies objs, in order, as fieldManager, taking the fields other
// managers own (force). Every object's kind is looked up in the cluster's discovery
// first (GET /api/v1 or /apis/GROUP/VERSION, once per kind for the Client's life), so
// that a kind the cluster does not serve changes nothing. A namespaced object without a
// namespace is an error; a cluster-scoped one is applied without its namespace.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured, fieldManager string) error {
	paths := make([][]string, len(objs))
	for i, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := c.mapping(ctx, gvk)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
		}
		switch {
		case m.namespaced && u.GetNamespace() == "":
			return fmt.Errorf("%s %s: a namespaced kind without a namespace: set metadata.namespace", gvk.Kind, u.GetName())
		case !m.namespaced:
			u.SetNamespace("")
		}
		paths[i] = resourcePath(m, u.GetNamespace(), u.GetName())
	}
	for i, u := range objs {
		body, err := u.MarshalJSON()
		if err == nil {
			// A server-side apply is a PATCH of the whole object as an apply patch (JSON
			// is YAML), as client-go's dynamic client sends it.
			err = c.rest[schema.GroupVersion{Version: "v1"}].Patch(types.ApplyPatchType).AbsPath(paths[i]...).
				Param("fieldManager", fieldManager).Param("force", "true").Body(body).Do(ctx).Error()
		}
		if err != nil {
			return fmt.Errorf("server-side apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// resourcePath is the path of an object of m named name, in namespace when m is
// namespaced: /api/v1/namespaces/NS/services/NAME, /apis/GROUP/VERSION/RESOURCE/NAME.
func resourcePath(m mapping, namespace, name string) []string {
	p := []string{"/apis", m.resource.Group, m.resource.Version}
	if m.resource.Group == "" {
		p = []string{"/api", m.resource.Version}
	}
	if m.namespaced {
		p = append(p, "namespaces", namespace)
	}
	return append(p, m.resource.Resource, name)
}

// mapping looks gvk up in the cluster's discovery. A kind found is remembered; one not
// found is asked again next time (a CustomResourceDefinition may have been applied
// since).
func (c *Client) mapping(ctx context.Context, gvk schema.GroupVersionKind) (mapping, error) {
	c.mu.Lock()
	m, ok := c.mappings[gvk]
	c.mu.Unlock()
	if ok {
		return m, nil
	}
	path := []string{"/apis", gvk.Group, gvk.Version}
	if gvk.Group == "" {
		path = []string{"/api", gvk.Version}
	}
	raw, err := c.rest[schema.GroupVersion{Version: "v1"}].Get().AbsPath(path...).Do(ctx).Raw()
	if apierrors.IsNotFound(err) {
		return mapping{}, fmt.Errorf("the cluster does not serve the API version %s (kind %s): %w", gvk.GroupVersion(), gvk.Kind, err)
	}
	if err != nil {
		return mapping{}, fmt.Errorf("discover the resources of %s: %w", gvk.GroupVersion(), err)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(raw, &list); err != nil {
		return mapping{}, fmt.Errorf("discover the resources of %s: %w", gvk.GroupVersion(), err)
	}
	m, err = findKind(&list, gvk)
	if err != nil {
		return mapping{}, err
	}
	c.mu.Lock()
	c.mappings[gvk] = m
	c.mu.Unlock()
	return m, nil
}

// findKind finds gvk's resource in its group version's discovery document: the
// resource whose kind it is, not a subresource (deployments/status has kind Deployment
// too).
func findKind(list *metav1.APIResourceList, gvk schema.GroupVersionKind) (mapping, error) {
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			return mapping{resource: gvk.GroupVersion().WithResource(r.Name), namespaced: r.Namespaced}, nil
		}
	}
	return mapping{}, fmt.Errorf("the cluster serves %s but no kind %s in it", gvk.GroupVersion(), gvk.Kind)
}
