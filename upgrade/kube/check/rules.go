package check

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tandem-pg/tandem/internal/report"
)

// world is what the checks know besides the Deployment: the claims and budgets read.
type world struct {
	pvcs map[string]*Object // by namespace/name
	pdbs []*Object
}

// deployment is one Deployment under check.
type deployment struct {
	*Object
	opts  Options
	world *world
}

// rule runs one check on one Deployment.
type rule struct {
	id  string
	run func(d *deployment) []Finding
}

// rules are the checks, in the order of Rules().
var rules = []rule{
	{RuleReadinessProbe, checkReadiness},
	{RuleReadinessIsLive, checkReadinessIsLiveness},
	{RuleDrainDelay, checkDrainDelay},
	{RuleGracePeriod, checkGracePeriod},
	{RuleStrategy, checkStrategy},
	{RuleReplicas, checkReplicas},
	{RuleRWOVolume, checkRWOVolumes},
	{RuleDisruptionBudget, checkDisruptionBudget},
	{RuleImageVersion, checkImages},
}

func (d *deployment) pod() *corev1.PodSpec { return &d.Deployment.Spec.Template.Spec }

// finding builds a finding located at path (keys and indexes from the object's root),
// or as near it as the manifest goes.
func (d *deployment) finding(id string, sev Severity, container string, path []any, msg, fix string) Finding {
	line, col := d.pos(path...)
	return Finding{Rule: id, Severity: sev, File: d.File, Line: line, Column: col, Object: d.Ref(),
		Container: container, Message: msg, Fix: strings.TrimRight(fix, "\n")}
}

// containerPath is the manifest path of container i, with more keys under it.
func containerPath(i int, more ...any) []any {
	return append([]any{"spec", "template", "spec", "containers", i}, more...)
}

// replicas is spec.replicas, 1 when unset.
func (d *deployment) replicas() int {
	if r := d.Deployment.Spec.Replicas; r != nil {
		return int(*r)
	}
	return 1
}

// rolling reports whether the Deployment rolls (RollingUpdate, the default).
func (d *deployment) rolling() bool {
	return d.Deployment.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType
}

// surgeUnavailable resolves maxSurge and maxUnavailable against the replicas, as the
// Deployment controller does (surge rounds up, unavailable down; defaults 25%).
func (d *deployment) surgeUnavailable() (int, int, error) {
	def := intstr.FromString("25%")
	surge, unavail := &def, &def
	if ru := d.Deployment.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			surge = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			unavail = ru.MaxUnavailable
		}
	}
	n := d.replicas()
	s, err := intstr.GetScaledValueFromIntOrPercent(surge, n, true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(unavail, n, false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if s == 0 && u == 0 {
		u = 1 // the controller's rule: it must make progress
	}
	return s, u, nil
}

// annotation returns the pod template's annotation key, else the Deployment's.
func (d *deployment) annotation(key string) (string, bool) {
	if v, ok := d.Deployment.Spec.Template.Annotations[key]; ok {
		return v, true
	}
	v, ok := d.Deployment.Annotations[key]
	return v, ok
}

// annotationPath is the manifest path of an annotation, on the template or the object.
func (d *deployment) annotationPath(key string) []any {
	if _, ok := d.Deployment.Spec.Template.Annotations[key]; ok {
		return []any{"spec", "template", "metadata", "annotations", key}
	}
	return []any{"metadata", "annotations", key}
}

// durationAnnotation reads a duration annotation: "10s", or whole seconds.
func (d *deployment) durationAnnotation(key string) (time.Duration, bool, error) {
	v, ok := d.annotation(key)
	if !ok {
		return 0, false, nil
	}
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true, nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, true, fmt.Errorf("annotation %s: %q is not a duration (write it as 10s, or as whole seconds)", key, v)
	}
	return dur, true, nil
}

// serving returns the indexes of the containers that serve traffic: those that declare
// a port, or the first container when none does.
func (d *deployment) serving() []int {
	var out []int
	for i, c := range d.pod().Containers {
		if len(c.Ports) > 0 {
			out = append(out, i)
		}
	}
	if len(out) == 0 && len(d.pod().Containers) > 0 {
		out = []int{0}
	}
	return out
}

