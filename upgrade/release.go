package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tandem-pg/tandem/lint"
	"github.com/tandem-pg/tandem/migrate"
)

// Maintenance policies: when maintenance mode is on during an upgrade.
const (
	MaintenanceExpand  = "expand"  // during expand only (the default)
	MaintenanceUpgrade = "upgrade" // from expand until contract is done
	MaintenanceOff     = "off"     // never
)

// Release is a release description, tandem.yaml, shipped with a version of the app. See
// docs/upgrade.md for every key.
type Release struct {
	// App is the application's name, as its instances register.
	App string `yaml:"app" json:"app"`
	// Version is this release's version, e.g. "v2": the app version its instances
	// register with.
	Version string `yaml:"version" json:"version"`
	// CompatibleFrom is the oldest running version this release may run beside.
	CompatibleFrom string `yaml:"compatible-from" json:"compatible_from"`
	// Migrations is the directory of the release's migrations, relative to the file:
	// one implicit stream. Streams lists several instead (see docs/streams.md).
	Migrations string `yaml:"migrations" json:"migrations"`
	// Streams are the release's migration streams, applied as one step.
	Streams []StreamSpec `yaml:"streams" json:"streams,omitempty"`
	// Lint configures the linter that gates the streams' pre-deploy SQL files, as
	// tandem lint reads it from tandem.yaml.
	Lint lint.Config `yaml:"lint" json:"lint"`
	// Schema is the logical schema migrated [public].
	Schema string `yaml:"schema" json:"schema"`
	// VersionSchema is the schema version the release's code uses; empty means the one
	// its last migration makes.
	VersionSchema string `yaml:"version-schema" json:"version_schema,omitempty"`
	// Maintenance is the maintenance policy [expand].
	Maintenance string `yaml:"maintenance" json:"maintenance"`
	// Contract is when the release's contract runs: now, at the end of its upgrade (the
	// default), or deferred to the next upgrade, so that the app can roll back to the
	// previous release without a database rollback meanwhile (see docs/upgrade.md).
	Contract string `yaml:"contract" json:"contract,omitempty"`
	// Backend is where the instances run [local].
	Backend string `yaml:"backend" json:"backend"`
	// Manifests is the release's rendered Kubernetes manifests (a file or a directory,
	// relative to the file) that `upgrade plan` checks with `tandem check`; backend kube
	// only. Each workload's kube.manifests directory is checked too.
	Manifests string `yaml:"manifests" json:"manifests,omitempty"`
	// Workloads are the release's workloads, rolled in ascending Order.
	Workloads []Workload `yaml:"workloads" json:"workloads"`
	// Timeouts bound the waits of an upgrade.
	Timeouts Timeouts `yaml:"timeouts" json:"timeouts"`
	// Backfill tunes the expand step's backfill.
	Backfill Backfill `yaml:"backfill" json:"backfill"`
	// RegistryTTL is how long the app's instances stay alive in the registry without a
	// heartbeat, as the app configures lifecycle.Registry [30s].
	RegistryTTL Duration `yaml:"registry-ttl" json:"registry_ttl"`

	// File is the path the release was read from; Dir its directory.
	File string `yaml:"-" json:"file"`
	Dir  string `yaml:"-" json:"dir"`
}

// Workload is one set of instances with one role.
type Workload struct {
	Name string `yaml:"name" json:"name"`
	// Role is api, content, worker or all.
	Role string `yaml:"role" json:"role"`
	// Order is the roll order: lower rolls first; equal orders roll in file order.
	Order int `yaml:"order" json:"order"`
	// MinReady is how long a new instance must have been ready before the next old one
	// stops, as a Deployment's minReadySeconds: at least the router's lag, so that the
	// router takes the new instances in one at a time rather than all at once [0].
	MinReady Duration `yaml:"min-ready" json:"min_ready,omitempty"`
	// Local says how the local backend runs the workload.
	Local *LocalWorkload `yaml:"local" json:"local,omitempty"`
	// Kube names the workload's Deployment on the kube backend.
	Kube *KubeWorkload `yaml:"kube" json:"kube,omitempty"`
}

