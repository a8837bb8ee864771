package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
	"github.com/tandem-pg/tandem/upgrade/kube/check/cluster"
)

// newCheckCmd builds "tandem check": the preflight of Kubernetes manifests.
func newCheckCmd() *cobra.Command {
	var (
		out       cli.ReportFlags
		listRules bool
		namespace string
		disable   []string
		opts      check.Options
		live      bool
		kubecfg   string
		kubectx   string
		allNS     bool
	)
	cmd := &cobra.Command{
		Use:   "check [PATH|-]...",
		Short: "Find what in Kubernetes manifests breaks a zero-downtime rolling upgrade",
		Long: `Check Deployments, and the PersistentVolumeClaims and PodDisruptionBudgets beside them,
for what makes a rolling upgrade fail requests or stall: no readiness probe, a readiness
probe that is the liveness probe, no preStop sleep as long as the router's reload interval
plus propagation, a grace period shorter than the drain, a strategy that stops old pods
first, a single replica, a ReadWriteOnce volume under RollingUpdate, no
PodDisruptionBudget, an image whose version is ambiguous (:latest). Each finding names the
object, the file and line, and gives the fix as YAML. docs/check.md explains every rule.

Paths are manifest files (several documents each, Lists too), directories (every *.yaml,
*.yml and *.json under them) or - for standard input:
  kustomize build overlays/prod | tandem check -
  helm template my-release ./chart | tandem check -

An app declares how it shuts down with annotations on the pod template:
  tandem.dev/drain-delay: 10s           # it keeps serving this long after SIGTERM
  tandem.dev/shutdown-timeout: 15s      # then finishes in-flight requests within this
  tandem.dev/long-lived-requests: 60s   # and lets requests this long finish
  tandem.dev/check-ignore: replicas     # rules not to run on this Deployment

--cluster reads the Deployments, claims and budgets of a live cluster instead (the
kubeconfig's current context and namespace unless --kubeconfig, --context, --namespace
or --all-namespaces say otherwise; in a pod, its service account). It needs get and list
on deployments, persistentvolumeclaims and poddisruptionbudgets.

Exit codes: 0 no findings at error level, 1 findings at error level, 2 input unreadable
(the error names the file and line).`,
		Example: `  tandem check deploy/
  kustomize build overlays/prod | tandem check --format github -
  tandem check --router-reload 10s --json manifests.yaml
  tandem check --cluster --context prod -n shop`,
		Args: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return nil
			}
			if live {
				return cli.ArgsErr(cobra.NoArgs)(cmd, args)
			}
			for _, fl := range []string{"kubeconfig", "context", "all-namespaces"} {
				if cmd.Flags().Changed(fl) {
					return cli.UsageErr(fmt.Errorf("--%s reads a live cluster: add --cluster (and give no paths)", fl))
				}
			}
			return cli.ArgsErr(cobra.MinimumNArgs(1))(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return printCheckRules(cmd)
			}
			format, err := out.Resolve(cmd)
			if err != nil {
				return err
			}
			for _, id := range disable {
				if !check.KnownRule(id) {
					return cli.UsageErr(fmt.Errorf("--disable: %q is not a rule (tandem check --list-rules lists them)", id))
				}
			}
			opts.Disable = disable
			if opts.RouterReload < 0 || opts.Propagation < 0 || opts.ShutdownTimeout < 0 {
				return cli.UsageErr(errors.New("--router-reload, --propagation and --shutdown-timeout must not be negative"))
			}
			var src check.Source = check.Files{Paths: args, Stdin: cmd.InOrStdin(), Namespace: namespace}
			if live {
				cs, err := cluster.Connect(kubecfg, kubectx, namespace, allNS)
				if err != nil {
					return cli.UsageErr(err)
				}
				src = cs
			}
			in, err := src.Read(cmd.Context())
			if err != nil {
				return cli.UsageErr(err)
			}
			res := check.Check(in, opts)
			if err := check.Write(cmd.OutOrStdout(), format, res); err != nil {
				return err
			}
			if res.Errors() > 0 {
				return cli.SilentExit(cli.ExitFailure)
			}
			return nil
		},
	}
	f := cmd.Flags()
	out.Add(cmd)
	f.BoolVar(&listRules, "list-rules", false, "list the rules and exit")
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the objects that name none [default]; with --cluster, the namespace read [the context's]")
	f.BoolVar(&live, "cluster", false, "read the objects from a live cluster instead of manifests")
	f.StringVar(&kubecfg, "kubeconfig", "", "with --cluster: the kubeconfig file [$KUBECONFIG, ~/.kube/config, else in-cluster]")
	f.StringVar(&kubectx, "context", "", "with --cluster: the kubeconfig context [the current one]")
	f.BoolVarP(&allNS, "all-namespaces", "A", false, "with --cluster: read every namespace")
	f.StringSliceVar(&disable, "disable", nil, "rules not to run, comma-separated")
	f.DurationVar(&opts.RouterReload, "router-reload", check.DefaultRouterReload, "how often the router applies endpoint changes (OpenShift's router: 5s)")
	f.DurationVar(&opts.Propagation, "propagation", check.DefaultPropagation, "how long an endpoint change takes to reach the router")
	f.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", check.DefaultShutdownTimeout, "the apps' shutdown timeout, when a Deployment declares none ("+check.AnnotationShutdownTimeout+")")
	return cmd
}

func printCheckRules(cmd *cobra.Command) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSEVERITY\tSUMMARY")
	for _, r := range check.Rules() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Severity, r.Summary)
	}
	return tw.Flush()
}
