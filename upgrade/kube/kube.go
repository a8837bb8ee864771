// Package kube is Tandem's Kubernetes backend: a release's workloads are Deployments,
// named in tandem.yaml (workloads[].kube), and a roll patches a Deployment's pod
// template (the image, the environment telling the app its schema version and app
// version, and a revision annotation), then follows the Deployment controller's
// rollout until every new pod is ready AND accepted by the orchestrator's gate (the
// instance registry shows it, by pod name, on the release's schema version).
//
// The Deployment controller does the rolling. The gate is applied with pause: while a
// new pod is ready in Kubernetes' eyes but not yet accepted, the backend pauses the
// Deployment, so that the controller stops no further old pod, and resumes it once the
// pod is accepted. So that the pause lands before the controller counts the pod
// available, the roll raises the Deployment's minReadySeconds to at least
// Options.GateWindow (a spec field, not a template field: changing it starts no
// rollout).
//
// Instances lists the Deployment's pods per ReplicaSet, terminating ones included (a
// pod with a deletionTimestamp is there until it is deleted), with the reason it is
// still there: its grace period, its finalizers. See docs/kube.md.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi"
)

// Annotations and environment variables the backend writes into a pod template.
const (
	// AnnRevision is the revision of a release's pods (upgrade.Revision).
	AnnRevision = "tandem.dev/revision"
	// AnnRelease is the release a pod runs.
	AnnRelease = "tandem.dev/release"
	// AnnVersionSchema is the schema version a pod's code uses.
	AnnVersionSchema = "tandem.dev/version-schema"
	// AnnPausedBy, on a Deployment, says the backend paused it for the gate, and why;
	// the backend resumes only a Deployment it paused.
	AnnPausedBy = "tandem.dev/paused-by"
	// EnvAppVersion tells the app the version to register with.
	EnvAppVersion = "TANDEM_APP_VERSION"
	// EnvVersionSchema tells the app the schema version to pin its connections to.
	EnvVersionSchema = "TANDEM_VERSION_SCHEMA"

	// revisionAnnotation is the Deployment controller's revision of a Deployment and
	// of its ReplicaSets.
	revisionAnnotation = "deployment.kubernetes.io/revision"
	// FieldManager is the field manager of the backend's writes.
	FieldManager = "tandem"
)

// Options configure a Backend.
type Options struct {
	// Config is the API server's configuration (see Config). Required unless Client
	// is set.
	Config *rest.Config
	// Client is the connection to the API server; made from Config when nil.
	Client *kubeapi.Client
	// Namespace is the namespace of workloads that name none [default].
	Namespace string
	// PollInterval is how often a roll looks again [250ms].
	PollInterval time.Duration
	// ReadyTimeout bounds how long a roll may go without progress: no new pod ready
	// and accepted, no old pod stopped [90s].
	ReadyTimeout time.Duration
	// GateWindow is the least minReadySeconds a roll gives the Deployment, so that a
	// pod the gate has not accepted is caught (the Deployment paused) before the
	// controller counts it available [2s].
	GateWindow time.Duration
	// Logger receives a line per action; nil discards them.
	Logger *slog.Logger
	// OnEvent, when set, is called with a line per action.
	OnEvent func(string)
	// ReadOnly looks only (`tandem upgrade status`): nothing is written.
	ReadOnly bool
}

// Backend rolls Deployments. It implements upgrade.Backend.
type Backend struct {
	opts Options
	c    *kubeapi.Client
	log  *slog.Logger
	host string
}

// Config returns the API server's configuration: from kubeconfig (a path; "" means
// $KUBECONFIG, then ~/.kube/config) and context ("" means the current one), or the
// in-cluster configuration when no kubeconfig is found and tandem runs in a pod. It
// also returns the namespace that configuration names (the pod's own in the cluster).
// See kubeapi.Config.
func Config(kubeconfig, kubeContext string) (*rest.Config, string, error) {
	cfg, ns, _, err := kubeapi.Config(kubeconfig, kubeContext)
	return cfg, ns, err
}

