// Package kubetest gives tests a real single-node Kubernetes cluster: etcd, the control
// plane and a real kubelet with containerd, runc and a CNI bridge (cluster.sh), started
// once per test binary, as internal/pgtest does for PostgreSQL.
//
// The pods run the example service (examples/catalog) from an image built here: a
// static binary in an OCI archive imported into containerd (no registry, no Docker),
// tagged once per release (localhost/tandem/catalog:v1, :v2, :v3). They register in a
// PostgreSQL server that this package starts on the bridge's address, which the pods
// reach. A package that uses kubetest stops the cluster when its tests are done:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// The Kubernetes binaries are built once into TANDEM_K8S_DIR (/var/cache/tandem-k8s) by
// `internal/kubetest/cluster.sh build`. With CI set, a cluster that cannot start fails
// the test with the reason; elsewhere, missing binaries skip it, saying how to build
// them. The tests that use kubetest carry the build tag kube:
//
//	go test -tags kube ./upgrade/kube/...
package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

// NodeIP is the bridge's address: the node's IP, where the host reaches pods and pods
// reach the host (the API server and PostgreSQL listen there).
const NodeIP = "10.244.0.1"

// CatalogImage is the example service's image, without its tag (a release: v1...).
const CatalogImage = "localhost/tandem/catalog"

// Cluster is the running test cluster.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// Config is its configuration; Client a clientset over it.
	Config *rest.Config
	Client kubernetes.Interface
	// Containerd is containerd's socket.
	Containerd string
	// Dir is the cache directory (TANDEM_K8S_DIR).
	Dir string

	pg       *pgserver.Server
	tandemMu sync.Mutex
	tandem   string // the tandem image, once built
	// tandemBin: the tandem binary is built
	tandemBin bool
}

var (
	once     sync.Once
	cluster  *Cluster
	startErr error
	skipWhy  string
	seq      atomic.Int64
	started  bool
)

// Main runs the tests and stops the cluster and the database afterwards; call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil && cluster.pg != nil {
		_ = cluster.pg.Stop()
	}
	if started {
		if out, err := script(context.Background(), "down"); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: cluster.sh down: %v\n%s", err, out)
		}
	}
	os.Exit(code)
}

// dir is the cache directory.
func dir() string {
	if d := os.Getenv("TANDEM_K8S_DIR"); d != "" {
		return d
	}
	return "/var/cache/tandem-k8s"
}

// here is this package's directory.
func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func script(ctx context.Context, verb string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(here(), "cluster.sh"), verb)
	cmd.Env = append(os.Environ(), "TANDEM_K8S_DIR="+dir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Require returns the cluster, starting it on first use.
func Require(t testing.TB) *Cluster {
	t.Helper()
	once.Do(start)
	if skipWhy != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("kubernetes test cluster: %s", skipWhy)
		}
		t.Skipf("kubernetes test cluster: %s", skipWhy)
	}
	if startErr != nil {
		t.Fatalf("kubernetes test cluster: %v", startErr)
	}
	return cluster
}