// port is the container's first port, for fix snippets.
func port(c *corev1.Container) string {
	if len(c.Ports) > 0 {
		if c.Ports[0].Name != "" {
			return c.Ports[0].Name
		}
		return strconv.Itoa(int(c.Ports[0].ContainerPort))
	}
	return "8080"
}

// containerFix renders a fix under one container of the pod template.
func containerFix(name, body string) string {
	var b strings.Builder
	b.WriteString("spec:\n  template:\n    spec:\n      containers:\n        - name: " + name + "\n")
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString("          " + l + "\n")
	}
	return b.String()
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func checkReadiness(d *deployment) []Finding {
	var out []Finding
	for _, i := range d.serving() {
		c := &d.pod().Containers[i]
		if c.ReadinessProbe != nil {
			continue
		}
		out = append(out, d.finding(RuleReadinessProbe, SeverityError, c.Name, containerPath(i),
			fmt.Sprintf("container %s of %s has no readiness probe: the router sends it requests as soon as it starts, before it is ready, and keeps sending them while it drains", c.Name, d.Ref()),
			containerFix(c.Name, fmt.Sprintf("readinessProbe:        # fails at once when the app drains (lifecycle: /readyz)\n  httpGet:\n    path: /readyz\n    port: %s\n  periodSeconds: 2\n  failureThreshold: 1", port(c)))))
	}
	return out
}

func checkReadinessIsLiveness(d *deployment) []Finding {
	var out []Finding
	for _, i := range d.serving() {
		c := &d.pod().Containers[i]
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			continue
		}
		if !reflect.DeepEqual(c.ReadinessProbe.ProbeHandler, c.LivenessProbe.ProbeHandler) {
			continue
		}
		out = append(out, d.finding(RuleReadinessIsLive, SeverityWarning, c.Name, containerPath(i, "readinessProbe"),
			fmt.Sprintf("container %s of %s probes readiness and liveness the same way: when it fails readiness to drain, the kubelet also restarts it (or it never fails, and the router keeps sending requests while it stops)", c.Name, d.Ref()),
			containerFix(c.Name, fmt.Sprintf("readinessProbe:        # fails while draining\n  httpGet: {path: /readyz, port: %s}\n  periodSeconds: 2\n  failureThreshold: 1\nlivenessProbe:         # stays healthy while draining\n  httpGet: {path: /livez, port: %s}\n  periodSeconds: 10\n  failureThreshold: 3", port(c), port(c)))))
	}
	return out
}

// sleepCmd finds a sleep in a preStop command: sleep 10, /bin/sleep 10, sh -c "sleep 10".
var sleepCmd = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?:^|[\s;&|/'"(])sleep\s+([0-9]+(?:\.[0-9]+)?)([smh]?)\b`)
})

// preStopSleep returns how long a container's preStop hook delays its SIGTERM, and
// whether tandem can tell ("known" is false for an HTTP hook or a command without a
// sleep).
func preStopSleep(c *corev1.Container) (dur time.Duration, has, known bool) {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0, false, true
	}
	ps := c.Lifecycle.PreStop
	switch {
	case ps.Sleep != nil:
		return time.Duration(ps.Sleep.Seconds) * time.Second, true, true
	case ps.Exec != nil:
		m := sleepCmd().FindStringSubmatch(strings.Join(ps.Exec.Command, " "))
		if m == nil {
			return 0, true, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, true, false
		}
		unit := map[string]time.Duration{"": time.Second, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
		return time.Duration(v * float64(unit)), true, true
	}
	return 0, true, false
}