// KubeWorkload is the Deployment that runs a workload on the kube backend (see
// docs/kube.md).
type KubeWorkload struct {
	// Namespace is the Deployment's namespace [the kubeconfig's namespace, else default].
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// Deployment is the Deployment's name [the workload's name].
	Deployment string `yaml:"deployment" json:"deployment"`
	// Container is the container that runs the release [the pod's only container].
	Container string `yaml:"container" json:"container,omitempty"`
	// Image is the release's image, e.g. registry.example.com/catalog:v2. Required
	// unless Manifests is given.
	Image string `yaml:"image" json:"image,omitempty"`
	// Manifests is a directory of YAML manifests, relative to tandem.yaml, that the
	// roll server-side applies (rendered by kustomize or helm); it must hold the
	// Deployment.
	Manifests string `yaml:"manifests" json:"manifests,omitempty"`
}

// LocalWorkload is what "run this release" means for the local backend.
type LocalWorkload struct {
	// Instances is how many instances run [1].
	Instances int `yaml:"instances" json:"instances"`
	// Command starts one instance. {listen}, {postgres-url}, {version-schema},
	// {app-version}, {role}, {workload}, {name} and {tandem} are substituted.
	Command []string `yaml:"command" json:"command"`
	// Routed puts the instances behind the router; default: every role but worker.
	Routed *bool `yaml:"routed" json:"routed,omitempty"`
}

// Timeouts bound an upgrade's waits.
type Timeouts struct {
	// OldGone bounds the wait for the old version to be gone [5m].
	OldGone Duration `yaml:"old-gone" json:"old_gone"`
	// Ready bounds the wait for one new instance to be ready [90s].
	Ready Duration `yaml:"ready" json:"ready"`
}

// Backfill tunes the expand step's backfill; zero values are the engine's defaults.
type Backfill struct {
	// Workers bounds the connections a backfill fills a table on [2].
	Workers int `yaml:"workers" json:"workers,omitempty"`
	// Impact is low, normal (the default: it holds back while the app is busy) or max.
	Impact migrate.BackfillImpact `yaml:"impact" json:"impact"`
	// Rate caps the backfill in rows per second, all workers together; 0 means no cap.
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
}

// Duration is a time.Duration written as "90s" in YAML and JSON.
type Duration struct{ time.Duration }

// UnmarshalYAML reads a duration such as "90s" or "5m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it as 90s, 5m or 1h)", s)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration such as "90s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// ReleaseError is a problem with a release description: the file, the key at fault,
// what is wrong and how to fix it.
type ReleaseError struct {
	File string
	Line int
	Key  string
	Msg  string
	Fix  string
}

func (e *ReleaseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	if e.Fix != "" {
		fmt.Fprintf(&b, " (fix: %s)", e.Fix)
	}
	return b.String()
}

// ReadRelease reads and validates the release description at path (a tandem.yaml, or a
// directory holding one).
func ReadRelease(path string) (*Release, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tandem.yaml")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read release description: %w", err)
	}
	return ParseRelease(path, data)
}

// ParseRelease parses and validates a release description read from file.
func ParseRelease(file string, data []byte) (*Release, error) {
	var r Release
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, yamlError(file, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	r.File = file
	abs, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	r.Dir = abs
	if err := r.validate(&root); err != nil {
		return nil, err
	}
	return &r, nil
}

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg := strings.Join(te.Errors, "; ")
		line := 0
		if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		}
		fix := "see docs/upgrade.md for the keys of tandem.yaml"
		return &ReleaseError{File: file, Line: line, Msg: msg, Fix: fix}
	}
	return &ReleaseError{File: file, Msg: "not valid YAML: " + err.Error(), Fix: "check the indentation and quoting"}
}

// lineOf finds the line of key path (e.g. "workloads", 1, "local") in the parsed tree.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		if n == nil {
			break
		}
		switch k := p.(type) {
		case string:
			var next *yaml.Node
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					next = n.Content[i+1]
				}
			}
			n = next
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				n = n.Content[k]
				line = n.Line
			} else {
				n = nil
			}
		}
	}
	return line
}

var roles = []string{"api", "content", "worker", "all"}

// validKubeName is a Kubernetes object name (RFC 1123 subdomain, at most 253).
var validKubeName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
})

// validKubeLabel is a namespace or container name (RFC 1123 label, at most 63).
var validKubeLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`) })

// validName is what a workload may be called: it names files and router servers.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`) })

// MaxLocalInstances bounds a workload's instances on the local backend.
const MaxLocalInstances = 20