func start() {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		if _, err := os.Stat(filepath.Join(dir(), "bin", b)); err != nil {
			skipWhy = fmt.Sprintf("%s is missing: build the binaries once with `internal/kubetest/cluster.sh build` (15-60 min; TANDEM_K8S_DIR=%s)",
				filepath.Join(dir(), "bin", b), dir())
			return
		}
	}
	if os.Geteuid() != 0 {
		skipWhy = "the cluster's node (containerd, kubelet, a bridge) needs root"
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := &Cluster{Dir: dir()}
	began := time.Now()
	started = true
	out, err := script(ctx, "up")
	if err != nil {
		startErr = fmt.Errorf("cluster.sh up: %w\n%s", err, out)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "KUBECONFIG="); ok {
			c.Kubeconfig = v
		}
		if v, ok := strings.CutPrefix(line, "CONTAINERD="); ok {
			c.Containerd = v
		}
	}
	if c.Kubeconfig == "" || c.Containerd == "" {
		startErr = fmt.Errorf("cluster.sh up did not say where the kubeconfig is:\n%s", out)
		return
	}
	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err == nil {
		c.Config.QPS, c.Config.Burst = 100, 200
		c.Client, err = kubernetes.NewForConfig(c.Config)
	}
	if err != nil {
		startErr = fmt.Errorf("kubeconfig %s: %w", c.Kubeconfig, err)
		return
	}
	fmt.Fprintf(os.Stderr, "kubetest: cluster up in %s\n", time.Since(began).Round(100*time.Millisecond))
	// The images build the example with cgo, statically: on a cold build cache and a busy
	// machine that alone takes minutes, so what follows the cluster's start gets a
	// deadline of its own, as the tandem binary's build does.
	setupCtx, cancelSetup := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancelSetup()
	if err := c.images(setupCtx); err != nil {
		startErr = err
		return
	}
	if err := c.startPostgres(setupCtx); err != nil {
		startErr = err
		return
	}
	cluster = c
}

