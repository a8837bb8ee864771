package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/tandem-pg/tandem/upgrade"
)

// ReadManifests reads every object of the YAML or JSON files in dir (*.yaml, *.yml,
// *.json, in name order; a file may hold several documents). Errors name the file.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	var names []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				names = append(names, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for doc := 1; ; doc++ {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: document %d: not valid YAML: %w (fix the file, or render it again)", name, doc, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
				return nil, fmt.Errorf("%s: document %d: not a Kubernetes object (apiVersion, kind and metadata.name are required)", name, doc)
			}
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no manifest (*.yaml, *.yml or *.json): render the release's manifests into it", dir)
	}
	return out, nil
}

// applyManifests server-side applies the workload's manifests, its Deployment's pod
// template retargeted to t first (image, environment, annotations), so that the
// Deployment's template changes once.
func (b *Backend) applyManifests(ctx context.Context, r ref, t upgrade.Target) error {
	if b.opts.Dynamic == nil {
		return fmt.Errorf("kube backend: cannot apply manifests: %v", b.dynErr)
	}
	dir := t.Workload.Kube.Manifests
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(t.Dir, dir)
	}
	objs, err := ReadManifests(dir)
	if err != nil {
		return err
	}
	found := false
	for i, u := range objs {
		if u.GetNamespace() == "" {
			u.SetNamespace(r.ns)
		}
		if u.GetKind() != "Deployment" || u.GroupVersionKind().Group != "apps" || u.GetName() != r.name || u.GetNamespace() != r.ns {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return fmt.Errorf("%s: deployment %s: %w", dir, r, err)
		}
		if _, err := retarget(r, &d.Spec.Template, t); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d)
		if err != nil {
			return err
		}
		objs[i] = &unstructured.Unstructured{Object: m}
		// Fields the apply must not own.
		unstructured.RemoveNestedField(objs[i].Object, "status")
		unstructured.RemoveNestedField(objs[i].Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(objs[i].Object, "spec", "template", "metadata", "creationTimestamp")
		found = true
	}
	if !found {
		return fmt.Errorf("%s holds no Deployment %s: the workload's manifests must hold its Deployment (or correct workloads[].kube)", dir, r)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(b.c.Discovery()))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: %s %s: the cluster does not know this kind: %w", dir, gvk.Kind, u.GetName(), err)
		}
		res := b.opts.Dynamic.Resource(m.Resource)
		var ri interface {
			Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error)
		} = res
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = res.Namespace(u.GetNamespace())
		} else {
			u.SetNamespace("")
		}
		if _, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("%s: server-side apply %s %s: %w", dir, gvk.Kind, u.GetName(), err)
		}
	}
	b.event(fmt.Sprintf("applied %d manifest(s) from %s", len(objs), dir))
	return nil
}