func checkDrainDelay(d *deployment) []Finding {
	need := d.opts.RouterReload + d.opts.Propagation
	delay, declared, err := d.durationAnnotation(AnnotationDrainDelay)
	if err != nil {
		return []Finding{d.finding(RuleDrainDelay, SeverityError, "", d.annotationPath(AnnotationDrainDelay), d.Ref()+": "+err.Error(),
			fmt.Sprintf("spec:\n  template:\n    metadata:\n      annotations:\n        %s: %s", AnnotationDrainDelay, seconds(need)))}
	}
	var out []Finding
	for _, i := range d.serving() {
		c := &d.pod().Containers[i]
		sleep, has, known := preStopSleep(c)
		total := sleep + delay
		if total >= need {
			continue
		}
		fix := containerFix(c.Name, fmt.Sprintf("lifecycle:\n  preStop:\n    sleep:\n      seconds: %d   # router reload %s + propagation %s",
			int(math.Ceil(need.Seconds())), seconds(d.opts.RouterReload), seconds(d.opts.Propagation))) +
			fmt.Sprintf("# or, when the app itself keeps serving that long after SIGTERM (lifecycle.Server's DrainDelay):\n# spec.template.metadata.annotations:\n#   %s: %s", AnnotationDrainDelay, seconds(need))
		what := fmt.Sprintf("container %s of %s", c.Name, d.Ref())
		var msg string
		path := containerPath(i, "lifecycle", "preStop")
		switch {
		case has && !known && declared:
			msg = fmt.Sprintf("%s has a preStop hook tandem cannot time, and declares a drain delay of %s: together they must cover the router's reload interval %s + propagation %s = %s", what, seconds(delay), seconds(d.opts.RouterReload), seconds(d.opts.Propagation), seconds(need))
		case has && !known:
			msg = fmt.Sprintf("%s has a preStop hook tandem cannot time (no sleep in it): declare how long the pod keeps serving after it is told to stop with the %s annotation, at least the router's reload interval %s + propagation %s = %s", what, AnnotationDrainDelay, seconds(d.opts.RouterReload), seconds(d.opts.Propagation), seconds(need))
		case !has && !declared:
			path = containerPath(i)
			msg = fmt.Sprintf("%s has no preStop sleep and declares no drain delay: it stops on SIGTERM while the router, which reloads every %s plus %s propagation, still sends it requests; they fail", what, seconds(d.opts.RouterReload), seconds(d.opts.Propagation))
		default:
			if !has {
				path = d.annotationPath(AnnotationDrainDelay)
			}
			var terms []string
			if has {
				terms = append(terms, "preStop sleep "+seconds(sleep))
			}
			if declared {
				terms = append(terms, "declared drain delay "+seconds(delay))
			}
			msg = fmt.Sprintf("%s waits %s before it stops serving (%s), less than the router's reload interval %s + propagation %s = %s: requests routed to it in the gap fail", what, seconds(total), strings.Join(terms, " + "), seconds(d.opts.RouterReload), seconds(d.opts.Propagation), seconds(need))
		}
		out = append(out, d.finding(RuleDrainDelay, SeverityError, c.Name, path, msg, fix))
	}
	return out
}

func checkGracePeriod(d *deployment) []Finding {
	grace := 30 * time.Second
	if g := d.pod().TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	delay, _, err1 := d.durationAnnotation(AnnotationDrainDelay)
	shutdown, declared, err2 := d.durationAnnotation(AnnotationShutdownTimeout)
	long, _, err3 := d.durationAnnotation(AnnotationLongLived)
	for _, a := range []struct {
		key string
		err error
	}{{AnnotationShutdownTimeout, err2}, {AnnotationLongLived, err3}} {
		if a.err != nil {
			return []Finding{d.finding(RuleGracePeriod, SeverityError, "", d.annotationPath(a.key), d.Ref()+": "+a.err.Error(),
				fmt.Sprintf("spec:\n  template:\n    metadata:\n      annotations:\n        %s: 15s\n        %s: 60s", AnnotationShutdownTimeout, AnnotationLongLived))}
		}
	}
	if err1 != nil {
		delay = 0 // drain-delay reports it
	}
	if !declared {
		shutdown = d.opts.ShutdownTimeout
	}
	// The longest preStop of the containers counts: the kubelet runs them at once.
	var sleep time.Duration
	for _, c := range d.pod().Containers {
		if s, _, _ := preStopSleep(&c); s > sleep {
			sleep = s
		}
	}
	need := sleep + delay + shutdown + long
	if grace > need {
		return nil
	}
	var terms []string
	if sleep > 0 {
		terms = append(terms, "preStop "+seconds(sleep))
	}
	if delay > 0 {
		terms = append(terms, "drain delay "+seconds(delay))
	}
	st := "shutdown timeout " + seconds(shutdown)
	if !declared {
		st += " (assumed: declare it with " + AnnotationShutdownTimeout + ")"
	}
	terms = append(terms, st)
	if long > 0 {
		terms = append(terms, "long-lived requests "+seconds(long))
	}
	parts := strings.Join(terms, " + ")
	want := int(math.Ceil(need.Seconds())) + 5
	path := []any{"spec", "template", "spec", "terminationGracePeriodSeconds"}
	return []Finding{d.finding(RuleGracePeriod, SeverityError, "", path,
		fmt.Sprintf("%s gives its pods %s to stop (terminationGracePeriodSeconds), not more than %s = %s: the kubelet kills the requests still in flight", d.Ref(), seconds(grace), parts, seconds(need)),
		fmt.Sprintf("spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: %d   # > %s, with room", want, seconds(need)))}
}

