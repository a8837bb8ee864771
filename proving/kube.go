package proving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/haproxy"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/upgrade"
	"github.com/tandem-pg/tandem/upgrade/kube"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
	"github.com/tandem-pg/tandem/upgrade/kube/kubeapi"
)

// KubeName is the name of the Deployment and the Service a Kubernetes run creates.
const KubeName = "catalog"

// KubeOptions configure a run on Kubernetes (RunKube): the example's Deployment upgraded
// by the kube backend on a real cluster, the load through a real HAProxy on this machine
// that follows the Service's EndpointSlices as the OpenShift router does.
type KubeOptions struct {
	// Options are the load and the upgrade, as for Run. Instances is the Deployment's
	// replicas [3]; Upgrade is required; Rate [1000]; DrainDelay is the app's own
	// drain, apart from the preStop [1s]; NoDrain makes the app exit at once on SIGTERM
	// (what tandem check assumes of a container that declares no drain delay);
	// ShutdownTimeout [5s]. RouterLag, RouterMode, TaskRate (no worker runs), Then,
	// Tandem and InstanceEnv do not apply. PostgresURL (the database, as this process
	// reaches it) is required.
	Options
	// Config is the API server's configuration. Required.
	Config *rest.Config
	// Namespace receives the Deployment and the Service "catalog"; it must exist and
	// hold neither. Required.
	Namespace string
	// Image is the example's image without its tag; a release's pods run Image:release
	// (e.g. localhost/tandem/catalog:v2). Required.
	Image string
	// PodPostgresURL is the database as the pods reach it [PostgresURL].
	PodPostgresURL string
	// PreStop is the pods' preStop sleep [ReloadInterval + 2s].
	PreStop time.Duration
	// NoPreStop removes the preStop hook (what `tandem check` refuses), to show what it
	// prevents.
	NoPreStop bool
	// ReloadInterval is the least time between two HAProxy reloads: endpoint changes
	// meanwhile are coalesced, as the OpenShift router's RELOAD_INTERVAL does [5s].
	ReloadInterval time.Duration
	// Propagation is how long an EndpointSlice change takes to reach the router, on top
	// of the reload interval: what tandem check assumes of a cluster [2s]; negative
	// means none (this machine's watch is faster than a large cluster's).
	Propagation time.Duration
	// Grace is the pods' terminationGracePeriodSeconds [PreStop + DrainDelay +
	// ShutdownTimeout + 10s].
	Grace time.Duration
}

// KubeReport is what a Kubernetes run saw of the cluster.
type KubeReport struct {
	Namespace       string  `json:"namespace"`
	Replicas        int     `json:"replicas"`
	PreStopS        float64 `json:"prestop_s"`
	ReloadIntervalS float64 `json:"reload_interval_s"`
	PropagationS    float64 `json:"propagation_s"`
	// Reloads is how many times the router changed HAProxy during the load.
	Reloads int `json:"reloads"`
	// OldPods is how many pods of the old release the run saw; LastOldPodGoneS when the
	// last of them was deleted for good (seconds since the load started), terminating
	// ones included; ContractAfterOldPods whether every contract began with no pod of
	// the release it drops left: the API server, listed as each began, held none.
	OldPods              int     `json:"old_pods"`
	LastOldPodGoneS      float64 `json:"last_old_pod_gone_s"`
	ContractAfterOldPods bool    `json:"contract_after_old_pods"`
	// OldPodsAtContract says, when ContractAfterOldPods is false, why: the old pods that
	// existed as a contract began, or a listing that failed.
	OldPodsAtContract []string `json:"old_pods_at_contract,omitempty"`
}

