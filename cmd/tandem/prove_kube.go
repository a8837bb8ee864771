package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/proving"
	"github.com/tandem-pg/tandem/upgrade/kube"
)

// proveKubeFlags are `tandem prove`'s flags for --backend kube.
type proveKubeFlags struct {
	backend        string
	kubeconfig     string
	kubeCtx        string
	namespace      string
	image          string
	podURL         string
	preStop        time.Duration
	noPreStop      bool
	reloadInterval time.Duration
	propagation    time.Duration
}

func (k *proveKubeFlags) add(f *pflag.FlagSet) {
	f.StringVar(&k.backend, "backend", "local", "where the example runs: local (processes on 127.0.0.1) or kube (a Deployment on the cluster)")
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kube: the kubeconfig [$KUBECONFIG, ~/.kube/config, else in-cluster]")
	f.StringVar(&k.kubeCtx, "context", "", "kube: the kubeconfig context [the current one]")
	f.StringVar(&k.namespace, "namespace", "", "kube: the namespace that receives the Deployment and Service catalog [the kubeconfig's]")
	f.StringVar(&k.image, "image", "", "kube: the example's image without its tag; a release runs <image>:<release> (e.g. localhost/tandem/catalog)")
	f.StringVar(&k.podURL, "pod-postgres-url", "", "kube: the database as the pods reach it [--postgres-url]")
	f.DurationVar(&k.preStop, "prestop", 0, "kube: the pods' preStop sleep [reload interval + 2s]")
	f.BoolVar(&k.noPreStop, "no-prestop", false, "kube: no preStop hook (what tandem check refuses), to show what it prevents")
	f.DurationVar(&k.reloadInterval, "reload-interval", 5*time.Second, "kube: HAProxy reloads at most this often, changes meanwhile coalesced (as the OpenShift router)")
	f.DurationVar(&k.propagation, "propagation", 2*time.Second, "kube: how late an EndpointSlice change reaches the router (0: at once)")
}

// run performs the proving run on the chosen backend.
func (k *proveKubeFlags) run(ctx context.Context, flags *pflag.FlagSet, opts proving.Options) (*proving.Report, error) {
	switch k.backend {
	case "local":
		for _, name := range []string{"kubeconfig", "context", "namespace", "image", "pod-postgres-url", "prestop", "no-prestop", "reload-interval", "propagation"} {
			if flags.Changed(name) {
				return nil, cli.UsageErr(fmt.Errorf("--%s: only with --backend kube", name))
			}
		}
		return proving.Run(ctx, opts)
	case "kube":
	default:
		return nil, cli.UsageErr(fmt.Errorf("--backend %q: want local or kube", k.backend))
	}
	for _, name := range []string{"router", "router-lag", "then", "task-rate"} {
		if f := flags.Lookup(name); f != nil && f.Changed {
			return nil, cli.UsageErr(fmt.Errorf("--%s: not with --backend kube (the router reloads every --reload-interval; no worker runs)", name))
		}
	}
	if k.image == "" {
		return nil, cli.UsageErr(errors.New("--backend kube: give --image, the example's image without its tag (its tags are the releases: " +
			fmt.Sprint(catalog.Releases) + ")"))
	}
	if global.postgresURL == "" {
		return nil, cli.UsageErr(errors.New("--backend kube: give --postgres-url (or TANDEM_POSTGRES_URL): the database, which the pods reach at --pod-postgres-url"))
	}
	if k.reloadInterval <= 0 || k.preStop < 0 || k.propagation < 0 {
		return nil, cli.UsageErr(errors.New("--reload-interval must be positive, --prestop and --propagation not negative"))
	}
	propagation := k.propagation
	if propagation == 0 {
		propagation = -1 // none; zero is the default in KubeOptions
	}
	if opts.Upgrade == "" {
		i := slices.Index(catalog.Releases, opts.From)
		if i+1 >= len(catalog.Releases) {
			return nil, cli.UsageErr(fmt.Errorf("--backend kube upgrades: %s is the example's newest release; give --from", opts.From))
		}
		opts.Upgrade = catalog.Releases[i+1]
	}
	cfg, ns, err := kube.Config(k.kubeconfig, k.kubeCtx)
	if err != nil {
		return nil, cli.UsageErr(fmt.Errorf("--backend kube: %w", err))
	}
	if k.namespace != "" {
		ns = k.namespace
	}
	opts.PostgresURL, opts.TaskRate = global.postgresURL, -1
	return proving.RunKube(ctx, proving.KubeOptions{Options: opts, Config: cfg, Namespace: ns, Image: k.image,
		PodPostgresURL: k.podURL, PreStop: k.preStop, NoPreStop: k.noPreStop, ReloadInterval: k.reloadInterval, Propagation: propagation})
}