func (r *Release) validate(root *yaml.Node) error {
	bad := func(key, msg, fix string, path ...any) error {
		return &ReleaseError{File: r.File, Line: lineOf(root, path...), Key: key, Msg: msg, Fix: fix}
	}
	if r.App == "" {
		return bad("app", "missing", "name the application, e.g. app: catalog")
	}
	if r.Version == "" {
		return bad("version", "missing", "give this release's version, e.g. version: v2")
	}
	if r.CompatibleFrom == "" {
		return bad("compatible-from", "missing",
			"name the oldest running version this release may run beside; the release's own version if none", "version")
	}
	if CompareVersions(r.CompatibleFrom, r.Version) > 0 {
		return bad("compatible-from", fmt.Sprintf("%s is newer than the release's version %s", r.CompatibleFrom, r.Version),
			"name a version at most "+r.Version, "compatible-from")
	}
	if err := r.validateStreams(root); err != nil {
		return err
	}
	if r.Schema == "" {
		r.Schema = "public"
	}
	switch r.Maintenance {
	case "":
		r.Maintenance = MaintenanceExpand
	case MaintenanceExpand, MaintenanceUpgrade, MaintenanceOff:
	default:
		return bad("maintenance", fmt.Sprintf("%q is not a policy", r.Maintenance),
			"use expand (on during expand only), upgrade (on for the whole upgrade) or off", "maintenance")
	}
	switch r.Contract {
	case "":
		r.Contract = ContractNow
	case ContractNow, ContractDeferred:
	default:
		return bad("contract", fmt.Sprintf("%q is not a contract policy", r.Contract),
			"use now (contract at the end of the upgrade) or deferred (at the start of the next one)", "contract")
	}
	switch r.Backend {
	case "":
		r.Backend = "local"
	case "local", "kube":
	default:
		return bad("backend", fmt.Sprintf("%q is not a backend", r.Backend), "use local or kube", "backend")
	}
	if r.Manifests != "" {
		if r.Backend != "kube" {
			return bad("manifests", "is for backend kube", "set backend: kube, or leave manifests out", "manifests")
		}
		if _, err := os.Stat(r.ManifestsPath()); err != nil {
			return bad("manifests", fmt.Sprintf("%s not found", r.ManifestsPath()),
				"give the file or directory of the release's rendered manifests, relative to this file", "manifests")
		}
	}
	if len(r.Workloads) == 0 {
		return bad("workloads", "missing", "list the workloads by name, role and order")
	}
	seen := map[string]bool{}
	for i := range r.Workloads {
		w := &r.Workloads[i]
		key := fmt.Sprintf("workloads[%d]", i)
		if w.Name == "" {
			return bad(key+".name", "missing", "give the workload a name", "workloads", i)
		}
		if !validName().MatchString(w.Name) {
			return bad(key+".name", fmt.Sprintf("%q is not a workload name", w.Name),
				"use lower-case letters, digits and dashes, starting with a letter or digit, at most 40", "workloads", i, "name")
		}
		if seen[w.Name] {
			return bad(key+".name", fmt.Sprintf("workload %q is listed twice", w.Name), "give each workload its own name", "workloads", i, "name")
		}
		seen[w.Name] = true
		if w.MinReady.Duration < 0 {
			return bad(key+".min-ready", "must not be negative", "give a duration such as 6s (at least the router's lag)", "workloads", i, "min-ready")
		}
		if !slices.Contains(roles, w.Role) {
			return bad(key+".role", fmt.Sprintf("%q is not a role", w.Role), "use api, content, worker or all", "workloads", i, "role")
		}
		if r.Backend == "local" {
			if w.Local == nil || len(w.Local.Command) == 0 {
				return bad(key+".local.command", "missing", `give the command line that starts one instance, e.g. ["./app", "--listen", "{listen}", "--postgres-url", "{postgres-url}"]`, "workloads", i)
			}
			if w.Local.Instances < 0 || w.Local.Instances > MaxLocalInstances {
				return bad(key+".local.instances", fmt.Sprintf("%d is out of range", w.Local.Instances),
					fmt.Sprintf("set instances: 1 to %d", MaxLocalInstances), "workloads", i, "local", "instances")
			}
			if w.Local.Instances == 0 {
				w.Local.Instances = 1
			}
			for _, v := range []struct{ name, why string }{
				{"{listen}", "each instance gets its own address"},
				{"{version-schema}", "the app must pin its connections to the release's schema version and register with it"},
				{"{app-version}", "the app must register with the release's version, or the roll cannot tell it is ready"},
			} {
				if !slices.ContainsFunc(w.Local.Command, func(a string) bool { return strings.Contains(a, v.name) }) {
					return bad(key+".local.command", "does not contain "+v.name,
						"pass "+v.name+" to the app: "+v.why, "workloads", i, "local", "command")
				}
			}
		}
	}
	if r.Backend == "kube" {
		for i := range r.Workloads {
			if err := r.validateKube(i, bad); err != nil {
				return err
			}
		}
	}
	if r.Backfill.Workers < 0 || r.Backfill.Rate < 0 {
		return bad("backfill", "workers and rate must not be negative", "give workers: 1 or more, and rate in rows per second (0: no cap)", "backfill")
	}
	if r.RegistryTTL.Duration < 0 {
		return bad("registry-ttl", "must not be negative", "give the TTL the app's lifecycle.Registry uses, e.g. 30s", "registry-ttl")
	}
	if r.Timeouts.OldGone.Duration < 0 || r.Timeouts.Ready.Duration < 0 {
		return bad("timeouts", "must not be negative", "give durations such as 5m", "timeouts")
	}
	if r.Timeouts.OldGone.Duration == 0 {
		r.Timeouts.OldGone.Duration = 5 * time.Minute
	}
	if r.Timeouts.Ready.Duration == 0 {
		r.Timeouts.Ready.Duration = 90 * time.Second
	}
	return nil
}

