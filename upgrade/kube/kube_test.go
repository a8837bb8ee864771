package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-pg/tandem/upgrade"
)

func TestTerminatingReason(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	grace := int64(30)
	pod := func(end time.Time, finalizers ...string) corev1.Pod {
		ts := metav1.NewTime(end)
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "api-7d9-x", Namespace: "shop", DeletionTimestamp: &ts, DeletionGracePeriodSeconds: &grace, Finalizers: finalizers},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		}
	}
	tests := []struct {
		name   string
		pod    corev1.Pod
		want   []string
		absent []string
	}{
		{"in its grace period", pod(now.Add(12 * time.Second)), []string{"grace period of 30s ends in 12s", "containers app still running"}, []string{"finalizers"}},
		{"held by a finalizer", pod(now.Add(-time.Minute), "example.com/hold"),
			[]string{"grace period of 30s ended 1m0s ago", "held by finalizers example.com/hold", "kubectl patch pod api-7d9-x -n shop"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := terminatingReason(tc.pod, now)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q does not say %q", got, w)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(got, w) {
					t.Errorf("%q says %q", got, w)
				}
			}
		})
	}
}

func TestRolloutLine(t *testing.T) {
	dep := func(gen, observed int64, updated, replicas, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Generation: gen},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, Replicas: replicas, AvailableReplicas: available}}
	}
	tests := []struct {
		d    *appsv1.Deployment
		want string
		done bool
	}{
		{dep(2, 1, 3, 3, 3), "spec update to be observed", false},
		{dep(2, 2, 1, 4, 3), "1 out of 3 new replicas have been updated", false},
		{dep(2, 2, 3, 4, 3), "1 old replicas are pending termination", false},
		{dep(2, 2, 3, 3, 2), "2 of 3 updated replicas are available", false},
		{dep(2, 2, 3, 3, 3), `deployment "api" successfully rolled out`, true},
	}
	for _, tc := range tests {
		got, done := rolloutLine(tc.d, 3)
		if !strings.Contains(got, tc.want) || done != tc.done {
			t.Errorf("%+v: %q, %v; want %q, %v", tc.d.Status, got, done, tc.want, tc.done)
		}
	}
}

func TestRetarget(t *testing.T) {
	target := upgrade.Target{Release: "v2", Revision: "v2@public_02", VersionSchema: "public_02",
		Workload: upgrade.Workload{Name: "api", Kube: &upgrade.KubeWorkload{Image: "reg/catalog:v2"}}}
	tpl := func(containers ...string) *corev1.PodTemplateSpec {
		var cs []corev1.Container
		for _, c := range containers {
			cs = append(cs, corev1.Container{Name: c, Image: "reg/catalog:v1",
				Env: []corev1.EnvVar{{Name: "DATABASE_URL", Value: "x"}, {Name: EnvAppVersion, Value: "v1"}}})
		}
		return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: cs}}
	}
	t.Run("one container", func(t *testing.T) {
		p := tpl("app")
		changed, err := retarget(ref{ns: "shop", name: "api"}, p, target)
		if err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		c := p.Spec.Containers[0]
		if c.Image != "reg/catalog:v2" || len(c.Env) != 3 || c.Env[1].Value != "v2" || c.Env[2].Name != EnvVersionSchema || c.Env[2].Value != "public_02" {
			t.Errorf("container %+v", c)
		}
		if p.Annotations[AnnRevision] != "v2@public_02" || p.Annotations[AnnRelease] != "v2" {
			t.Errorf("annotations %v", p.Annotations)
		}
		if changed, _ := retarget(ref{ns: "shop", name: "api"}, p, target); changed {
			t.Error("a second retarget changed the template: a resumed roll would start another rollout")
		}
	})
	t.Run("named container among several", func(t *testing.T) {
		p := tpl("proxy", "app")
		if _, err := retarget(ref{ns: "shop", name: "api", container: "app"}, p, target); err != nil {
			t.Fatal(err)
		}
		if p.Spec.Containers[0].Image != "reg/catalog:v1" || p.Spec.Containers[1].Image != "reg/catalog:v2" {
			t.Errorf("images %s, %s", p.Spec.Containers[0].Image, p.Spec.Containers[1].Image)
		}
	})
	for _, tc := range []struct {
		name, container, want string
	}{
		{"several, none named", "", "has containers proxy, app: name the release's in workloads[].kube.container"},
		{"named one missing", "web", `has no container "web" (it has proxy, app)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := retarget(ref{ns: "shop", name: "api", container: tc.container}, tpl("proxy", "app"), target)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shop/api") {
				t.Errorf("%v, want %q naming shop/api", err, tc.want)
			}
		})
	}
}

func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n# empty\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n")
	write("b.json", `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}}`)
	write("notes.txt", "not a manifest")
	objs, err := ReadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	if strings.Join(kinds, " ") != "ConfigMap Deployment Service" {
		t.Errorf("kinds %v", kinds)
	}
	write("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n---\nkind: Secret\n")
	if _, err := ReadManifests(dir); err == nil || !strings.Contains(err.Error(), "c.yaml: document 2: not a Kubernetes object") {
		t.Errorf("%v, want the file and the document named", err)
	}
	if _, err := ReadManifests(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no manifest") {
		t.Errorf("empty dir: %v", err)
	}
}