func (k *KubeReport) summary(w io.Writer) {
	verdict := "yes"
	if !k.ContractAfterOldPods {
		verdict = "NO"
	}
	fmt.Fprintf(w, "kubernetes: %d replicas in %s, preStop %.0fs; HAProxy follows the EndpointSlices %.0fs late, reloads at most every %.0fs (%d during the load)\n",
		k.Replicas, k.Namespace, k.PreStopS, k.PropagationS, k.ReloadIntervalS, k.Reloads)
	fmt.Fprintf(w, "  the last of %d old pods was deleted at %.2fs; contract after it: %s\n", k.OldPods, k.LastOldPodGoneS, verdict)
	for _, why := range k.OldPodsAtContract {
		fmt.Fprintf(w, "    %s\n", why)
	}
}

func (o *KubeOptions) defaults() error {
	switch {
	case o.Config == nil:
		return errors.New("kube: no API server configuration")
	case o.Namespace == "":
		return errors.New("kube: no namespace")
	case o.Image == "":
		return errors.New("kube: no image (the example's, without its tag)")
	case o.PostgresURL == "":
		return errors.New("kube: no database URL")
	case o.Upgrade == "":
		return errors.New("kube: no release to upgrade to")
	case o.TaskRate > 0 || len(o.Then) > 0:
		return errors.New("kube: worker tasks and --then are not part of a Kubernetes run")
	}
	if o.PodPostgresURL == "" {
		o.PodPostgresURL = o.PostgresURL
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = 5 * time.Second
	}
	if o.Propagation == 0 {
		o.Propagation = check.DefaultPropagation
	}
	o.Propagation = max(o.Propagation, 0)
	if o.PreStop <= 0 {
		o.PreStop = o.ReloadInterval + o.Propagation
	}
	if o.NoPreStop {
		o.PreStop = 0
	}
	if o.DrainDelay <= 0 {
		o.DrainDelay = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = o.PreStop + o.DrainDelay + o.ShutdownTimeout + 10*time.Second
	}
	// What Options.defaults does not know: the router reloads at most every interval,
	// each change late by the propagation.
	o.TaskRate, o.RouterMode, o.RouterLag = -1, RouterReload, max(o.Propagation, time.Nanosecond)
	return o.Options.defaults()
}

// kubeRun is one run on Kubernetes.
type kubeRun struct {
	*run
	ko     KubeOptions
	client *kubeapi.Client
}

// release reads release v of the example as a kube release of one workload, api: the
// Deployment "catalog" in the namespace, running Image:v.
func (k *kubeRun) release(v string) (*upgrade.Release, error) {
	rel, err := upgrade.ReadRelease(filepath.Join(k.dir, "releases", v))
	if err != nil {
		return nil, err
	}
	rel.Backend = "kube"
	rel.Workloads = []upgrade.Workload{{Name: "api", Role: "api", Order: 1,
		// The router takes each new pod in before the next old one goes.
		MinReady: upgrade.Duration{Duration: k.ko.ReloadInterval + time.Second},
		Kube: &upgrade.KubeWorkload{Namespace: k.ko.Namespace, Deployment: KubeName, Container: KubeName,
			Image: k.ko.Image + ":" + v}}}
	rel.Timeouts.Ready.Duration = 3 * time.Minute
	rel.Timeouts.OldGone.Duration = 3 * time.Minute
	if slices.Contains(k.opts.DeferContract, v) {
		rel.Contract = upgrade.ContractDeferred
	}
	return rel, nil
}

