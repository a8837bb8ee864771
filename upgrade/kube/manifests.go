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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

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
	if err := b.c.Apply(ctx, objs, FieldManager); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	b.event(fmt.Sprintf("applied %d manifest(s) from %s", len(objs), dir))
	return nil
}
