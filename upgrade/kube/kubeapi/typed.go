package kubeapi

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// object is an API object of the scheme.
type object interface {
	runtime.Object
	metav1.Object
}

// typed is the operations on one resource in a namespace ("" for all), T its objects
// and L their lists, as client-go's typed clients do them: the requests, their options
// as query parameters, the bodies and the answers through the scheme. Its methods
// satisfy this package's per-resource interfaces.
type typed[T object, L runtime.Object] struct {
	rc        *rest.RESTClient
	params    runtime.ParameterCodec
	resource  string
	namespace string
	newT      func() T
	newL      func() L
}

// Get reads the object called name.
func (c typed[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	out := c.newT()
	err := c.rc.Get().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).Name(name).
		VersionedParams(&opts, c.params).Do(ctx).Into(out)
	return out, err
}

// List reads the objects that opts selects.
func (c typed[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := c.newL()
	err := c.rc.Get().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).
		VersionedParams(&opts, c.params).Timeout(timeout(opts)).Do(ctx).Into(out)
	return out, err
}

// Watch watches the objects that opts selects.
func (c typed[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).
		VersionedParams(&opts, c.params).Timeout(timeout(opts)).Watch(ctx)
}

// Create creates obj.
func (c typed[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	out := c.newT()
	err := c.rc.Post().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).
		VersionedParams(&opts, c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Update replaces obj (optimistically: a conflict if it changed since it was read).
func (c typed[T, L]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	out := c.newT()
	err := c.rc.Put().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).Name(obj.GetName()).
		VersionedParams(&opts, c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Patch patches the object called name with data, a patch of type pt.
func (c typed[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	out := c.newT()
	err := c.rc.Patch(pt).NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).Name(name).
		SubResource(subresources...).VersionedParams(&opts, c.params).Body(data).Do(ctx).Into(out)
	return out, err
}

// Delete deletes the object called name.
func (c typed[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return c.rc.Delete().NamespaceIfScoped(c.namespace, c.namespace != "").Resource(c.resource).Name(name).
		Body(&opts).Do(ctx).Error()
}

// timeout is the request timeout a list or watch asks for (0: none).
func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