// New returns a Backend.
func New(opts Options) (*Backend, error) {
	if opts.Client == nil {
		if opts.Config == nil {
			return nil, errors.New("kube backend: no API server configuration")
		}
		c, err := kubeapi.New(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("kube backend: %w", err)
		}
		opts.Client = c
	}
	b := &Backend{opts: opts, c: opts.Client}
	if b.opts.Namespace == "" {
		b.opts.Namespace = "default"
	}
	if b.opts.PollInterval <= 0 {
		b.opts.PollInterval = 250 * time.Millisecond
	}
	if b.opts.ReadyTimeout <= 0 {
		b.opts.ReadyTimeout = 90 * time.Second
	}
	if b.opts.GateWindow <= 0 {
		b.opts.GateWindow = 2 * time.Second
	}
	b.log = opts.Logger
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.host, _ = os.Hostname()
	return b, nil
}

// Name is "kube".
func (b *Backend) Name() string { return "kube" }

func (b *Backend) event(what string) {
	if b.opts.OnEvent != nil {
		b.opts.OnEvent(what)
		return
	}
	b.log.Info(what)
}

// ref is a workload's Deployment.
type ref struct{ ns, name, container string }

func (r ref) String() string { return r.ns + "/" + r.name }

func (b *Backend) refOf(t upgrade.Target) (ref, error) {
	k := t.Workload.Kube
	if k == nil {
		return ref{}, fmt.Errorf("workload %q has no kube section: name its Deployment in tandem.yaml (workloads[].kube)", t.Workload.Name)
	}
	r := ref{ns: k.Namespace, name: k.Deployment, container: k.Container}
	if r.ns == "" {
		r.ns = b.opts.Namespace
	}
	if r.name == "" {
		r.name = t.Workload.Name
	}
	return r, nil
}

func (b *Backend) deployment(ctx context.Context, r ref) (*appsv1.Deployment, error) {
	d, err := b.c.Deployments(r.ns).Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deployment %s not found: create it (the release's manifests), or correct workloads[].kube in tandem.yaml", r)
	}
	if err != nil {
		return nil, fmt.Errorf("read deployment %s: %w", r, err)
	}
	return d, nil
}