// deployment is the example's Deployment, with no replicas yet, running From: a
// readiness probe, the preStop sleep (unless NoPreStop), maxSurge 1 and maxUnavailable 0;
// the app is told its versions by the environment the kube backend writes.
func (k *kubeRun) deployment() *appsv1.Deployment {
	labels := map[string]string{"app": KubeName}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	replicas := int32(0)
	grace := int64(k.ko.Grace / time.Second)
	c := corev1.Container{
		Name: KubeName, Image: k.ko.Image + ":" + k.opts.From, ImagePullPolicy: corev1.PullIfNotPresent,
		Args: []string{"--listen", "0.0.0.0:8080", "--postgres-url", "$(DATABASE_URL)", "--role", "api",
			"--release", "$(TANDEM_APP_VERSION)", "--app-version", "$(TANDEM_APP_VERSION)",
			"--version-schema", "$(TANDEM_VERSION_SCHEMA)",
			"--drain-delay", k.opts.DrainDelay.String(), "--shutdown-timeout", k.opts.ShutdownTimeout.String()},
		Env: []corev1.EnvVar{{Name: "DATABASE_URL", Value: k.ko.PodPostgresURL},
			{Name: kube.EnvAppVersion, Value: k.opts.From}, {Name: kube.EnvVersionSchema, Value: "none"}},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/readyz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1, FailureThreshold: 1},
	}
	if k.opts.NoDrain {
		c.Args = append(c.Args, "--no-drain")
	}
	// The app declares its shutdown, for tandem check's grace-period rule.
	ann := map[string]string{check.AnnotationShutdownTimeout: k.opts.ShutdownTimeout.String()}
	if k.ko.NoPreStop {
		// What tandem check refuses, and with it the upgrade's preflight: silenced here,
		// to show what the rule prevents.
		ann[check.AnnotationIgnore] = check.RuleDrainDelay
	} else {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{
			Seconds: int64((k.ko.PreStop + time.Second - 1) / time.Second)}}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: KubeName, Namespace: k.ko.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: ann},
				Spec:       corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{c}},
			},
		},
	}
}

// service is the Service whose EndpointSlices the router follows.
func (k *kubeRun) service() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: KubeName, Namespace: k.ko.Namespace},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": KubeName},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}}},
	}
}

