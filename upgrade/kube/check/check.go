// Package check is `tandem check`: static analysis of Kubernetes Deployments, and the
// PersistentVolumeClaims and PodDisruptionBudgets beside them, for what breaks a
// zero-downtime rolling upgrade. It reads manifests (files, directories, multi-document
// files, Lists, standard input) or a live cluster through a [Source], runs the same rules
// on either, and names the object, the place in the manifest and the fix as YAML.
//
// The rules and why each matters are in docs/check.md.
package check

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tandem-pg/tandem/internal/report"
)

// Severity is how serious a finding is; findings at SeverityError make `tandem check`
// fail.
type Severity string

// Severities.
const (
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Options tune the checks.
type Options struct {
	// RouterReload is how often the router applies endpoint changes [5s, OpenShift's].
	RouterReload time.Duration
	// Propagation is how long an endpoint change takes to reach the router [2s].
	Propagation time.Duration
	// ShutdownTimeout is how long an app takes to finish in-flight requests after its
	// drain, when it declares none with the shutdown-timeout annotation [15s, the
	// lifecycle library's default].
	ShutdownTimeout time.Duration
	// Disable lists rule IDs not to run.
	Disable []string
}

// Defaults of Options.
const (
	DefaultRouterReload    = 5 * time.Second
	DefaultPropagation     = 2 * time.Second
	DefaultShutdownTimeout = 15 * time.Second
)

func (o Options) withDefaults() Options {
	if o.RouterReload <= 0 {
		o.RouterReload = DefaultRouterReload
	}
	if o.Propagation <= 0 {
		o.Propagation = DefaultPropagation
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	return o
}

// Annotations an app declares its shutdown with, on the pod template (or, failing
// that, on the Deployment). Values are durations ("10s") or whole seconds ("10").
const (
	// AnnotationDrainDelay is how long the app keeps serving after SIGTERM while its
	// readiness fails (the lifecycle library's DrainDelay): it counts as preStop time.
	AnnotationDrainDelay = "tandem.dev/drain-delay"
	// AnnotationShutdownTimeout is how long the app takes to finish in-flight requests
	// once its drain is over (the lifecycle library's ShutdownTimeout).
	AnnotationShutdownTimeout = "tandem.dev/shutdown-timeout"
	// AnnotationLongLived is the longest request (a stream, an upload) the app lets
	// finish at shutdown, on top of the shutdown timeout.
	AnnotationLongLived = "tandem.dev/long-lived-requests"
	// AnnotationIgnore lists rule IDs, comma-separated, not to run on this Deployment.
	AnnotationIgnore = "tandem.dev/check-ignore"
)

// Rule IDs.
const (
	RuleReadinessProbe   = "readiness-probe"
	RuleReadinessIsLive  = "readiness-is-liveness"
	RuleDrainDelay       = "drain-delay"
	RuleGracePeriod      = "grace-period"
	RuleStrategy         = "rollout-strategy"
	RuleReplicas         = "replicas"
	RuleRWOVolume        = "rwo-volume"
	RuleDisruptionBudget = "pod-disruption-budget"
	RuleImageVersion     = "image-version"
)

// Rule is one check.
type Rule struct {
	ID       string
	Severity Severity // the default; a finding may be milder
	Summary  string
}

// Rules lists the checks in the order they run.
func Rules() []Rule {
	return []Rule{
		{RuleReadinessProbe, SeverityError, "a serving container has no readiness probe: the router sends it traffic before it is ready and while it drains"},
		{RuleReadinessIsLive, SeverityWarning, "the readiness probe is the liveness probe: it cannot fail while the pod drains without the kubelet killing the pod"},
		{RuleDrainDelay, SeverityError, "no preStop sleep (or declared drain delay) as long as the router's reload interval plus propagation: the pod stops while the router still sends it requests"},
		{RuleGracePeriod, SeverityError, "terminationGracePeriodSeconds is not above preStop + drain + shutdown timeout (+ long-lived requests): the kubelet kills in-flight requests"},
		{RuleStrategy, SeverityError, "the rollout stops old pods before new ones are ready (Recreate, maxSurge 0, maxUnavailable too high)"},
		{RuleReplicas, SeverityWarning, "fewer than 2 replicas: one pod carries all the traffic, and a node drain is an outage"},
		{RuleRWOVolume, SeverityError, "a ReadWriteOnce volume under RollingUpdate with more than one pod at a time: new pods on another node fail with Multi-Attach and the rollout stalls"},
		{RuleDisruptionBudget, SeverityWarning, "no PodDisruptionBudget selects the pods: a node drain may stop all of them at once"},
		{RuleImageVersion, SeverityError, "the image tag (:latest, none) or pull policy makes it ambiguous which version a pod runs"},
	}
}

// Finding is one problem with one object.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// File, Line and Column locate the problem in the manifest (1-based; 0 when read from
	// the cluster).
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	// Object is kind/namespace/name; Container the container, when the finding is about
	// one.
	Object    string `json:"object"`
	Container string `json:"container,omitempty"`
	Message   string `json:"message"`
	// Fix is the remedy as a YAML snippet.
	Fix string `json:"fix"`
}

// Result is the outcome of a check.
type Result struct {
	Findings []Finding `json:"findings"`
	// Deployments counts the Deployments checked; Objects every object read; Files the
	// files read.
	Deployments int       `json:"deployments"`
	Objects     int       `json:"objects"`
	Files       int       `json:"files"`
	Skipped     []Skipped `json:"skipped"`
}

// Errors counts the findings at SeverityError.
func (r *Result) Errors() int { return r.count(SeverityError) }

// Warnings counts the findings at SeverityWarning.
func (r *Result) Warnings() int { return r.count(SeverityWarning) }

func (r *Result) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Check runs the rules on the Deployments of in, with the PVCs and PDBs of in as their
// context.
func Check(in *Input, opts Options) *Result {
	opts = opts.withDefaults()
	res := &Result{Objects: in.Read, Files: in.Files, Skipped: in.Skipped, Findings: []Finding{}}
	if res.Skipped == nil {
		res.Skipped = []Skipped{}
	}
	ctx := &world{pvcs: map[string]*Object{}}
	for _, o := range in.Objects {
		switch {
		case o.PVC != nil:
			ctx.pvcs[o.Namespace+"/"+o.Name] = o
		case o.PDB != nil:
			ctx.pdbs = append(ctx.pdbs, o)
		}
	}
	disabled := map[string]bool{}
	for _, id := range opts.Disable {
		disabled[id] = true
	}
	for _, o := range in.Objects {
		if o.Deployment == nil {
			continue
		}
		res.Deployments++
		d := &deployment{Object: o, opts: opts, world: ctx}
		// On the pod template or the Deployment, as the other annotations.
		ignore, _ := d.annotation(AnnotationIgnore)
		skip := map[string]bool{}
		for _, id := range strings.Split(ignore, ",") {
			skip[strings.TrimSpace(id)] = true
		}
		for _, r := range rules {
			if disabled[r.id] || skip[r.id] {
				continue
			}
			res.Findings = append(res.Findings, r.run(d)...)
		}
	}
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return res
}

// KnownRule reports whether id names a rule.
func KnownRule(id string) bool {
	for _, r := range Rules() {
		if r.ID == id {
			return true
		}
	}
	return false
}

// DocURL is where the rules are documented; SARIF links each rule to its section.
const DocURL = "https://github.com/tandem-pg/tandem/blob/main/docs/check.md"

// tool describes `tandem check` to the report writers.
func tool() report.Tool {
	t := report.Tool{Name: "tandem check", InformationURI: DocURL, FixTitle: "fix"}
	for _, r := range Rules() {
		t.Rules = append(t.Rules, report.Rule{ID: r.ID, Summary: r.Summary, Error: r.Severity == SeverityError})
	}
	return t
}

// Summary is the closing line: counts and what was read.
func Summary(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s in %s", report.Plural(res.Errors(), "error"), report.Plural(res.Warnings(), "warning"),
		report.Plural(res.Deployments, "Deployment"))
	fmt.Fprintf(&b, " (%s read", report.Plural(res.Objects, "object"))
	if res.Files > 0 {
		fmt.Fprintf(&b, " from %s", report.Plural(res.Files, "file"))
	}
	b.WriteString(")")
	b.WriteString(report.SkippedList("not Kubernetes objects", res.Skipped))
	return b.String()
}

// jsonReport is the JSON document.
type jsonReport struct {
	*Result
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
}

// Write prints res in the named format: "text", "json", "sarif" or "github".
func Write(w io.Writer, format string, res *Result) error {
	fs := make([]report.Finding, 0, len(res.Findings))
	for _, f := range res.Findings {
		facts := "object: " + f.Object
		if f.Container != "" {
			facts += ", container " + f.Container
		}
		fs = append(fs, report.Finding{Rule: f.Rule, Error: f.Severity == SeverityError, File: f.File, Line: f.Line,
			Column: f.Column, Message: f.Message, Facts: facts, Fix: f.Fix})
	}
	return report.Write(w, format, tool(), fs, Summary(res), jsonReport{Result: res, Errors: res.Errors(), Warnings: res.Warnings()})
}