// container returns the index of the workload's container in spec.
func containerIndex(r ref, spec *corev1.PodSpec) (int, error) {
	var names []string
	for i, c := range spec.Containers {
		if c.Name == r.container {
			return i, nil
		}
		names = append(names, c.Name)
	}
	if r.container == "" && len(spec.Containers) == 1 {
		return 0, nil
	}
	if r.container == "" {
		return 0, fmt.Errorf("deployment %s has containers %s: name the release's in workloads[].kube.container", r, strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("deployment %s has no container %q (it has %s): correct workloads[].kube.container", r, r.container, strings.Join(names, ", "))
}

// snapshot is what Snapshot records: the Deployment's pod template, and what it runs.
type snapshot struct {
	Release       string                  `json:"release"`
	VersionSchema string                  `json:"version_schema"`
	Revision      string                  `json:"revision"`
	Deployment    string                  `json:"deployment"`
	Template      *corev1.PodTemplateSpec `json:"template"`
}

// Snapshot records the Deployment's pod template and the release it runs (from the
// template's annotations, else its container's environment).
func (b *Backend) Snapshot(ctx context.Context, t upgrade.Target) (json.RawMessage, error) {
	r, err := b.refOf(t)
	if err != nil {
		return nil, err
	}
	d, err := b.deployment(ctx, r)
	if err != nil {
		return nil, err
	}
	s := snapshot{Deployment: r.String(), Template: d.Spec.Template.DeepCopy(),
		Release: d.Spec.Template.Annotations[AnnRelease], VersionSchema: d.Spec.Template.Annotations[AnnVersionSchema],
		Revision: d.Spec.Template.Annotations[AnnRevision]}
	if i, err := containerIndex(r, &d.Spec.Template.Spec); err == nil {
		for _, e := range d.Spec.Template.Spec.Containers[i].Env {
			switch {
			case e.Name == EnvAppVersion && s.Release == "":
				s.Release = e.Value
			case e.Name == EnvVersionSchema && s.VersionSchema == "":
				s.VersionSchema = e.Value
			}
		}
	}
	return json.Marshal(s)
}

// retarget writes t into a pod template: the image (when given), the environment and
// the annotations. It reports whether anything changed.
func retarget(r ref, tpl *corev1.PodTemplateSpec, t upgrade.Target) (bool, error) {
	before := tpl.DeepCopy()
	i, err := containerIndex(r, &tpl.Spec)
	if err != nil {
		return false, err
	}
	c := &tpl.Spec.Containers[i]
	if t.Workload.Kube != nil && t.Workload.Kube.Image != "" {
		c.Image = t.Workload.Kube.Image
	}
	setEnv(c, EnvAppVersion, t.Release)
	setEnv(c, EnvVersionSchema, t.VersionSchema)
	if tpl.Annotations == nil {
		tpl.Annotations = map[string]string{}
	}
	tpl.Annotations[AnnRevision] = t.Revision
	tpl.Annotations[AnnRelease] = t.Release
	tpl.Annotations[AnnVersionSchema] = t.VersionSchema
	return !apiequality.Semantic.DeepEqual(before, tpl), nil
}

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// Roll rolls the workload's Deployment to t: its pod template is patched (or the
// release's manifests applied), then the rollout is followed (see the package doc). It
// returns once the old ReplicaSets are scaled to zero and every new pod is ready and
// accepted; old pods may still be terminating.
func (b *Backend) Roll(ctx context.Context, t upgrade.Target, gate upgrade.ReadyGate, progress func(string)) error {
	if b.opts.ReadOnly {
		return errors.New("kube backend: opened read-only")
	}
	r, err := b.refOf(t)
	if err != nil {
		return err
	}
	if t.Workload.Kube.Manifests != "" {
		if err := b.applyManifests(ctx, r, t); err != nil {
			return err
		}
	}
	err = b.update(ctx, r, "Roll", fmt.Sprintf("tandem rolls to %s (schema version %s)", t.Release, t.VersionSchema),
		func(d *appsv1.Deployment) (bool, error) {
			changed, err := retarget(r, &d.Spec.Template, t)
			return changed, err
		}, t)
	if err != nil {
		return err
	}
	return b.follow(ctx, r, t, gate, progress)
}

// Restore puts the recorded pod template back, and follows the rollout as Roll does.
// When the snapshot does not say which release the template runs (a Deployment tandem
// never rolled, without TANDEM_APP_VERSION in its environment), the pods are followed
// to readiness without the gate.
func (b *Backend) Restore(ctx context.Context, t upgrade.Target, snap json.RawMessage, gate upgrade.ReadyGate, progress func(string)) error {
	if b.opts.ReadOnly {
		return errors.New("kube backend: opened read-only")
	}
	r, err := b.refOf(t)
	if err != nil {
		return err
	}
	var s snapshot
	if err := json.Unmarshal(snap, &s); err != nil || s.Template == nil {
		return fmt.Errorf("kube backend: the recorded snapshot of deployment %s is unreadable (%v): restore its pod template by hand", r, err)
	}
	if s.Release == "" {
		gate = nil
	}
	err = b.update(ctx, r, "Restore", fmt.Sprintf("tandem restores the pod template recorded before the upgrade (%s)", orUnknown(s.Release)),
		func(d *appsv1.Deployment) (bool, error) {
			if apiequality.Semantic.DeepEqual(d.Spec.Template, *s.Template) {
				return false, nil
			}
			d.Spec.Template = *s.Template.DeepCopy()
			return true, nil
		}, t)
	if err != nil {
		return err
	}
	t.Release, t.Revision, t.VersionSchema = s.Release, s.Revision, s.VersionSchema
	return b.follow(ctx, r, t, gate, progress)
}

func orUnknown(s string) string {
	if s == "" {
		return "release unknown"
	}
	return s
}

// update changes the Deployment with edit, retrying on conflicts: edit's template change,
// the gate window, and no pause of the backend's own (an earlier roll's, interrupted).
func (b *Backend) update(ctx context.Context, r ref, reason, msg string, edit func(*appsv1.Deployment) (bool, error), t upgrade.Target) error {
	var changedTemplate bool
	var after *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := b.deployment(ctx, r)
		if err != nil {
			return err
		}
		changedTemplate, err = edit(d)
		if err != nil {
			return err
		}
		changed := changedTemplate
		if want := b.minReadySeconds(t); d.Spec.MinReadySeconds < want {
			d.Spec.MinReadySeconds = want
			changed = true
		}
		if _, ok := d.Annotations[AnnPausedBy]; ok && d.Spec.Paused {
			d.Spec.Paused = false
			delete(d.Annotations, AnnPausedBy)
			changed = true
		}
		if !changed {
			after = d
			return nil
		}
		after, err = b.c.Deployments(r.ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", r, err)
	}
	if changedTemplate {
		b.record(ctx, after, corev1.EventTypeNormal, reason, msg)
		b.event(fmt.Sprintf("deployment %s: %s", r, msg))
	}
	return nil
}

// minReadySeconds is the least minReadySeconds a roll gives the Deployment: the
// workload's min-ready, and the gate window.
func (b *Backend) minReadySeconds(t upgrade.Target) int32 {
	d := max(t.Workload.MinReady.Duration, b.opts.GateWindow)
	return int32(math.Ceil(d.Seconds()))
}

// follow waits until the Deployment's rollout is complete and every pod of its new
// ReplicaSet is accepted by gate (nil: readiness alone), pausing the Deployment while a
// ready pod waits for the gate.
func (b *Backend) follow(ctx context.Context, r ref, t upgrade.Target, gate upgrade.ReadyGate, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	accepted := map[types.UID]bool{}
	var lastState string
	lastProgress := time.Now()
	var lastLine string
	for {
		d, err := b.deployment(ctx, r)
		if err != nil {
			return err
		}
		st, err := b.observe(ctx, d)
		if err != nil {
			return err
		}
		// The gate, for each new pod Kubernetes calls ready.
		var waiting []string
		for _, p := range st.newPods {
			if accepted[p.UID] || !podReady(p) || p.DeletionTimestamp != nil {
				continue
			}
			if gate == nil {
				accepted[p.UID] = true
				continue
			}
			ok, why, err := gate(ctx, b.instance(t.Workload.Name, st, p))
			if err != nil {
				_ = b.pause(ctx, r, "the gate refused pod "+p.Name+": "+err.Error())
				return fmt.Errorf("pod %s of deployment %s: %w (the deployment is paused, so its old pods keep serving)", p.Name, r, err)
			}
			if !ok {
				waiting = append(waiting, p.Name+": "+why)
				continue
			}
			accepted[p.UID] = true
			b.record(ctx, d, corev1.EventTypeNormal, "PodAccepted", fmt.Sprintf("pod %s is ready and registered as %s on schema version %s", p.Name, t.Release, t.VersionSchema))
		}
		nAccepted := 0
		for _, p := range st.newPods {
			if accepted[p.UID] && podReady(p) && p.DeletionTimestamp == nil {
				nAccepted++
			}
		}
		switch {
		case len(waiting) > 0 && !d.Spec.Paused:
			if err := b.pause(ctx, r, "waiting for the gate: "+strings.Join(waiting, "; ")); err != nil {
				return err
			}
			continue
		case len(waiting) == 0 && d.Spec.Paused && d.Annotations[AnnPausedBy] != "":
			if err := b.resume(ctx, r); err != nil {
				return err
			}
			continue
		}
		if c := condition(d, appsv1.DeploymentProgressing); c != nil && c.Reason == "ProgressDeadlineExceeded" {
			return fmt.Errorf("deployment %s: %s (%s)", r, c.Message, st.newPodProblems())
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		line, done := rolloutLine(d, replicas)
		if gate != nil && st.newRS != nil {
			line += fmt.Sprintf(" [%d of %d new pods accepted by the gate", nAccepted, replicas)
			if len(waiting) > 0 {
				line += "; " + strings.Join(waiting, "; ")
			}
			line += "]"
		}
		if d.Spec.Paused && d.Annotations[AnnPausedBy] == "" {
			line += " (the deployment is paused, not by tandem: `kubectl rollout resume deployment/" + r.name + " -n " + r.ns + "`)"
		}
		if line != lastLine {
			progress(line)
			lastLine = line
		}
		if done && (st.newRS != nil || replicas == 0) && int32(nAccepted) >= replicas && !d.Spec.Paused {
			b.record(ctx, d, corev1.EventTypeNormal, "RolledOut", fmt.Sprintf("every pod runs %s and is accepted; old pods drain", orUnknown(t.Release)))
			b.event(fmt.Sprintf("deployment %s: successfully rolled out", r))
			return nil
		}
		state := fmt.Sprintf("%d/%d/%d/%d/%d", d.Status.UpdatedReplicas, d.Status.Replicas, d.Status.AvailableReplicas, nAccepted, len(st.newPods))
		if state != lastState {
			lastState, lastProgress = state, time.Now()
		} else if time.Since(lastProgress) > b.opts.ReadyTimeout {
			why := st.newPodProblems()
			if len(waiting) > 0 {
				why = strings.Join(waiting, "; ")
			}
			return fmt.Errorf("deployment %s made no progress for %s: %s; %s (raise timeouts.ready, or fix the pods)",
				r, b.opts.ReadyTimeout, line, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.opts.PollInterval):
		}
	}
}

// rolloutLine is kubectl rollout status's line for the Deployment, and whether the
// rollout is complete.
func rolloutLine(d *appsv1.Deployment, replicas int32) (string, bool) {
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return fmt.Sprintf("Waiting for deployment %q spec update to be observed...", d.Name), false
	case s.UpdatedReplicas < replicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, s.UpdatedReplicas, replicas), false
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, s.Replicas-s.UpdatedReplicas), false
	case s.AvailableReplicas < s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, s.AvailableReplicas, s.UpdatedReplicas), false
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// pause pauses the Deployment for the gate, saying why.
func (b *Backend) pause(ctx context.Context, r ref, why string) error {
	var d *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := b.deployment(ctx, r)
		if err != nil {
			return err
		}
		if cur.Spec.Paused {
			d = nil
			return nil
		}
		cur.Spec.Paused = true
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[AnnPausedBy] = truncate(why, 1000)
		d, err = b.c.Deployments(r.ns).Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("pause deployment %s: %w", r, err)
	}
	if d != nil {
		b.record(ctx, d, corev1.EventTypeNormal, "Paused", "tandem paused the rollout: "+why)
		b.event(fmt.Sprintf("deployment %s paused: %s", r, why))
	}
	return nil
}

