//go:build kube

package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/kubetest"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// kenv is one test's cluster namespace, database and releases.
type kenv struct {
	t       *testing.T
	c       *kubetest.Cluster
	ns      string
	url     string // the database, from this process
	podURL  string // the same, from the pods
	dir     string
	grace   int64
	preStop int32
	pool    *pgxpool.Pool
	mu      sync.Mutex
	lines   []string // progress lines and events, in order
}

func newKenv(t *testing.T) *kenv {
	t.Helper()
	c := kubetest.Require(t)
	e := &kenv{t: t, c: c, ns: c.NewNamespace(t), dir: t.TempDir(), grace: 15, preStop: 2}
	e.url, e.podURL = c.NewDatabase(t)
	if err := os.CopyFS(filepath.Join(e.dir, "releases"), catalog.ReleaseFiles); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pods of %s:\n%s", e.ns, c.Logs(e.ns))
		}
	})
	return e
}

// release reads release v of the example as a kube release of one workload, api, the
// Deployment "catalog" in the test's namespace.
func (e *kenv) release(v string) *upgrade.Release {
	e.t.Helper()
	rel, err := upgrade.ReadRelease(filepath.Join(e.dir, "releases", v))
	if err != nil {
		e.t.Fatal(err)
	}
	rel.Backend = "kube"
	rel.Workloads = []upgrade.Workload{{Name: "api", Role: "api", Order: 1,
		Kube: &upgrade.KubeWorkload{Namespace: e.ns, Deployment: "catalog", Container: "catalog", Image: kubetest.CatalogImage + ":" + v}}}
	rel.Timeouts.OldGone.Duration = 2 * time.Minute
	rel.Timeouts.Ready.Duration = 2 * time.Minute
	return rel
}

// deployment creates the Deployment "catalog" running image v1 with replicas pods: a
// readiness probe, a preStop sleep, and the app told its versions by the environment
// the backend writes.
func (e *kenv) deployment(replicas int32) {
	e.t.Helper()
	labels := map[string]string{"app": "catalog"}
	one := intstr.FromInt32(1)
	zero := intstr.FromInt32(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}},
			Template: corev1.PodTemplateSpec{
				// The upgrade's preflight runs tandem check on this Deployment: the app
				// declares its shutdown; no router follows these pods, so the short
				// preStop is silenced.
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					check.AnnotationShutdownTimeout: "5s", check.AnnotationIgnore: check.RuleDrainDelay}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &e.grace,
					Containers: []corev1.Container{{
						Name: "catalog", Image: kubetest.CatalogImage + ":v1", ImagePullPolicy: corev1.PullNever,
						Args: []string{"--listen", "0.0.0.0:8080", "--postgres-url", "$(DATABASE_URL)", "--role", "api",
							"--release", "$(TANDEM_APP_VERSION)", "--app-version", "$(TANDEM_APP_VERSION)",
							"--version-schema", "$(TANDEM_VERSION_SCHEMA)", "--drain-delay", "1s", "--shutdown-timeout", "5s"},
						Env: []corev1.EnvVar{{Name: "DATABASE_URL", Value: e.podURL},
							{Name: kube.EnvAppVersion, Value: "v1"}, {Name: kube.EnvVersionSchema, Value: "none"}},
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1, FailureThreshold: 1},
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: int64(e.preStop)}}},
					}},
				},
			},
		},
	}
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *kenv) log(s string) {
	e.mu.Lock()
	e.lines = append(e.lines, time.Now().Format("15:04:05.000")+" "+s)
	e.mu.Unlock()
}

func (e *kenv) backend() *kube.Backend {
	e.t.Helper()
	be, err := kube.New(kube.Options{Config: e.c.Config, Namespace: e.ns, PollInterval: 100 * time.Millisecond,
		ReadyTimeout: 2 * time.Minute, OnEvent: func(s string) { e.log("backend: " + s) }})
	if err != nil {
		e.t.Fatal(err)
	}
	return be
}