const strategyFix = "spec:\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1          # start a new pod first\n      maxUnavailable: 0    # stop an old one only when its replacement is ready"

func checkStrategy(d *deployment) []Finding {
	spec := d.Deployment.Spec
	path := []any{"spec", "strategy"}
	if spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return []Finding{d.finding(RuleStrategy, SeverityError, "", append(path, "type"),
			fmt.Sprintf("%s uses the Recreate strategy: every old pod stops before a new one starts, so the service is down during each upgrade", d.Ref()),
			strategyFix)}
	}
	surge, unavail, err := d.surgeUnavailable()
	if err != nil {
		return []Finding{d.finding(RuleStrategy, SeverityError, "", append(path, "rollingUpdate"), fmt.Sprintf("%s: %v", d.Ref(), err), strategyFix)}
	}
	n := d.replicas()
	var out []Finding
	if surge == 0 {
		out = append(out, d.finding(RuleStrategy, SeverityError, "", append(path, "rollingUpdate", "maxSurge"),
			fmt.Sprintf("%s has maxSurge 0 (with %s): each step stops an old pod before its replacement is ready, so capacity drops during the upgrade", d.Ref(), report.Plural(n, "replica")),
			strategyFix))
	}
	switch left := n - unavail; {
	case unavail > 0 && left < 1:
		out = append(out, d.finding(RuleStrategy, SeverityError, "", append(path, "rollingUpdate", "maxUnavailable"),
			fmt.Sprintf("%s allows %s with %s: the rollout may stop every ready pod at once", d.Ref(), report.Plural(unavail, "unavailable pod"), report.Plural(n, "replica")),
			strategyFix))
	case unavail > 0 && left < 2:
		out = append(out, d.finding(RuleStrategy, SeverityWarning, "", append(path, "rollingUpdate", "maxUnavailable"),
			fmt.Sprintf("%s allows %s with %s: during the upgrade %d ready pod carries all the traffic", d.Ref(), report.Plural(unavail, "unavailable pod"), report.Plural(n, "replica"), left),
			strategyFix))
	}
	return out
}

func checkReplicas(d *deployment) []Finding {
	n := d.replicas()
	if n >= 2 {
		return nil
	}
	why := "spec.replicas is unset, so 1"
	if d.Deployment.Spec.Replicas != nil {
		why = "it runs " + report.Plural(n, "replica")
	}
	return []Finding{d.finding(RuleReplicas, SeverityWarning, "", []any{"spec", "replicas"},
		fmt.Sprintf("%s: %s; one pod carries all the traffic, and a node drain or a crash during the upgrade is an outage (if a HorizontalPodAutoscaler sets the replicas, give it minReplicas: 2 and ignore this rule)", d.Ref(), why),
		"spec:\n  replicas: 2")}
}