// resume resumes a Deployment the backend paused.
func (b *Backend) resume(ctx context.Context, r ref) error {
	var d *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := b.deployment(ctx, r)
		if err != nil {
			return err
		}
		if _, ok := cur.Annotations[AnnPausedBy]; !ok {
			return nil
		}
		cur.Spec.Paused = false
		delete(cur.Annotations, AnnPausedBy)
		d, err = b.c.Deployments(r.ns).Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("resume deployment %s: %w", r, err)
	}
	if d != nil {
		b.record(ctx, d, corev1.EventTypeNormal, "Resumed", "tandem resumed the rollout: the gate accepted every ready pod")
		b.event(fmt.Sprintf("deployment %s resumed", r))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// observed is what a Deployment's ReplicaSets and pods are at one moment.
type observed struct {
	newRS   *appsv1.ReplicaSet
	rs      map[types.UID]*appsv1.ReplicaSet // the Deployment's ReplicaSets
	pods    []corev1.Pod                     // every pod of the Deployment's selector
	newPods []corev1.Pod
}

func (b *Backend) observe(ctx context.Context, d *appsv1.Deployment) (*observed, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s: selector: %w", d.Namespace, d.Name, err)
	}
	if sel.Empty() {
		sel = labels.Nothing()
	}
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	rsl, err := b.c.ReplicaSets(d.Namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list the replicasets of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	st := &observed{rs: map[types.UID]*appsv1.ReplicaSet{}}
	for i := range rsl.Items {
		rs := &rsl.Items[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		st.rs[rs.UID] = rs
		if d.Status.ObservedGeneration >= d.Generation && rs.Annotations[revisionAnnotation] == d.Annotations[revisionAnnotation] &&
			apiequality.Semantic.DeepEqual(withoutHash(rs.Spec.Template), withoutHash(d.Spec.Template)) {
			st.newRS = rs
		}
	}
	pl, err := b.c.Pods(d.Namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list the pods of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	st.pods = pl.Items
	for _, p := range pl.Items {
		if st.newRS != nil && metav1.IsControlledBy(&p, st.newRS) {
			st.newPods = append(st.newPods, p)
		}
	}
	return st, nil
}

// withoutHash is a template without the pod-template-hash label the controller adds.
func withoutHash(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	t = *t.DeepCopy()
	delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(t.Labels) == 0 {
		t.Labels = nil
	}
	return t
}

// newPodProblems says why the new pods are not ready.
func (st *observed) newPodProblems() string {
	var out []string
	for _, p := range st.newPods {
		if podReady(p) {
			continue
		}
		out = append(out, p.Name+": "+podProblem(p))
	}
	if len(out) == 0 {
		return "no new pod is failing"
	}
	return strings.Join(out, "; ")
}

func podProblem(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			return fmt.Sprintf("container %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			return fmt.Sprintf("container %s terminated: %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case !cs.Ready:
			return fmt.Sprintf("container %s running, readiness probe not passing (restarts %d)", cs.Name, cs.RestartCount)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return fmt.Sprintf("%s: %s", c.Type, c.Message)
		}
	}
	return "phase " + string(p.Status.Phase)
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// instance is pod p as the orchestrator sees it.
func (b *Backend) instance(workload string, st *observed, p corev1.Pod) upgrade.Instance {
	in := upgrade.Instance{Name: p.Name, Workload: workload, Release: p.Annotations[AnnRelease], Revision: p.Annotations[AnnRevision],
		Host: p.Name, Since: p.CreationTimestamp.Time, State: upgrade.InstanceStarting}
	if p.Status.PodIP != "" {
		in.Addr = p.Status.PodIP
		if port := firstPort(p); port > 0 {
			in.Addr += ":" + strconv.Itoa(int(port))
		}
	}
	if o := metav1.GetControllerOf(&p); o != nil {
		in.Group = o.Name
	}
	switch {
	case p.DeletionTimestamp != nil:
		in.State = upgrade.InstanceDraining
		in.Reason = terminatingReason(p, time.Now())
	case podReady(p):
		in.State = upgrade.InstanceReady
	}
	return in
}

func firstPort(p corev1.Pod) int32 {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			return port.ContainerPort
		}
	}
	return 0
}

// terminatingReason says why a pod with a deletionTimestamp is still there: its grace
// period, or the finalizers that hold it after its grace period.
func terminatingReason(p corev1.Pod, now time.Time) string {
	end := p.DeletionTimestamp.Time
	grace := int64(0)
	if p.DeletionGracePeriodSeconds != nil {
		grace = *p.DeletionGracePeriodSeconds
	}
	var s string
	if now.Before(end) {
		s = fmt.Sprintf("terminating: grace period of %ds ends in %s (at %s)", grace, end.Sub(now).Round(time.Second), end.UTC().Format(time.TimeOnly))
	} else {
		s = fmt.Sprintf("terminating: grace period of %ds ended %s ago", grace, now.Sub(end).Round(time.Second))
	}
	var running []string
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil {
			running = append(running, cs.Name)
		}
	}
	if len(running) > 0 {
		s += fmt.Sprintf("; containers %s still running", strings.Join(running, ", "))
	}
	if len(p.Finalizers) > 0 {
		s += fmt.Sprintf("; held by finalizers %s: the pod stays until whoever owns them removes them (kubectl patch pod %s -n %s --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]' once it is safe)",
			strings.Join(p.Finalizers, ", "), p.Name, p.Namespace)
	}
	return s
}