// upgrader opens an Upgrader over a new backend (a new tandem process), posting each
// event on the Deployment as the CLI does.
func (e *kenv) upgrader(rel *upgrade.Release, opts upgrade.Options) (*upgrade.Upgrader, *kube.Backend) {
	e.t.Helper()
	be := e.backend()
	opts.PostgresURL, opts.PollInterval, opts.Backend = e.url, 100*time.Millisecond, be
	onEvent := opts.OnEvent
	opts.OnEvent = func(ev upgrade.Event) {
		e.log(fmt.Sprintf("event %s: %s", ev.Step, ev.What))
		be.StepEvent(context.Background(), rel, ev)
		if onEvent != nil {
			onEvent(ev)
		}
	}
	onProgress := opts.OnProgress
	opts.OnProgress = func(step, line string) {
		e.log(fmt.Sprintf("progress %s: %s", step, line))
		if onProgress != nil {
			onProgress(step, line)
		}
	}
	u, err := upgrade.Open(context.Background(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(u.Close)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.mu.Lock()
			e.t.Logf("timeline:\n%s", strings.Join(e.lines, "\n"))
			e.mu.Unlock()
		}
	})
	return u, be
}

// install installs v1 on a Deployment of 0 replicas, then scales it to replicas and
// waits until the registry shows them ready.
func (e *kenv) install(replicas int32) {
	e.t.Helper()
	ctx := context.Background()
	e.deployment(0)
	rel := e.release("v1")
	u, _ := e.upgrader(rel, upgrade.Options{})
	rec, err := u.Apply(ctx, rel)
	if err != nil {
		e.t.Fatalf("install v1: %v", err)
	}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(ctx, "catalog", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitRegistry(rec.NewVersionSchema, "v1", int(replicas))
}

// registry returns the registry's live instances of the app.
func (e *kenv) registry() []lifecycle.Instance {
	e.t.Helper()
	if e.pool == nil {
		e.pool = pgtest.NewPool(e.t, e.url)
	}
	reg := &lifecycle.Registry{DB: e.pool, Schema: "tandem", TTL: 30 * time.Second}
	all, err := reg.Instances(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return all
}

// waitRegistry waits until the registry shows exactly n ready instances, all of
// release on versionSchema.
func (e *kenv) waitRegistry(versionSchema, release string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		all := e.registry()
		ok := 0
		for _, in := range all {
			if in.AppVersion == release && in.SchemaVersion == versionSchema && in.State == lifecycle.StateReady {
				ok++
			}
		}
		if ok == n && len(all) == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("registry: want %d ready instances of %s on %s, have %+v", n, release, versionSchema, all)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podWatch records when each pod of the namespace was deleted for good, by its
// revision annotation.
type podWatch struct {
	mu      sync.Mutex
	deleted map[string]time.Time // pod -> when it was gone
	rev     map[string]string    // pod -> revision
	stop    func()
}

func (e *kenv) watchPods() *podWatch {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.c.Client.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	pw := &podWatch{deleted: map[string]time.Time{}, rev: map[string]string{}, stop: cancel}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			pw.mu.Lock()
			pw.rev[p.Name] = p.Annotations[kube.AnnRevision]
			if ev.Type == watch.Deleted {
				pw.deleted[p.Name] = time.Now()
			}
			pw.mu.Unlock()
		}
	}()
	e.t.Cleanup(cancel)
	return pw
}

// lastGone is when the last pod of revision rev was deleted, and how many there were.
func (pw *podWatch) lastGone(rev string) (time.Time, int) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var last time.Time
	n := 0
	for p, r := range pw.rev {
		if r != rev {
			continue
		}
		n++
		if d := pw.deleted[p]; d.After(last) {
			last = d
		}
	}
	return last, n
}

// podsNow returns the revision of each pod of the namespace, by name, terminating ones
// included: what the API server holds at this moment. Called when contract begins, it
// tells exactly whether an old pod was still there; a watch's receipt time for the last
// deletion, compared with the contract's timestamp, can be late by the time the watch
// takes to deliver it, which a busy machine stretches past the few milliseconds between
// the two.
func (e *kenv) podsNow() (map[string]string, error) {
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", e.ns, err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		out[p.Name] = p.Annotations[kube.AnnRevision]
	}
	return out, nil
}

