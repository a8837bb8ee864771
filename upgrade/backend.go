package upgrade

import (
	"context"
	"encoding/json"
	"time"
)

// Backend is where a release's instances run: processes on this machine
// (upgrade/local) or Kubernetes Deployments. The orchestrator drives it one workload at a
// time; every method must be idempotent, because a step interrupted by a crash is run
// again from the start of the step.
type Backend interface {
	// Name is the backend's name in tandem.yaml ("local", "kube").
	Name() string
	// Snapshot returns what the workload runs now, opaque to the orchestrator, which
	// records it before the workload rolls so that Restore can return to it.
	Snapshot(ctx context.Context, t Target) (json.RawMessage, error)
	// Roll replaces the workload's instances with instances of t, the way a Deployment
	// with maxSurge 1 and maxUnavailable 0 does: start a new instance, wait until it is
	// ready and gate accepts it, stop an old one (it drains), until only t's instances
	// are left. It returns once the last old instance was told to stop, without waiting
	// for it to exit. A Roll interrupted and called again continues where it was.
	Roll(ctx context.Context, t Target, gate ReadyGate, progress func(string)) error
	// Restore rolls the workload back to a Snapshot, as Roll does. The snapshot of a
	// workload without instances, JSON null, stops them all (a maintenance window's stop).
	Restore(ctx context.Context, t Target, snapshot json.RawMessage, gate ReadyGate, progress func(string)) error
	// Instances lists the workload's instances, those still draining included, each
	// with the revision it runs.
	Instances(ctx context.Context, t Target) ([]Instance, error)
}

// ReadyGate decides whether a new instance that passes its readiness probe may take
// the place of an old one. The orchestrator's gate also wants it registered in the
// instance registry with the release's schema version. It returns why not, when not.
type ReadyGate func(ctx context.Context, in Instance) (ok bool, why string, err error)

// Target is what a workload rolls to.
type Target struct {
	// App is the application's name.
	App string `json:"app"`
	// Release is the release's version, e.g. "v2": the app version instances register.
	Release string `json:"release"`
	// Revision tells this roll's instances from all others: an instance whose revision
	// differs is old.
	Revision string `json:"revision"`
	// VersionSchema is the schema version the release's code uses.
	VersionSchema string `json:"version_schema"`
	// PostgresURL is the database the instances use.
	PostgresURL string `json:"-"`
	// Dir is the release's directory: relative paths in the workload's command are
	// relative to it.
	Dir string `json:"-"`
	// Workload is the workload from the release's tandem.yaml.
	Workload Workload `json:"workload"`
}

// InstanceState is where an instance is, as its backend sees it.
type InstanceState string

// Instance states.
const (
	InstanceStarting InstanceState = "starting" // running, not ready yet
	InstanceReady    InstanceState = "ready"    // serving
	InstanceDraining InstanceState = "draining" // told to stop, still running
)

// Instance is one instance of a workload, as its backend sees it.
type Instance struct {
	Name     string        `json:"name"`
	Workload string        `json:"workload"`
	Release  string        `json:"release"`
	Revision string        `json:"revision"`
	State    InstanceState `json:"state"`
	// Host and PID identify the instance in the registry (the pod's name is its host).
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Group is the instance's group on the backend (a ReplicaSet on Kubernetes).
	Group string    `json:"group,omitempty"`
	Since time.Time `json:"since"`
	// Reason says why the instance is still there, when it should not be.
	Reason string `json:"reason,omitempty"`
}
