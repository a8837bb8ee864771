package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade"
)

// streamsResult is what `tandem migrate tandem.yaml` prints with --json.
type streamsResult struct {
	Expanded      []migrate.StreamStep  `json:"expanded"`
	Contracted    []migrate.StreamStep  `json:"contracted"`
	VersionSchema string                `json:"version_schema,omitempty"`
	Streams       []migrate.StreamState `json:"streams"`
	DurationMS    int64                 `json:"duration_ms"`
}

// isStreamsFile reports whether tandem migrate's argument is a release description
// (a .yaml or .yml file) rather than a directory of migrations.
func isStreamsFile(arg string) bool {
	st, err := os.Stat(arg)
	ext := strings.ToLower(filepath.Ext(arg))
	return err == nil && !st.IsDir() && (ext == ".yaml" || ext == ".yml")
}

// migrateStreams is `tandem migrate tandem.yaml`: every stream's pending migrations as
// one expand step (after the lint gate on the pre-deploy files), and with complete the
// contract step too; with contractOnly, only the contract step.
func migrateStreams(cmd *cobra.Command, path string, complete, contractOnly, asJSON bool) error {
	ctx := cmd.Context()
	rel, streams, err := upgrade.ReadStreamsFile(path)
	if err != nil {
		return cli.UsageErr(err)
	}
	m, err := openMigrator(ctx)
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	t0 := time.Now()
	out := cmd.OutOrStdout()
	res := streamsResult{Expanded: []migrate.StreamStep{}, Contracted: []migrate.StreamStep{}}
	vs := ""
	if len(rel.Streams) > 0 {
		vs = rel.VersionSchema
	}
	if !contractOnly {
		plan, err := m.PlanStreams(ctx, streams, vs)
		if err != nil {
			return classify(err)
		}
		_, problems, err := upgrade.LintGate(ctx, rel, plan, global.postgresURL)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintln(cmd.ErrOrStderr(), p)
			}
			return fmt.Errorf("%d pre-deploy finding(s) block the expand step; nothing was applied", len(problems))
		}
		plan, err = m.ExpandStreams(ctx, streams, vs)
		if err != nil {
			return classify(err)
		}
		res.Expanded = plan.Expand
		if plan.Combined != nil {
			res.VersionSchema = plan.Combined.VersionSchemaIn(global.schema)
		}
	}
	if complete || contractOnly {
		plan, err := m.ContractStreams(ctx, streams, vs)
		if err != nil {
			return classify(err)
		}
		res.Contracted = plan.Contract
	}
	if res.Streams, err = m.StreamStatus(ctx, streams); err != nil {
		return err
	}
	res.DurationMS = time.Since(t0).Milliseconds()
	if asJSON {
		return printJSON(out, res)
	}
	if len(res.Expanded) == 0 && len(res.Contracted) == 0 {
		fmt.Fprintln(out, "nothing to apply: every stream is applied")
	}
	for _, st := range res.Expanded {
		fmt.Fprintf(out, "expanded %s\n", st)
	}
	if res.VersionSchema != "" {
		fmt.Fprintf(out, "version schema: %s\n", res.VersionSchema)
	}
	for _, st := range res.Contracted {
		fmt.Fprintf(out, "contracted %s\n", st)
	}
	printStreams(out, res.Streams)
	return nil
}

// printStreams prints each stream's applied, in-progress and pending migrations.
func printStreams(out io.Writer, states []migrate.StreamState) {
	if len(states) == 0 {
		return
	}
	fmt.Fprintln(out, "streams:")
	for _, s := range states {
		name := s.Name
		if name == "" {
			name = "(plain names)"
		}
		fmt.Fprintf(out, "  %-12s %-6s applied %d", name, s.Kind, len(s.Applied))
		if len(s.Applied) > 0 {
			fmt.Fprintf(out, " (last %s)", s.Applied[len(s.Applied)-1])
		}
		if len(s.InProgress) > 0 {
			fmt.Fprintf(out, ", in progress %s", strings.Join(s.InProgress, ", "))
		}
		if len(s.Pending) > 0 {
			fmt.Fprintf(out, ", pending %s", strings.Join(s.Pending, ", "))
		}
		fmt.Fprintln(out)
	}
}

// printPlanStreams prints the plain-SQL files an upgrade plan runs and every stream's
// state, for a release with streams.
func printPlanStreams(w io.Writer, p *upgrade.Plan) {
	if len(p.PreDeploy) > 0 {
		fmt.Fprintf(w, "pre-deploy SQL (expand, first; linted): %s\n", strings.Join(p.PreDeploy, ", "))
	}
	if len(p.PostDeploy) > 0 {
		fmt.Fprintf(w, "post-deploy SQL (contract, last): %s\n", strings.Join(p.PostDeploy, ", "))
	}
	printStreams(w, p.Streams)
}