// podsOf returns the names of the pods of revision rev in pods (as podsNow returns them).
func podsOf(pods map[string]string, rev string) []string {
	var out []string
	for name, r := range pods {
		if r == rev {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func eventAt(rec *upgrade.Record, step, what string) time.Time {
	for _, ev := range rec.Events {
		if ev.Step == step && strings.Contains(ev.What, what) {
			return ev.At
		}
	}
	return time.Time{}
}

func (e *kenv) deploymentNow() *appsv1.Deployment {
	e.t.Helper()
	d, err := e.c.Client.AppsV1().Deployments(e.ns).Get(context.Background(), "catalog", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// updateDeployment changes the catalog Deployment with change, on a fresh read and
// again on a conflict: the deployment controller writes its status concurrently.
func (e *kenv) updateDeployment(change func(*appsv1.Deployment)) {
	e.t.Helper()
	deps := e.c.Client.AppsV1().Deployments(e.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deps.Get(context.Background(), "catalog", metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = deps.Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("update deployment catalog: %v", err)
	}
}

// TestUpgradeWaitsForTheLastOldPod upgrades a 3-replica Deployment v1 -> v2 and checks
// that contract began only after the last v1 pod, terminating ones included, was
// deleted, and after the registry showed no v1 instance; and that the roll itself was
// done (what `kubectl rollout status` reports) while v1 pods still existed.
func TestUpgradeWaitsForTheLastOldPod(t *testing.T) {
	e := newKenv(t)
	e.install(3)
	ctx := context.Background()
	rel := e.release("v2")
	var regEmptyAt time.Time
	var atContract map[string]string // the pods when contract began
	var atContractErr error
	var sawTerminating, sawGroups bool
	var mu sync.Mutex
	u, be := e.upgrader(rel, upgrade.Options{OnProgress: func(step, line string) {
		if step == upgrade.StepWaitOldGone && strings.Contains(line, "terminating: grace period") {
			mu.Lock()
			sawTerminating = true
			mu.Unlock()
		}
	}, OnEvent: func(ev upgrade.Event) {
		if strings.HasPrefix(ev.What, "registry: no instance of another version") {
			regEmptyAt = ev.At
		}
		if ev.Step == upgrade.StepContract && ev.What == "begins" {
			// Called before the step runs: the pods as contract begins.
			atContract, atContractErr = e.podsNow()
		}
	}})
	pw := e.watchPods()
	// Status while the upgrade runs: pods per ReplicaSet.
	stopStatus := make(chan struct{})
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		for {
			select {
			case <-stopStatus:
				return
			case <-time.After(500 * time.Millisecond):
			}
			ins, err := be.Instances(ctx, upgrade.Target{Workload: rel.Workloads[0]})
			if err != nil {
				continue
			}
			groups := map[string]bool{}
			for _, in := range ins {
				groups[in.Group] = true
			}
			if len(groups) >= 2 {
				mu.Lock()
				sawGroups = true
				mu.Unlock()
			}
		}
	}()
	rec, err := u.Apply(ctx, rel)
	close(stopStatus)
	<-statusDone
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != upgrade.StatusDone {
		t.Fatalf("status %s", rec.Status)
	}
	v1rev := upgrade.Revision("v1", rec.OldVersionSchema)
	lastGone, n := pw.lastGone(v1rev)
	if n != 3 || lastGone.IsZero() {
		t.Fatalf("saw %d v1 pods, the last deleted at %v; want 3, all deleted", n, lastGone)
	}
	rolled := eventAt(rec, "roll/api", "done")
	contract := eventAt(rec, upgrade.StepContract, "begins")
	switch {
	case atContractErr != nil:
		t.Fatal(atContractErr)
	case atContract == nil:
		t.Error("contract never began")
	case len(podsOf(atContract, v1rev)) > 0:
		t.Errorf("contract began at %s while v1 pods %v still existed", contract.Format("15:04:05.000"), podsOf(atContract, v1rev))
	}
	if regEmptyAt.IsZero() || contract.Before(regEmptyAt) {
		t.Errorf("contract began at %s; the registry was empty of v1 at %v", contract.Format("15:04:05.000"), regEmptyAt)
	}
	if !lastGone.After(rolled) {
		t.Errorf("the roll was done at %s, after the last v1 pod was gone (%s): the wait was not put to the test",
			rolled.Format("15:04:05.000"), lastGone.Format("15:04:05.000"))
	}
	t.Logf("roll done %s; last v1 pod gone %s (+%s); contract began %s", rolled.Format("15:04:05.000"),
		lastGone.Format("15:04:05.000"), lastGone.Sub(rolled).Round(time.Millisecond), contract.Format("15:04:05.000"))
	mu.Lock()
	if !sawTerminating {
		t.Error("the wait never named a terminating pod and its grace period")
	}
	if !sawGroups {
		t.Error("Instances never showed the pods of two ReplicaSets")
	}
	mu.Unlock()
	e.waitRegistry(rec.NewVersionSchema, "v2", 3)
	d := e.deploymentNow()
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != kubetest.CatalogImage+":v2" || d.Spec.Template.Annotations[kube.AnnRevision] != upgrade.Revision("v2", rec.NewVersionSchema) || d.Spec.Paused {
		t.Errorf("deployment: image %s, annotations %v, paused %v", c.Image, d.Spec.Template.Annotations, d.Spec.Paused)
	}
	// Events on the Deployment: the backend's and one per step.
	evs, err := e.c.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=catalog"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, ev := range evs.Items {
		if ev.Source.Component == "tandem" {
			reasons[ev.Reason]++
		}
	}
	for _, want := range []string{"Roll", "PodAccepted", "RolledOut", "UpgradeStep"} {
		if reasons[want] == 0 {
			t.Errorf("no %s event on the deployment: %v", want, reasons)
		}
	}
	if reasons["PodAccepted"] < 3 {
		t.Errorf("%d PodAccepted events, want 3 (one per new pod)", reasons["PodAccepted"])
	}
}

// TestStuckPodHoldsContract holds one v1 pod with a finalizer: the upgrade stops at
// wait-old-gone naming the pod and its finalizer, contract does not run, and resume
// finishes once the finalizer is removed.
func TestStuckPodHoldsContract(t *testing.T) {
	e := newKenv(t)
	e.install(2)
	ctx := context.Background()
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v", err)
	}
	stuck := pods.Items[0].Name
	const fin = "tandem.dev/test-hold"
	patch := fmt.Sprintf(`{"metadata":{"finalizers":[%q]}}`, fin)
	if _, err := e.c.Client.CoreV1().Pods(e.ns).Patch(ctx, stuck, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rel := e.release("v2")
	rel.Timeouts.OldGone.Duration = 30 * time.Second
	u, _ := e.upgrader(rel, upgrade.Options{})
	rec, err := u.Apply(ctx, rel)
	if err == nil {
		t.Fatal("the upgrade finished with a pod stuck terminating")
	}
	if rec.Step != upgrade.StepWaitOldGone {
		t.Fatalf("stopped at %s, want %s: %v", rec.Step, upgrade.StepWaitOldGone, err)
	}
	for _, want := range []string{stuck, fin, "terminating"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	if !eventAt(rec, upgrade.StepContract, "begins").IsZero() {
		t.Error("contract began")
	}
	// Its owner lets it go; resume finishes.
	if _, err := e.c.Client.CoreV1().Pods(e.ns).Patch(ctx, stuck, types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	u2, _ := e.upgrader(rel, upgrade.Options{})
	rec, err = u2.Resume(ctx, rel.App)
	if err != nil || rec.Status != upgrade.StatusDone {
		t.Fatalf("resume: %v (%v)", err, rec)
	}
}

// rollUntil runs Apply(v2) and cancels it, as a kill would stop it, once n new pods are
// accepted by the gate. It returns the record as the database has it.
func (e *kenv) rollUntil(rel *upgrade.Release, n int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := fmt.Sprintf("[%d of", n)
	u, _ := e.upgrader(rel, upgrade.Options{OnProgress: func(step, line string) {
		if strings.HasPrefix(step, upgrade.StepRollPrefix) && strings.Contains(line, want) {
			cancel()
		}
	}})
	rec, err := u.Apply(ctx, rel)
	if err == nil {
		e.t.Fatalf("the upgrade finished before it was stopped: %+v", rec)
	}
	if rec == nil || rec.Step != upgrade.StepRollPrefix+"api" {
		e.t.Fatalf("stopped with %v at %+v, want in the roll", err, rec)
	}
}

// podsByRevision counts the namespace's pods that are not terminating, by revision.
func (e *kenv) podsByRevision() map[string]int {
	e.t.Helper()
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Annotations[kube.AnnRevision]]++
		}
	}
	return out
}

// TestKilledMidRollResumes stops tandem in the middle of the roll, after the first new
// pod was accepted; a new process resumes and finishes the upgrade.
func TestKilledMidRollResumes(t *testing.T) {
	e := newKenv(t)
	e.install(3)
	rel := e.release("v2")
	e.rollUntil(rel, 1)
	mixed := e.podsByRevision()
	if len(mixed) < 2 {
		t.Logf("pods when stopped: %v (expected v1 and v2 side by side)", mixed)
	}
	u, _ := e.upgrader(rel, upgrade.Options{})
	rec, err := u.Resume(context.Background(), rel.App)
	if err != nil || rec.Status != upgrade.StatusDone {
		t.Fatalf("resume: %v", err)
	}
	e.waitRegistry(rec.NewVersionSchema, "v2", 3)
	got := e.podsByRevision()
	if got[upgrade.Revision("v2", rec.NewVersionSchema)] != 3 || len(got) != 1 {
		t.Errorf("pods after resume: %v, want 3 of v2 only", got)
	}
	if d := e.deploymentNow(); d.Spec.Paused || d.Annotations[kube.AnnPausedBy] != "" {
		t.Errorf("the deployment is left paused: %v", d.Annotations)
	}
}

// TestAbortMidRollRestoresTemplate stops the roll half way and aborts: the Deployment's
// pod template is the recorded v1 template again, the pods are v1, and the migration
// is rolled back.
func TestAbortMidRollRestoresTemplate(t *testing.T) {
	e := newKenv(t)
	e.install(3)
	before := e.deploymentNow().Spec.Template
	rel := e.release("v2")
	e.rollUntil(rel, 1)
	u, _ := e.upgrader(rel, upgrade.Options{})
	rec, err := u.Abort(context.Background(), rel.App)
	if err != nil || rec.Status != upgrade.StatusAborted {
		t.Fatalf("abort: %v", err)
	}
	after := e.deploymentNow()
	a, _ := json.Marshal(before)
	b, _ := json.Marshal(after.Spec.Template)
	if string(a) != string(b) {
		t.Errorf("template after abort:\n%s\nwant the recorded one:\n%s", b, a)
	}
	if after.Spec.Paused {
		t.Error("the deployment is left paused")
	}
	e.waitRegistry(rec.OldVersionSchema, "v1", 3)
	got := e.podsByRevision()
	if got[upgrade.Revision("v1", rec.OldVersionSchema)] != 3 || len(got) != 1 {
		t.Errorf("pods after abort: %v, want 3 of v1 only", got)
	}
	if !slices.ContainsFunc(rec.Events, func(ev upgrade.Event) bool { return strings.Contains(ev.What, "rolled back migration") }) {
		t.Error("the migration was not rolled back")
	}
}

// documentedRole reads the ServiceAccount, Role and RoleBinding from docs/kube.md: the
// YAML block after the tandem-role marker.
func documentedRole(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "kube.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "<!-- tandem-role -->\n```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/kube.md has no yaml block after <!-- tandem-role -->")
	}
	var out []map[string]any
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(block), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		out = append(out, m)
	}
	if len(out) != 3 {
		t.Fatalf("docs/kube.md's role block holds %d objects, want ServiceAccount, Role, RoleBinding", len(out))
	}
	return out
}

// TestJobWithMinimalRole runs `tandem upgrade apply` v1 -> v2 inside the cluster as a
// Job whose ServiceAccount has exactly the Role docs/kube.md documents.
func TestJobWithMinimalRole(t *testing.T) {
	e := newKenv(t)
	image := e.c.TandemImage(t)
	e.install(2)
	ctx := context.Background()
	// The documented ServiceAccount, Role and RoleBinding, created as they are written.
	for _, m := range documentedRole(t) {
		raw, _ := json.Marshal(m)
		var err error
		switch m["kind"] {
		case "ServiceAccount":
			var o corev1.ServiceAccount
			if err = json.Unmarshal(raw, &o); err == nil {
				_, err = e.c.Client.CoreV1().ServiceAccounts(e.ns).Create(ctx, &o, metav1.CreateOptions{})
			}
		case "Role":
			var o rbacv1.Role
			if err = json.Unmarshal(raw, &o); err == nil {
				_, err = e.c.Client.RbacV1().Roles(e.ns).Create(ctx, &o, metav1.CreateOptions{})
			}
		case "RoleBinding":
			var o rbacv1.RoleBinding
			if err = json.Unmarshal(raw, &o); err == nil {
				_, err = e.c.Client.RbacV1().RoleBindings(e.ns).Create(ctx, &o, metav1.CreateOptions{})
			}
		default:
			t.Fatalf("unexpected kind %v in docs/kube.md's role block", m["kind"])
		}
		if err != nil {
			t.Fatalf("create %v from docs/kube.md: %v", m["kind"], err)
		}
	}
	// The release as the Job sees it: tandem.yaml (no namespace: the pod's own) and the
	// migrations, from a ConfigMap.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "release-v2"}, Data: map[string]string{
		"tandem.yaml": "app: catalog\nversion: v2\ncompatible-from: v1\nmigrations: migrations\nbackend: kube\n" +
			"timeouts: {old-gone: 2m, ready: 2m}\nworkloads:\n  - name: api\n    role: api\n" +
			"    kube: {deployment: catalog, container: catalog, image: " + kubetest.CatalogImage + ":v2}\n",
	}}
	items := []corev1.KeyToPath{{Key: "tandem.yaml", Path: "tandem.yaml"}}
	migs, err := os.ReadDir(filepath.Join(e.dir, "releases", "v2", "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		b, err := os.ReadFile(filepath.Join(e.dir, "releases", "v2", "migrations", m.Name()))
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[m.Name()] = string(b)
		items = append(items, corev1.KeyToPath{Key: m.Name(), Path: "migrations/" + m.Name()})
	}
	if _, err := e.c.Client.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	backoff := int32(0)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "upgrade-v2"},
		Spec: batchv1.JobSpec{BackoffLimit: &backoff, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ServiceAccountName: "tandem", RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "tandem", Image: image, ImagePullPolicy: corev1.PullNever,
				Args: []string{"upgrade", "apply", "/release/tandem.yaml"},
				Env: []corev1.EnvVar{{Name: "TANDEM_POSTGRES_URL", Value: e.podURL},
					// No kube-proxy in the test cluster: the API server's own address.
					{Name: "KUBERNETES_SERVICE_HOST", Value: kubetest.NodeIP}, {Name: "KUBERNETES_SERVICE_PORT", Value: "6443"}},
				VolumeMounts: []corev1.VolumeMount{{Name: "release", MountPath: "/release"}},
			}},
			Volumes: []corev1.Volume{{Name: "release", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "release-v2"}, Items: items}}}},
		}}},
	}
	if _, err := e.c.Client.BatchV1().Jobs(e.ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		j, err := e.c.Client.BatchV1().Jobs(e.ns).Get(ctx, "upgrade-v2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Succeeded > 0 {
			break
		}
		if j.Status.Failed > 0 || time.Now().After(deadline) {
			t.Fatalf("the Job did not succeed (failed %d):\n%s", j.Status.Failed, e.c.Logs(e.ns))
		}
		time.Sleep(time.Second)
	}
	d := e.deploymentNow()
	if img := d.Spec.Template.Spec.Containers[0].Image; img != kubetest.CatalogImage+":v2" {
		t.Errorf("image %s after the Job", img)
	}
	all := e.registry()
	for _, in := range all {
		if in.AppVersion != "v2" {
			t.Errorf("registry after the Job: %+v", in)
		}
	}
	t.Logf("the Job's log:\n%s", e.c.Logs(e.ns))
}
