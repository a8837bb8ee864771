//go:build kube

package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tandem-pg/tandem/internal/kubetest"
	"github.com/tandem-pg/tandem/internal/pgtest"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

// tandem runs the tandem binary with args against the test cluster and database, and
// returns its output and exit code.
func (e *kenv) tandem(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	return e.tandemLines(ctx, nil, args...)
}

// tandemLines is tandem that also calls onLine, when set, with each line of the
// process's stderr as it is written, while the process runs.
func (e *kenv) tandemLines(ctx context.Context, onLine func(string), args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.CommandContext(ctx, e.c.TandemBinary(e.t), args...)
	cmd.Env = append(os.Environ(), "TANDEM_POSTGRES_URL="+e.url, "KUBECONFIG="+e.c.Kubeconfig)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if onLine != nil {
		cmd.Stderr = &lineWriter{buf: &errb, onLine: onLine}
	}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		e.t.Fatalf("tandem %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// lineWriter keeps what is written in buf and calls onLine with each complete line.
type lineWriter struct {
	buf     *bytes.Buffer
	onLine  func(string)
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.onLine(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}

// kubeReleaseDir rewrites release v's tandem.yaml as a kube release of one workload, api,
// the Deployment "catalog" in the test's namespace (what release does in memory), and
// returns the release's directory.
func (e *kenv) kubeReleaseDir(v string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, "releases", v)
	file := filepath.Join(dir, "tandem.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		e.t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(data), "\nworkloads:")
	if !ok {
		e.t.Fatalf("%s has no workloads", file)
	}
	y := head + fmt.Sprintf(`
backend: kube
timeouts: {old-gone: 2m, ready: 2m}
workloads:
  - name: api
    role: api
    order: 1
    kube: {namespace: %s, deployment: catalog, container: catalog, image: %s:%s}
`, e.ns, kubetest.CatalogImage, v)
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

// status reads the app's newest upgrade as `tandem upgrade status --json` prints it.
func (e *kenv) status(ctx context.Context) *upgrade.StatusReport {
	e.t.Helper()
	out, errOut, code := e.tandem(ctx, "upgrade", "status", "--app", "catalog", "--json")
	if code != 0 {
		e.t.Fatalf("tandem upgrade status: exit %d: %s", code, errOut)
	}
	var st upgrade.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("tandem upgrade status --json: %v\n%s", err, out)
	}
	return &st
}

// TestKillNineMidRollResumes kills the `tandem upgrade apply` process with SIGKILL once
// the first v2 pod is in the registry, in the middle of the roll; `tandem upgrade resume`
// in a new process finishes: every pod is v2, contract began after the last v1 pod was
// deleted, and status says done with its steps in order.
func TestKillNineMidRollResumes(t *testing.T) {
	e := newKenv(t)
	e.install(3)
	ctx := context.Background()
	pw := e.watchPods()
	dir := e.kubeReleaseDir("v2")
	cmd := exec.Command(e.c.TandemBinary(t), "upgrade", "apply", dir)
	cmd.Env = append(os.Environ(), "TANDEM_POSTGRES_URL="+e.url, "KUBECONFIG="+e.c.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for killed := false; !killed; {
		select {
		case err := <-exited:
			t.Fatalf("tandem upgrade apply ended (%v) before a v2 pod registered:\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		for _, in := range e.registry() {
			if in.AppVersion == "v2" {
				killed = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no v2 pod registered within 3 minutes:\n%s", out.String())
		}
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(exit.Error(), "killed") {
		t.Fatalf("tandem upgrade apply was not killed: %v\n%s", err, out.String())
	}
	st := e.status(ctx)
	if st.Upgrade == nil || st.Upgrade.Status != upgrade.StatusRunning || st.Upgrade.Step != upgrade.StepRollPrefix+"api" {
		t.Fatalf("after kill -9: %+v, want running in roll/api", st.Upgrade)
	}
	mixed := e.podsByRevision()
	t.Logf("pods when killed: %v", mixed)

	// The pods as the resume's contract begins: its step line, printed before the step
	// runs, is read as it comes.
	var atContract map[string]string
	var atContractErr error
	stdout, stderr, code := e.tandemLines(ctx, func(line string) {
		if atContract == nil && atContractErr == nil && strings.HasSuffix(line, "▸ "+upgrade.StepContract) {
			atContract, atContractErr = e.podsNow()
		}
	}, "upgrade", "resume", dir)
	if code != 0 {
		t.Fatalf("tandem upgrade resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st = e.status(ctx)
	rec := st.Upgrade
	if rec.Status != upgrade.StatusDone {
		t.Fatalf("status after resume: %s at %s", rec.Status, rec.Step)
	}
	e.waitRegistry(rec.NewVersionSchema, "v2", 3)
	got := e.podsByRevision()
	if got[upgrade.Revision("v2", rec.NewVersionSchema)] != 3 || len(got) != 1 {
		t.Errorf("pods after resume: %v, want 3 of v2 only", got)
	}
	if d := e.deploymentNow(); d.Spec.Paused || d.Annotations[kube.AnnPausedBy] != "" {
		t.Errorf("the deployment is left paused: %v", d.Annotations)
	}
	v1rev := upgrade.Revision("v1", rec.OldVersionSchema)
	lastGone, n := pw.lastGone(v1rev)
	contract := eventAt(rec, upgrade.StepContract, "begins")
	if n != 3 || lastGone.IsZero() || contract.IsZero() {
		t.Errorf("%d v1 pods, the last deleted at %v; contract began at %v: want 3, all deleted, and a contract", n, lastGone, contract)
	}
	switch {
	case atContractErr != nil:
		t.Fatal(atContractErr)
	case atContract == nil:
		t.Errorf("tandem upgrade resume printed no line for the contract step:\n%s", stderr)
	case len(podsOf(atContract, v1rev)) > 0:
		t.Errorf("contract began at %s while v1 pods %v still existed", contract.Format("15:04:05.000"), podsOf(atContract, v1rev))
	}
	// The listing above is taken as the step line is read, a moment after the step began;
	// the watch's time of the last deletion is a second guard. A watch event may arrive
	// late on a busy machine, so it only fails when the gap is too wide for that.
	if late := lastGone.Sub(contract); late > 2*time.Second {
		t.Errorf("the last v1 pod was deleted at %s, %v after contract began at %s",
			lastGone.Format("15:04:05.000"), late, contract.Format("15:04:05.000"))
	}
	// The status is consistent: each step done once, in the order of the steps.
	var done []string
	for _, ev := range rec.Events {
		if ev.What == "done" {
			done = append(done, ev.Step)
		}
	}
	if !isSubsequence(done, st.Steps) || !slices.Contains(done, upgrade.StepContract) {
		t.Errorf("steps done %v, want in the order of %v and contract among them", done, st.Steps)
	}
	for _, w := range st.Workloads {
		for _, in := range w.Instances {
			if in.Revision != upgrade.Revision("v2", rec.NewVersionSchema) {
				t.Errorf("status shows %s of revision %s", in.Name, in.Revision)
			}
		}
	}
}

// isSubsequence reports whether every element of sub appears in seq, once each, in
// seq's order.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// plainDeployment is a Deployment that tandem check should pass (2 replicas, readiness
// probe, preStop 7 s, grace 30 s, a declared shutdown), edited by edit. Its image is
// never pulled: the pods never start, the check reads the spec only.
func plainDeployment(name string, edit func(*appsv1.Deployment)) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	replicas, grace := int32(2), int64(30)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{check.AnnotationShutdownTimeout: "10s"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "app", Image: "localhost/tandem/absent:v1", ImagePullPolicy: corev1.PullNever,
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}}},
						Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 7}}},
					}},
				},
			},
		},
	}
	if edit != nil {
		edit(d)
	}
	return d
}