// Instances lists the pods of the workload's Deployment, terminating ones included,
// grouped by ReplicaSet (Instance.Group), old ReplicaSets first.
func (b *Backend) Instances(ctx context.Context, t upgrade.Target) ([]upgrade.Instance, error) {
	r, err := b.refOf(t)
	if err != nil {
		return nil, err
	}
	d, err := b.deployment(ctx, r)
	if err != nil {
		return nil, err
	}
	st, err := b.observe(ctx, d)
	if err != nil {
		return nil, err
	}
	rev := func(group string) int {
		for _, rs := range st.rs {
			if rs.Name == group {
				n, _ := strconv.Atoi(rs.Annotations[revisionAnnotation])
				return n
			}
		}
		return -1
	}
	out := make([]upgrade.Instance, 0, len(st.pods))
	for _, p := range st.pods {
		out = append(out, b.instance(t.Workload.Name, st, p))
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rev(out[i].Group), rev(out[j].Group)
		if ri != rj {
			return ri < rj
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// record posts a Kubernetes Event on the Deployment. A failure is logged, not returned:
// events are for people.
func (b *Backend) record(ctx context.Context, d *appsv1.Deployment, typ, reason, msg string) {
	if b.opts.ReadOnly || d == nil {
		return
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.tandem.%x", d.Name, now.UnixNano()), Namespace: d.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: d.Namespace, Name: d.Name,
			UID: d.UID, ResourceVersion: d.ResourceVersion},
		Reason: reason, Message: truncate(msg, 1024), Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, EventTime: metav1.NewMicroTime(now.Time),
		Source:              corev1.EventSource{Component: "tandem"},
		ReportingController: "tandem.dev/upgrade", ReportingInstance: truncate("tandem-"+b.host, 128), Action: reason,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := b.c.Events(d.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		b.log.Warn("record a kubernetes event", "deployment", d.Namespace+"/"+d.Name, "reason", reason, "err", err)
	}
}

// StepEvent posts a Kubernetes Event on the Deployment of each of rel's workloads for
// one event of an upgrade's timeline, so that `kubectl describe deployment` and
// `kubectl get events` show the upgrade's steps.
func (b *Backend) StepEvent(ctx context.Context, rel *upgrade.Release, e upgrade.Event) {
	if b.opts.ReadOnly || rel == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	typ := corev1.EventTypeNormal
	if strings.HasPrefix(e.What, "stopped") {
		typ = corev1.EventTypeWarning
	}
	for _, w := range rel.Workloads {
		r, err := b.refOf(upgrade.Target{Workload: w})
		if err != nil {
			continue
		}
		d, err := b.c.Deployments(r.ns).Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		b.record(ctx, d, typ, "UpgradeStep", fmt.Sprintf("upgrade of %s to %s: %s: %s", rel.App, rel.Version, e.Step, e.What))
	}
}