// RunKube performs one proving run on Kubernetes and returns its report: it creates the
// example's Deployment and Service in the namespace, installs From with tandem upgrade
// on the kube backend, scales it to Instances replicas, seeds it, starts HAProxy on
// 127.0.0.1 routed to the Service's ready endpoints, and upgrades to Upgrade under
// load. The Deployment and the Service are deleted at the end. It returns an error when
// the run could not be carried out; failed requests are in the report.
func RunKube(ctx context.Context, ko KubeOptions) (*Report, error) {
	if err := ko.defaults(); err != nil {
		return nil, err
	}
	opts := ko.Options
	log := opts.Logger
	client, err := kubeapi.New(ko.Config)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	k := &kubeRun{run: &run{opts: opts, dbURL: opts.PostgresURL}, ko: ko, client: client}
	dir, cleanup, err := workDir(opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	k.dir = dir
	if err := os.CopyFS(filepath.Join(dir, "releases"), catalog.ReleaseFiles); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("write the example's releases: %w", err)
	}
	var rels []*upgrade.Release
	for _, v := range catalog.Releases {
		rel, err := k.release(v)
		if err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	cat, err := upgrade.NewCatalog(rels...)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, k.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer pool.Close()

	// The Deployment and the Service, removed at the end.
	deps, svcs := client.Deployments(ko.Namespace), client.Services(ko.Namespace)
	if _, err := deps.Create(ctx, k.deployment(), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("kube: create deployment %s/%s: %w", ko.Namespace, KubeName, err)
	}
	defer func() {
		_ = deps.Delete(context.Background(), KubeName, metav1.DeleteOptions{})
		_ = svcs.Delete(context.Background(), KubeName, metav1.DeleteOptions{})
	}()
	if _, err := svcs.Create(ctx, k.service(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kube: create service %s/%s: %w", ko.Namespace, KubeName, err)
	}

	be, err := kube.New(kube.Options{Config: ko.Config, Client: client, Namespace: ko.Namespace,
		PollInterval: 100 * time.Millisecond, ReadyTimeout: 3 * time.Minute, Logger: log})
	if err != nil {
		return nil, err
	}
	var pods *podWatch // watches the pods while the load runs
	up, err := k.openUpgrader(ctx, be, log, func(e upgrade.Event) {
		be.StepEvent(context.Background(), rels[0], e) // every release names the same Deployment
		if pods != nil && (e.Step == upgrade.StepContract || e.Step == upgrade.StepCompleteDeferred) && e.What == "begins" {
			pods.atContract(ctx, e.Step)
		}
	})
	if err != nil {
		return nil, err
	}
	defer up.Close()

	// Install the first release on no pods, seed it, upgrade without load to From, then
	// scale to the replicas and wait until the registry has them.
	var installed *upgrade.Record
	for _, rel := range rels {
		log.Info("installing the example", "release", rel.Version)
		if installed, err = up.Apply(ctx, rel); err != nil {
			return nil, fmt.Errorf("install %s: %w", rel.Version, err)
		}
		if rel.Version == catalog.Releases[0] {
			log.Info("seeding", "rows", opts.Rows)
			seedPool, err := lifecycle.NewPool(ctx, k.dbURL, installed.NewVersionSchema)
			if err != nil {
				return nil, err
			}
			err = catalog.Seed(ctx, seedPool, opts.Rows)
			seedPool.Close()
			if err != nil {
				return nil, err
			}
		}
		if rel.Version == opts.From {
			break
		}
	}
	if err := settle(ctx, pool, log); err != nil {
		return nil, err
	}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, opts.Instances)
	if _, err := deps.Patch(ctx, KubeName, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return nil, fmt.Errorf("kube: scale %s to %d: %w", KubeName, opts.Instances, err)
	}
	reg := &lifecycle.Registry{DB: pool}
	if err := waitRegistered(ctx, reg, opts.From, installed.NewVersionSchema, opts.Instances, 3*time.Minute); err != nil {
		return nil, err
	}

	// HAProxy, and the router that follows the EndpointSlices.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hap, err := haproxy.New(opts.HAProxy, dir, port, haproxy.ModeReload, false)
	if err != nil {
		return nil, err
	}
	defer hap.Stop()
	follow := &sliceFollower{client: client, ns: ko.Namespace, service: KubeName, on: k.eventAt}
	// The slices follow the pods' readiness: wait until they hold every replica, so
	// that the load starts on all of them.
	var eps []haproxy.Endpoint
	var rv string
	for deadline := time.Now().Add(time.Minute); ; {
		if eps, rv, err = follow.list(ctx); err != nil {
			return nil, err
		}
		if len(eps) >= opts.Instances {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("kube: after a minute the EndpointSlices of service %s/%s hold %d ready endpoints, want %d", ko.Namespace, KubeName, len(eps), opts.Instances)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := hap.Start(ctx, eps); err != nil {
		return nil, err
	}
	var reloads int
	var reloadsMu sync.Mutex
	rt := haproxy.NewRouter(hap, haproxy.RouterOptions{Lag: ko.Propagation, Interval: ko.ReloadInterval, OnEvent: k.event, OnApplied: func() {
		reloadsMu.Lock()
		reloads++
		reloadsMu.Unlock()
	}})
	defer rt.Close()
	follow.router = rt
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followDone := make(chan error, 1)
	go func() { followDone <- follow.run(followCtx, eps, rv) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitServed(ctx, base+"/api/items/1"); err != nil {
		return nil, fmt.Errorf("%w (HAProxy's log: %s)", err, hap.LogPath())
	}
	before, err := checksum(ctx, pool, installed.NewVersionSchema, -1)
	if err != nil {
		return nil, err
	}
	pods = &podWatch{client: client, ns: ko.Namespace, gone: map[string]time.Time{}, release: map[string]string{}}
	if err := pods.start(ctx); err != nil {
		return nil, err
	}
	defer pods.stop()
	k.resetEvents()
	reloadsMu.Lock()
	reloads = 0
	reloadsMu.Unlock()

	// Load, and a watch on the registry.
	gen := newLoadGen(base, opts.Rate, opts.StreamShare, opts.WriteShare, opts.StreamDuration, opts.RequestTimeout)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	k.mu.Lock()
	k.start, k.evs = time.Now(), nil
	k.mu.Unlock()
	drain := "drain " + opts.DrainDelay.String()
	if opts.NoDrain {
		drain = "no drain (exit on SIGTERM)"
	}
	k.event(fmt.Sprintf("load starts: %d req/s through HAProxy (changes %s late, reloads at most every %s), %d pods of %s, preStop %s, app %s",
		opts.Rate, ko.Propagation, ko.ReloadInterval, opts.Instances, opts.From, ko.PreStop, drain))
	loadDone := make(chan struct{})
	go func() { gen.run(loadCtx, k.start); close(loadDone) }()
	watch := &registryWatch{reg: reg, app: catalog.App, on: k.eventAt}
	watchDone := make(chan struct{})
	go func() { watch.run(loadCtx); close(watchDone) }()

	select {
	case <-time.After(time.Until(k.start.Add(opts.RolloutAt))):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rolloutStart := time.Since(k.start)
	k.event(fmt.Sprintf("upgrade to %s starts", opts.Upgrade))
	path, err := up.ApplyPath(ctx, cat, opts.Upgrade, upgrade.PathOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %w", ErrUpgrade, opts.Upgrade, err)
	}
	rt.Wait()
	rolloutEnd := time.Since(k.start)
	k.event("rollout over")
	k.keepLoad(ctx, opts.Duration, rolloutEnd)
	stopLoad()
	<-loadDone
	<-watchDone
	k.event("load stops")
	gen.wait()
	stopFollow()
	if err := <-followDone; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}

	rep := buildReport(opts, gen.records(), k.events(), rolloutStart, rolloutEnd)
	rep.Drain = !ko.NoPreStop || !opts.NoDrain
	recs := path.Upgrades
	after, err := checksum(ctx, pool, recs[len(recs)-1].NewVersionSchema, before.MaxID)
	if err != nil {
		return rep, err
	}
	rep.Upgrade = upgradeReport(k.run, recs, k.upgradeEvents(), watch, before, after)
	reloadsMu.Lock()
	rep.Kube = &KubeReport{Namespace: ko.Namespace, Replicas: opts.Instances, PreStopS: ko.PreStop.Seconds(),
		ReloadIntervalS: ko.ReloadInterval.Seconds(), PropagationS: ko.Propagation.Seconds(), Reloads: reloads}
	reloadsMu.Unlock()
	rep.Kube.OldPods, rep.Kube.LastOldPodGoneS = pods.lastGone(k.run, opts.From)
	rep.Kube.OldPodsAtContract = pods.oldAtContract(rep.Upgrade.Contracts)
	rep.Kube.ContractAfterOldPods = rep.Kube.OldPods > 0 && rep.Kube.LastOldPodGoneS > 0 &&
		len(rep.Kube.OldPodsAtContract) == 0
	if err := rt.Err(); err != nil {
		return rep, fmt.Errorf("router: %w (see %s)", err, hap.LogPath())
	}
	return rep, ctx.Err()
}

// workDir returns the run's directory and what removes it (unless kept).
func workDir(opts Options) (string, func(), error) {
	if opts.WorkDir != "" {
		opts.Logger.Info("configurations and logs are kept", "dir", opts.WorkDir)
		return opts.WorkDir, func() {}, os.MkdirAll(opts.WorkDir, 0o755)
	}
	d, err := os.MkdirTemp("", "tandem-prove-")
	if err != nil {
		return "", nil, err
	}
	if opts.KeepWorkDir {
		opts.Logger.Info("configurations and logs are kept", "dir", d)
		return d, func() {}, nil
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitRegistered waits until the registry has exactly n ready instances, all of release
// on versionSchema.
func waitRegistered(ctx context.Context, reg *lifecycle.Registry, release, versionSchema string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		all, err := reg.Instances(ctx)
		if err != nil {
			return err
		}
		ok := 0
		for _, in := range all {
			if in.AppVersion == release && in.SchemaVersion == versionSchema && in.State == lifecycle.StateReady {
				ok++
			}
		}
		if ok == n && len(all) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube: after %s the registry has %d ready instances of %s of %d, want %d", limit, ok, release, len(all), n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sliceFollower watches a Service's EndpointSlices and sends the router their ready
// endpoints, as the OpenShift router follows them: ready only (a terminating endpoint
// that still serves is not routed to), by pod name.
type sliceFollower struct {
	client  kubeapi.Interface
	ns      string
	service string
	router  *haproxy.Router
	on      func(time.Time, string)

	slices map[string]*discoveryv1.EndpointSlice
}

func (f *sliceFollower) selector() metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + f.service}
}

// list reads the slices and returns their ready endpoints and the list's version.
func (f *sliceFollower) list(ctx context.Context) ([]haproxy.Endpoint, string, error) {
	l, err := f.client.EndpointSlices(f.ns).List(ctx, f.selector())
	if err != nil {
		return nil, "", fmt.Errorf("kube: list the EndpointSlices of service %s/%s: %w", f.ns, f.service, err)
	}
	f.slices = map[string]*discoveryv1.EndpointSlice{}
	for i := range l.Items {
		f.slices[l.Items[i].Name] = &l.Items[i]
	}
	return f.endpoints(), l.ResourceVersion, nil
}

// endpoints are the ready endpoints of every slice, by name.
func (f *sliceFollower) endpoints() []haproxy.Endpoint {
	var eps []haproxy.Endpoint
	for _, s := range f.slices {
		port := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil {
				port = *p.Port
			}
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 || port == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
				continue
			}
			name := e.Addresses[0]
			if e.TargetRef != nil {
				name = e.TargetRef.Name
			}
			eps = append(eps, haproxy.Endpoint{Name: name, Addr: net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port)))})
		}
	}
	slices.SortFunc(eps, func(a, b haproxy.Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return eps
}

// run follows the slices from version rv, with eps the endpoints HAProxy has, until ctx
// ends; a watch that closes is started again from the last version seen.
func (f *sliceFollower) run(ctx context.Context, eps []haproxy.Endpoint, rv string) error {
	for ctx.Err() == nil {
		opts := f.selector()
		opts.ResourceVersion = rv
		w, err := f.client.EndpointSlices(f.ns).Watch(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if eps2, rv2, err := f.list(ctx); err == nil {
				eps, rv = f.changed(eps, eps2), rv2
				continue
			}
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				if ev.Type == watch.Error {
					rv = "" // too old: list again
				}
				continue
			}
			rv = s.ResourceVersion
			if ev.Type == watch.Deleted {
				delete(f.slices, s.Name)
			} else {
				f.slices[s.Name] = s
			}
			eps = f.changed(eps, f.endpoints())
		}
		w.Stop()
		if rv == "" && ctx.Err() == nil {
			var next []haproxy.Endpoint
			if next, rv, err = f.list(ctx); err == nil {
				eps = f.changed(eps, next)
			}
		}
	}
	return ctx.Err()
}

// changed sends next to the router when it differs from eps, naming the difference,
// and returns it.
func (f *sliceFollower) changed(eps, next []haproxy.Endpoint) []haproxy.Endpoint {
	if slices.Equal(eps, next) {
		return eps
	}
	var diff []string
	for _, e := range next {
		if !slices.Contains(eps, e) {
			diff = append(diff, "+"+e.Name)
		}
	}
	for _, e := range eps {
		if !slices.Contains(next, e) {
			diff = append(diff, "-"+e.Name)
		}
	}
	why := "endpoints " + strings.Join(diff, " ")
	f.on(time.Now(), "EndpointSlice: "+why)
	f.router.Set(next, why)
	return next
}

// podWatch records the release of each pod of the namespace and when it was deleted for
// good, and the pods the API server still held as each contract began, with their
// releases. That is the verdict's ground: the watch's time for a deletion is when the
// event arrived, which a busy machine delays past the moment the orchestrator, polling,
// saw the pod gone and began contract.
type podWatch struct {
	client kubeapi.Interface
	ns     string
	cancel func()
	done   chan struct{}

	mu      sync.Mutex
	release map[string]string    // pod -> the release it runs
	gone    map[string]time.Time // pod -> when it was deleted
	// atStep holds, per contract step (upgrade.StepContract, StepCompleteDeferred), one
	// listing per time the step began, in order.
	atStep map[string][]podListing
}

// podListing is the pods of the namespace at one moment, by release, or why they are
// not known.
type podListing struct {
	release map[string]string // pod -> release
	err     error
}

// atContract lists the pods as the contract step step begins.
func (p *podWatch) atContract(ctx context.Context, step string) {
	l, err := p.client.Pods(p.ns).List(ctx, metav1.ListOptions{})
	got := podListing{err: err, release: map[string]string{}}
	if err == nil {
		for i := range l.Items {
			got.release[l.Items[i].Name] = releaseOf(&l.Items[i])
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.atStep == nil {
		p.atStep = map[string][]podListing{}
	}
	p.atStep[step] = append(p.atStep[step], got)
}

// oldAtContract pairs the listings taken as contracts began with the report's contracts,
// in order per step, and returns what was wrong: a pod of the release a contract drops
// that still existed as it began, a listing that failed, or a contract with no listing.
// Nothing returned means every contract began with no pod of its old release left.
func (p *podWatch) oldAtContract(contracts []ContractCheck) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var why []string
	used := map[string]int{}
	for _, c := range contracts {
		i := used[c.Step]
		used[c.Step]++
		if i >= len(p.atStep[c.Step]) {
			why = append(why, c.Contract+": no listing of the pods as it began")
			continue
		}
		l := p.atStep[c.Step][i]
		if l.err != nil {
			why = append(why, fmt.Sprintf("%s: listing the pods as it began: %v", c.Contract, l.err))
			continue
		}
		var left []string
		for pod, rel := range l.release {
			if rel == c.OldRelease {
				left = append(left, pod)
			}
		}
		if len(left) > 0 {
			slices.Sort(left)
			why = append(why, fmt.Sprintf("%s began while %s pods existed: %s", c.Contract, c.OldRelease, strings.Join(left, ", ")))
		}
	}
	for step, ls := range p.atStep {
		if n := len(ls) - used[step]; n > 0 {
			why = append(why, fmt.Sprintf("%d more %s steps began than the report has", n, step))
		}
	}
	slices.Sort(why)
	return why
}

func (p *podWatch) start(ctx context.Context) error {
	l, err := p.client.Pods(p.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("kube: list pods in %s: %w", p.ns, err)
	}
	for i := range l.Items {
		p.record(&l.Items[i])
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := p.client.Pods(p.ns).Watch(wctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		cancel()
		return fmt.Errorf("kube: watch pods in %s: %w", p.ns, err)
	}
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				p.record(pod)
				if ev.Type == watch.Deleted {
					p.mu.Lock()
					p.gone[pod.Name] = time.Now()
					p.mu.Unlock()
				}
			}
		}
	}()
	return nil
}

func (p *podWatch) record(pod *corev1.Pod) {
	rel := releaseOf(pod)
	p.mu.Lock()
	p.release[pod.Name] = rel
	p.mu.Unlock()
}

// releaseOf is the release a pod runs: its annotation, or its container's environment.
func releaseOf(pod *corev1.Pod) string {
	rel := pod.Annotations[kube.AnnRelease]
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if rel == "" && e.Name == kube.EnvAppVersion {
				rel = e.Value
			}
		}
	}
	return rel
}

func (p *podWatch) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// lastGone returns how many pods of release rel were seen and when the last of them
// was deleted, in seconds since the load started (0 if one is not deleted).
func (p *podWatch) lastGone(r *run, rel string) (int, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var last time.Time
	for pod, v := range p.release {
		if v != rel {
			continue
		}
		n++
		at, ok := p.gone[pod]
		if !ok {
			return n, 0
		}
		if at.After(last) {
			last = at
		}
	}
	if n == 0 {
		return 0, 0
	}
	return n, r.since(last).Seconds()
}
