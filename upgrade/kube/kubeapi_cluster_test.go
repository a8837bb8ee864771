//go:build kube

package kube_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/tandem-pg/tandem/internal/kubetest"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi"
)

// TestKubeAPITyped runs kubeapi's typed operations against the real API server, with
// the answers the backend relies on: NotFound, Conflict on a stale update, a patch, a
// label-selected list, an Event.
func TestKubeAPITyped(t *testing.T) {
	c := kubetest.Require(t)
	ns := c.NewNamespace(t)
	ctx := context.Background()
	api, err := kubeapi.New(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	deps := api.Deployments(ns)
	if _, err := deps.Get(ctx, "absent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get an absent deployment: %v, want NotFound", err)
	}
	if _, err := api.PersistentVolumeClaims(ns).Get(ctx, "absent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get an absent claim: %v, want NotFound", err)
	}
	d, err := deps.Create(ctx, plainDeployment("web", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32) }), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Namespace != ns || d.UID == "" {
		t.Fatalf("created %s/%s uid %q", d.Namespace, d.Name, d.UID)
	}
	if _, err := deps.Create(ctx, plainDeployment("other", func(d *appsv1.Deployment) {
		d.Spec.Replicas = new(int32)
		d.Labels = map[string]string{"tier": "back"}
	}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := deps.List(ctx, metav1.ListOptions{LabelSelector: "tier=back"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "other" {
		t.Fatalf("list tier=back: %v, %v", l, err)
	}
	p, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{})
	if err != nil || p.Annotations["x"] != "y" {
		t.Fatalf("patch: %v (annotations %v)", err, p.Annotations)
	}
	d.Spec.MinReadySeconds = 3 // d is older than the patch
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: kube.FieldManager}); !apierrors.IsConflict(err) {
		t.Fatalf("update from a stale read: %v, want Conflict", err)
	}
	// The deployment controller writes status concurrently, so even the patch's answer
	// may be stale by now: read, change and update, again on a conflict.
	var u *appsv1.Deployment
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.MinReadySeconds = 3
		u, err = deps.Update(ctx, cur, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if u.Spec.MinReadySeconds != 3 || u.ResourceVersion == p.ResourceVersion {
		t.Fatalf("update: minReadySeconds %d, resourceVersion %s (the patch's %s)", u.Spec.MinReadySeconds, u.ResourceVersion, p.ResourceVersion)
	}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.test", Namespace: ns}, Reason: "Test", Message: "hello", Type: corev1.EventTypeNormal,
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: ns, Name: "web", UID: u.UID}}
	if _, err := api.Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Message != "hello" {
		t.Fatalf("events of web: %v, %v", evs, err)
	}
	for _, list := range []func() error{
		func() error { _, err := api.ReplicaSets(ns).List(ctx, metav1.ListOptions{}); return err },
		func() error { _, err := api.Pods(ns).List(ctx, metav1.ListOptions{}); return err },
		func() error { _, err := api.PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{}); return err },
		func() error { _, err := api.EndpointSlices(ns).List(ctx, metav1.ListOptions{}); return err },
		func() error {
			_, err := api.PersistentVolumeClaims("").List(ctx, metav1.ListOptions{Limit: 1})
			return err
		},
	} {
		if err := list(); err != nil {
			t.Error(err)
		}
	}
	if err := deps.Delete(ctx, "other", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get a deleted deployment: %v, want NotFound", err)
	}
}

// TestRollAppliesManifests rolls a workload whose release gives its manifests: the
// backend server-side applies every object (a namespaced ConfigMap, a cluster-scoped
// PriorityClass of a group the backend's scheme does not hold, and the Deployment
// retargeted to the release) as field manager tandem, found by its own discovery; a
// second roll applies again without error; a kind the cluster does not serve is an
// error naming the directory and the kind, and nothing is applied.
func TestRollAppliesManifests(t *testing.T) {
	c := kubetest.Require(t)
	ns := c.NewNamespace(t)
	ctx := context.Background()
	dir := t.TempDir()
	d := plainDeployment("web", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32) })
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	dy, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	pc := "tandem-" + ns
	t.Cleanup(func() {
		_ = c.Client.SchedulingV1().PriorityClasses().Delete(context.Background(), pc, metav1.DeleteOptions{})
	})
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: hello}\n---\n"+
		"apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: "+pc+"}\nvalue: 1000\n")
	write("b-web.yaml", string(dy))

	be, err := kube.New(kube.Options{Config: c.Config, Namespace: ns, PollInterval: 100 * time.Millisecond, ReadyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	target := upgrade.Target{Release: "v2", Revision: "v2@s2", VersionSchema: "s2", Dir: dir,
		Workload: upgrade.Workload{Name: "web", Kube: &upgrade.KubeWorkload{Deployment: "web", Container: "app",
			Image: "localhost/tandem/absent:v2", Manifests: "."}}}
	for i := range 2 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := be.Roll(rctx, target, nil, nil)
		cancel()
		if err != nil {
			t.Fatalf("roll %d: %v", i+1, err)
		}
	}
	got, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "localhost/tandem/absent:v2" || got.Spec.Template.Annotations[kube.AnnRevision] != "v2@s2" {
		t.Errorf("deployment runs %s, revision %q: not retargeted before the apply", img, got.Spec.Template.Annotations[kube.AnnRevision])
	}
	cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != "hello" {
		t.Fatalf("configmap: %v, %v", cm, err)
	}
	prio, err := c.Client.SchedulingV1().PriorityClasses().Get(ctx, pc, metav1.GetOptions{})
	if err != nil || prio.Value != 1000 {
		t.Fatalf("priorityclass: %v, %v", prio, err)
	}
	for _, m := range [][]metav1.ManagedFieldsEntry{got.ManagedFields, cm.ManagedFields, prio.ManagedFields} {
		if !slices.ContainsFunc(m, func(f metav1.ManagedFieldsEntry) bool {
			return f.Manager == kube.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("no server-side apply by %s in %+v", kube.FieldManager, m)
		}
	}

	// The ConfigMap changes in the manifests, beside a kind the cluster does not serve:
	// nothing is applied.
	write("a-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: changed}\n")
	write("c-widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: apps/v1\nkind: Widget\nmetadata: {name: w}\n")
	err = be.Roll(ctx, target, nil, nil)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "Widget w") || !strings.Contains(err.Error(), "example.com/v1") {
		t.Errorf("a kind the cluster does not serve: %v, want an error naming %s, Widget w and example.com/v1", err, dir)
	}
	if cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{}); err != nil || cm.Data["greeting"] != "hello" {
		t.Errorf("configmap after a refused apply: %v, %v; want it unchanged", cm.Data, err)
	}
	write("c-widget.yaml", "apiVersion: apps/v1\nkind: Widget\nmetadata: {name: w}\n")
	err = be.Roll(ctx, target, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Widget w") || !strings.Contains(err.Error(), "no kind Widget") {
		t.Errorf("a kind its group does not serve: %v, want an error naming Widget w", err)
	}
}
