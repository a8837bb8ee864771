// Package lifecycle gives a Go service running behind a Kubernetes or OpenShift router the
// lifecycle that makes rolling upgrades lose nothing.
//
// A Server wraps an http.Server. When it is told to stop (SIGTERM, SIGINT or its context
// is cancelled) it drains in phases:
//
//  1. /readyz starts failing at once, while /livez stays healthy, so the endpoint is
//     removed from load balancers; the instance registry row turns "draining".
//  2. For DrainDelay the server keeps serving normally, because routers only learn of the
//     change some seconds later. Every response in this phase carries Connection: close
//     so that keep-alive clients move to other instances after their current request.
//  3. The listener closes; in-flight requests are waited for up to ShutdownTimeout, and
//     long-lived handlers (streams, server-sent events, hijacked connections) registered
//     with LongLived are told to finish through their context and OnShutdown callbacks.
//  4. The server deregisters and Serve returns.
//
// Each phase is logged with its duration, and timings and in-flight counts are exported
// as Prometheus metrics on /metrics.
//
// The package also holds the pieces an upgrade needs around the HTTP server: pluggable
// health checks (Health), an instance registry in the database that tells which app and
// schema versions are alive (Registry), a maintenance flag propagated with LISTEN/NOTIFY
// that gates background work (Maintenance, SetMaintenance), a worker loop that finishes or
// returns its task on shutdown (Worker), and a pgx pool pinned to a schema version
// (NewPool) and warmed before the instance reports ready (WarmPool).
//
// State lives in the state schema (by default "tandem"), in the tables "instances" and
// "maintenance"; EnsureStateSchema creates them idempotently.
package lifecycle