// validateKube checks workload i's kube section and fills in its defaults.
func (r *Release) validateKube(i int, bad func(key, msg, fix string, path ...any) error) error {
	w := &r.Workloads[i]
	key := fmt.Sprintf("workloads[%d].kube", i)
	if w.Kube == nil {
		return bad(key, "missing", "name the workload's Deployment, e.g. kube: {namespace: shop, deployment: catalog-api, image: registry.example.com/catalog:v2}",
			"workloads", i)
	}
	k := w.Kube
	if k.Deployment == "" {
		k.Deployment = w.Name
	}
	if len(k.Deployment) > 253 || !validKubeName().MatchString(k.Deployment) {
		return bad(key+".deployment", fmt.Sprintf("%q is not a Deployment name", k.Deployment),
			"use lower-case letters, digits, dashes and dots, as Kubernetes names", "workloads", i, "kube", "deployment")
	}
	if k.Namespace != "" && !validKubeLabel().MatchString(k.Namespace) {
		return bad(key+".namespace", fmt.Sprintf("%q is not a namespace name", k.Namespace),
			"use lower-case letters, digits and dashes, at most 63", "workloads", i, "kube", "namespace")
	}
	if k.Container != "" && !validKubeLabel().MatchString(k.Container) {
		return bad(key+".container", fmt.Sprintf("%q is not a container name", k.Container),
			"use lower-case letters, digits and dashes, at most 63", "workloads", i, "kube", "container")
	}
	if k.Image == "" && k.Manifests == "" {
		return bad(key+".image", "missing", "give the release's image, e.g. image: registry.example.com/catalog:v2, "+
			"or manifests: a directory of the release's rendered manifests", "workloads", i, "kube")
	}
	if strings.ContainsAny(k.Image, " \t\n") {
		return bad(key+".image", fmt.Sprintf("%q is not an image reference", k.Image), "write it as registry/name:tag or name@sha256:digest",
			"workloads", i, "kube", "image")
	}
	if k.Manifests != "" {
		dir := r.KubeManifestsDir(*w)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return bad(key+".manifests", fmt.Sprintf("directory %s not found", dir), "create it or correct the path (relative to this file)",
				"workloads", i, "kube", "manifests")
		}
	}
	return nil
}

// KubeManifestsDir is workload w's manifests directory as a path; "" when it has none.
func (r *Release) KubeManifestsDir(w Workload) string {
	if w.Kube == nil || w.Kube.Manifests == "" {
		return ""
	}
	if filepath.IsAbs(w.Kube.Manifests) {
		return w.Kube.Manifests
	}
	return filepath.Join(r.Dir, w.Kube.Manifests)
}

// MigrationsDir is the migrations directory as a path.
func (r *Release) MigrationsDir() string {
	if filepath.IsAbs(r.Migrations) {
		return r.Migrations
	}
	return filepath.Join(r.Dir, r.Migrations)
}

// RollOrder returns the workloads in the order they roll.
func (r *Release) RollOrder() []Workload {
	ws := slices.Clone(r.Workloads)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Order < ws[j].Order })
	return ws
}