func checkRWOVolumes(d *deployment) []Finding {
	if !d.rolling() {
		return nil // Recreate never runs two pods; rollout-strategy reports the downtime
	}
	surge, _, _ := d.surgeUnavailable()
	n := d.replicas()
	if n <= 1 && surge < 1 {
		return nil
	}
	var out []Finding
	for i, v := range d.pod().Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		claim := v.PersistentVolumeClaim.ClaimName
		path := []any{"spec", "template", "spec", "volumes", i}
		pvc, ok := d.world.pvcs[d.Namespace+"/"+claim]
		fix := fmt.Sprintf("# a volume every pod can mount at once, on any node:\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  accessModes: [ReadWriteMany]\n# or keep the state out of the pods (object storage, the database)", claim, d.Namespace)
		if !ok {
			out = append(out, d.finding(RuleRWOVolume, SeverityWarning, "", path,
				fmt.Sprintf("%s mounts PersistentVolumeClaim %s/%s, which is not among the objects given, so its access mode is unknown: if it is ReadWriteOnce, the upgrade's new pods (%s, maxSurge %d) on another node fail with Multi-Attach and the rollout stalls", d.Ref(), d.Namespace, claim, report.Plural(n, "replica"), surge),
				fix))
			continue
		}
		mode := rwoMode(pvc.PVC.Spec.AccessModes)
		if mode == "" {
			continue
		}
		out = append(out, d.finding(RuleRWOVolume, SeverityError, "", path,
			fmt.Sprintf("%s mounts PersistentVolumeClaim %s (%s, %s:%d) under RollingUpdate with %s and maxSurge %d: the new pods cannot attach the volume where an old pod holds it (Multi-Attach), and the rollout stalls", d.Ref(), pvc.Name, mode, pvc.File, pvc.Line, report.Plural(n, "replica"), surge),
			fix))
	}
	return out
}

// rwoMode returns the single-node access mode of a claim, or "" when pods on several
// nodes can mount it.
func rwoMode(modes []corev1.PersistentVolumeAccessMode) string {
	single := ""
	for _, m := range modes {
		switch m {
		case corev1.ReadWriteMany:
			return ""
		case corev1.ReadWriteOncePod:
			single = string(m)
		case corev1.ReadWriteOnce:
			if single == "" {
				single = string(m)
			}
		}
	}
	return single
}

func checkDisruptionBudget(d *deployment) []Finding {
	podLabels := labels.Set(d.Deployment.Spec.Template.Labels)
	for _, o := range d.world.pdbs {
		if o.Namespace != d.Namespace || o.PDB.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(o.PDB.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		if sel.Matches(podLabels) {
			return nil
		}
	}
	var match strings.Builder
	for _, k := range sortedKeys(d.Deployment.Spec.Template.Labels) {
		fmt.Fprintf(&match, "\n      %s: %s", k, d.Deployment.Spec.Template.Labels[k])
	}
	if match.Len() == 0 {
		match.WriteString("\n      app: <the pod template's label>")
	}
	return []Finding{d.finding(RuleDisruptionBudget, SeverityWarning, "", []any{"metadata", "name"},
		fmt.Sprintf("no PodDisruptionBudget in namespace %s selects the pods of %s: a node drain during the upgrade may evict all of them at once", d.Namespace, d.Ref()),
		fmt.Sprintf("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:%s", d.Name, d.Namespace, match.String()))}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// imageTag splits an image reference: its tag ("" for none) and whether it pins a
// digest.
func imageTag(image string) (tag string, digest bool) {
	if i := strings.Index(image, "@"); i >= 0 {
		return "", true
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:], false
	}
	return "", false
}

func checkImages(d *deployment) []Finding {
	var out []Finding
	for i := range d.pod().Containers {
		c := &d.pod().Containers[i]
		tag, digest := imageTag(c.Image)
		if digest {
			continue
		}
		repo := strings.TrimSuffix(c.Image, ":"+tag)
		fix := containerFix(c.Name, fmt.Sprintf("image: %s:v2.3.1   # an immutable release tag\n# or pin the digest: image: %s@sha256:<digest>\nimagePullPolicy: IfNotPresent", repo, repo))
		path := containerPath(i, "image")
		switch {
		case tag == "" || tag == "latest":
			shown := ":" + tag
			if tag == "" {
				shown = "no tag, so :latest"
			}
			out = append(out, d.finding(RuleImageVersion, SeverityError, c.Name, path,
				fmt.Sprintf("container %s of %s runs image %s (%s): the pod template does not change when the version does, so nothing rolls, and pods started at different times run different versions", c.Name, d.Ref(), c.Image, shown),
				fix))
		case c.ImagePullPolicy == corev1.PullAlways:
			out = append(out, d.finding(RuleImageVersion, SeverityWarning, c.Name, containerPath(i, "imagePullPolicy"),
				fmt.Sprintf("container %s of %s pulls %s with imagePullPolicy Always: if the tag is pushed again, pods of the same template run different builds; use immutable tags or pin the digest", c.Name, d.Ref(), c.Image),
				fix))
		}
	}
	return out
}