// rwoClaim creates a ReadWriteOnce claim (never bound: no provisioner) and mounts it in d.
func (e *kenv) rwoClaim(name string) func(*appsv1.Deployment) {
	e.t.Helper()
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	if _, err := e.c.Client.CoreV1().PersistentVolumeClaims(e.ns).Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data",
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}})
		c := &d.Spec.Template.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	}
}

// TestCheckCluster runs `tandem check --cluster` against the real API server: a
// namespace with a good Deployment, one without a readiness probe and one mounting a
// ReadWriteOnce claim under RollingUpdate exits 1 with exactly those two findings at
// error level; once the bad ones are gone it exits 0; an unreadable kubeconfig exits 2.
func TestCheckCluster(t *testing.T) {
	e := newKenv(t)
	ctx := context.Background()
	deps := e.c.Client.AppsV1().Deployments(e.ns)
	for _, d := range []*appsv1.Deployment{
		plainDeployment("good", nil),
		plainDeployment("noprobe", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].ReadinessProbe = nil }),
		plainDeployment("rwo", e.rwoClaim("data")),
	} {
		if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		Findings []check.Finding `json:"findings"`
		Errors   int             `json:"errors"`
	}
	run := func(args ...string) (result, int, string) {
		t.Helper()
		out, errOut, code := e.tandem(ctx, append([]string{"check", "--cluster", "-n", e.ns, "--json"}, args...)...)
		var r result
		if code != 2 {
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("tandem check --json: %v\n%s\n%s", err, out, errOut)
			}
		}
		return r, code, errOut
	}
	r, code, _ := run()
	errorsBy := map[string][]string{} // object -> rules at error level
	for _, f := range r.Findings {
		if f.Severity == check.SeverityError {
			errorsBy[f.Object] = append(errorsBy[f.Object], f.Rule)
		}
	}
	want := map[string][]string{
		"Deployment/" + e.ns + "/noprobe": {check.RuleReadinessProbe},
		"Deployment/" + e.ns + "/rwo":     {check.RuleRWOVolume},
	}
	if code != 1 || fmt.Sprint(errorsBy) != fmt.Sprint(want) || r.Errors != 2 {
		t.Errorf("exit %d, errors %d by object %v; want exit 1 and %v", code, r.Errors, errorsBy, want)
	}
	for _, name := range []string{"noprobe", "rwo"} {
		if err := deps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, code, errOut := run(); code != 0 || r.Errors != 0 {
		t.Errorf("the good Deployment alone: exit %d, %d errors %v (%s)", code, r.Errors, r.Findings, errOut)
	}
	if _, code, errOut := run("--kubeconfig", filepath.Join(e.dir, "absent.kubeconfig")); code != 2 || !strings.Contains(errOut, "absent.kubeconfig") {
		t.Errorf("a missing kubeconfig: exit %d, %q; want 2 naming the file", code, errOut)
	}
}