// build builds a static binary of pkg (a path from the module's root) into out.
func build(ctx context.Context, pkg, out string, cgo bool) error {
	root := filepath.Join(here(), "..", "..")
	args := []string{"build", "-o", out}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if cgo {
		// The example links pg_query (C): a static cgo binary, with Go's own resolver.
		args = append(args, "-tags", "netgo,osusergo", "-ldflags", `-s -w -linkmode external -extldflags "-static"`)
		env = append(os.Environ(), "CGO_ENABLED=1")
	} else {
		args = append(args, "-ldflags", "-s -w")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./"+pkg)...)
	cmd.Dir, cmd.Env = root, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return nil
}

// importImage writes an image of files and imports it into containerd as ref.
func (c *Cluster) importImage(ctx context.Context, ref string, entry []string, files []ociFile) error {
	work := filepath.Join(c.Dir, "kubetest", "images")
	tarball := filepath.Join(work, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	if err := writeOCI(tarball, ref, entry, files); err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	return c.ctr(ctx, "images", "import", tarball)
}

func (c *Cluster) ctr(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Containerd, "-n", "k8s.io"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// images builds and imports the sandbox image and the example's, one tag per release.
func (c *Cluster) images(ctx context.Context) error {
	began := time.Now()
	work := filepath.Join(c.Dir, "kubetest", "images")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	pause := filepath.Join(work, "pause")
	if err := build(ctx, "internal/kubetest/pause", pause, false); err != nil {
		return err
	}
	if err := c.importImage(ctx, "localhost/tandemk8s/pause:3.10", []string{"/pause"}, []ociFile{{pause, "/pause"}}); err != nil {
		return err
	}
	bin := filepath.Join(work, "catalog")
	if err := build(ctx, "examples/catalog/cmd/catalog", bin, true); err != nil {
		return err
	}
	first := CatalogImage + ":" + catalog.Releases[0]
	if err := c.importImage(ctx, first, []string{"/catalog"}, []ociFile{{bin, "/catalog"}}); err != nil {
		return err
	}
	for _, r := range catalog.Releases[1:] {
		if err := c.ctr(ctx, "images", "tag", "--force", first, CatalogImage+":"+r); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "kubetest: images built and imported in %s\n", time.Since(began).Round(100*time.Millisecond))
	return nil
}

// TandemBinary builds the tandem binary (static, as the image has it), once, and
// returns its path, for tests that run it as a process on this machine.
func (c *Cluster) TandemBinary(t testing.TB) string {
	t.Helper()
	c.tandemMu.Lock()
	defer c.tandemMu.Unlock()
	return c.tandemBinaryLocked(t)
}

func (c *Cluster) tandemBinaryLocked(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(c.Dir, "kubetest", "images", "tandem")
	if c.tandemBin {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := build(ctx, "cmd/tandem", bin, true); err != nil {
		t.Fatal(err)
	}
	c.tandemBin = true
	return bin
}

// TandemImage builds the tandem binary into an image (localhost/tandem/tandem:test),
// once, and returns its name.
func (c *Cluster) TandemImage(t testing.TB) string {
	t.Helper()
	c.tandemMu.Lock()
	defer c.tandemMu.Unlock()
	if c.tandem != "" {
		return c.tandem
	}
	bin := c.tandemBinaryLocked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref := "localhost/tandem/tandem:test"
	if err := c.importImage(ctx, ref, []string{"/tandem"}, []ociFile{{bin, "/tandem"}}); err != nil {
		t.Fatal(err)
	}
	c.tandem = ref
	return ref
}

// startPostgres starts a throwaway PostgreSQL server that listens on loopback and on the
// bridge, trusting the pods' subnet.
func (c *Cluster) startPostgres(ctx context.Context) error {
	hbaDir, err := os.MkdirTemp("", "kubetest-hba-")
	if err != nil {
		return err
	}
	if err := os.Chmod(hbaDir, 0o755); err != nil {
		return err
	}
	hba := filepath.Join(hbaDir, "pg_hba.conf")
	rules := "host all all 127.0.0.1/32 trust\nhost all all " + NodeIP[:strings.LastIndex(NodeIP, ".")] + ".0/24 trust\n"
	if err := os.WriteFile(hba, []byte(rules), 0o644); err != nil {
		return err
	}
	c.pg, err = pgserver.Start(ctx, pgserver.Options{Settings: map[string]string{
		"listen_addresses": "127.0.0.1," + NodeIP, "hba_file": hba,
	}})
	if err != nil {
		return fmt.Errorf("start PostgreSQL for the pods: %w", err)
	}
	return nil
}

// NewDatabase creates an empty database for this test, dropped when it ends, and returns
// two superuser URLs to it: one for this process, one for pods.
func (c *Cluster) NewDatabase(t testing.TB) (hostURL, podURL string) {
	t.Helper()
	name := fmt.Sprintf("kube_%d_%d", os.Getpid(), seq.Add(1))
	pgtest.CreateDatabase(t, c.pg.URL("postgres"), name)
	u, err := url.Parse(c.pg.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	hostURL = u.String()
	u.Host = fmt.Sprintf("%s:%d", NodeIP, c.pg.Port())
	return hostURL, u.String()
}

// NewNamespace creates a namespace for this test, deleted when it ends (its pods are
// killed at once, finalizers removed, so that the next test starts on a quiet node).
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("t%d-%d", os.Getpid()%100000, seq.Add(1))
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	// The namespace's default service account comes from the controller-manager, which a
	// busy machine slows down: wait for it generously.
	const saWait = 2 * time.Minute
	deadline := time.Now().Add(saWait)
	for {
		if _, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s has no default service account after %s", name, saWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		pods, err := c.Client.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range pods.Items {
				if len(p.Finalizers) > 0 {
					// A patch, not an update: the kubelet writes the pod's status
					// concurrently, and an update from this read could meet a conflict.
					_, _ = c.Client.CoreV1().Pods(name).Patch(ctx, p.Name, types.MergePatchType,
						[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
				}
			}
		}
		zero := int64(0)
		_ = c.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// Logs returns the last lines of each container of the namespace's pods, for a failed
// test's log.
func (c *Cluster) Logs(ns string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var b strings.Builder
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	tail := int64(30)
	for _, p := range pods.Items {
		for _, ct := range p.Spec.Containers {
			data, err := c.Client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: ct.Name, TailLines: &tail}).DoRaw(ctx)
			if err != nil {
				data = []byte(err.Error())
			}
			fmt.Fprintf(&b, "--- %s/%s (%s)\n%s\n", p.Name, ct.Name, p.Status.Phase, data)
		}
	}
	return b.String()
}