// TestPreflightRefusesRWO installs v1 on the Deployment, then has it mount a
// ReadWriteOnce claim under RollingUpdate with 2 replicas: `tandem upgrade plan` and
// `tandem upgrade apply` v2 exit 1 naming the rule, the pod template is as it was, and
// no upgrade to v2 began (no record, no migration).
func TestPreflightRefusesRWO(t *testing.T) {
	e := newKenv(t)
	ctx := context.Background()
	e.deployment(0)
	rel := e.release("v1")
	u, _ := e.upgrader(rel, upgrade.Options{})
	if _, err := u.Apply(ctx, rel); err != nil {
		t.Fatalf("install v1: %v", err)
	}
	mount := e.rwoClaim("data")
	e.updateDeployment(func(d *appsv1.Deployment) {
		mount(d)
		two := int32(2)
		d.Spec.Replicas = &two
	})
	before := e.deploymentNow()
	dir := e.kubeReleaseDir("v2")
	for _, verb := range []string{"plan", "apply"} {
		out, errOut, code := e.tandem(ctx, "upgrade", verb, dir)
		if code != 1 || !strings.Contains(out+errOut, "["+check.RuleRWOVolume+"]") || !strings.Contains(out+errOut, "data") {
			t.Errorf("tandem upgrade %s: exit %d, want 1 naming the rule %s and the claim:\n%s\n%s", verb, code, check.RuleRWOVolume, out, errOut)
		}
	}
	after := e.deploymentNow()
	a, _ := json.Marshal(before.Spec.Template)
	b, _ := json.Marshal(after.Spec.Template)
	if string(a) != string(b) || after.Generation != before.Generation || after.Spec.Paused {
		t.Errorf("the Deployment changed: generation %d -> %d, paused %v\n%s\n%s", before.Generation, after.Generation, after.Spec.Paused, a, b)
	}
	st := e.status(ctx)
	if st.Upgrade == nil || st.Upgrade.To != "v1" || st.Upgrade.Status != upgrade.StatusDone {
		t.Errorf("newest upgrade %+v, want v1's, done: no upgrade to v2 began", st.Upgrade)
	}
	v2 := e.release("v2").VersionSchema
	var pending int
	if err := pgtest.NewPool(t, e.url).QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, v2).Scan(&pending); v2 == "" || err != nil || pending != 0 {
		t.Errorf("v2's version schema %q exists (%d, %v): a migration began", v2, pending, err)
	}
	// Fixed as tandem check says (Recreate, or a ReadWriteMany claim), the plan passes.
	patch := `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(ctx, "catalog", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, _ := e.tandem(ctx, "upgrade", "plan", dir); strings.Contains(out+errOut, check.RuleRWOVolume) {
		t.Errorf("after the fix the plan still names %s:\n%s\n%s", check.RuleRWOVolume, out, errOut)
	}
}
