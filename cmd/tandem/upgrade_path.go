package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/upgrade"
)

// readTarget reads the release catalog (--catalog) and the target release in it: a
// version of the catalog, or a tandem.yaml (which then takes the place of the catalog's
// release of its version). Without --catalog the catalog is the target alone.
func readTarget(f *upgradeFlags, args []string) (*upgrade.Catalog, *upgrade.Release, error) {
	if f.catalog == "" {
		rel, err := readRelease(args)
		if err != nil {
			return nil, nil, err
		}
		cat, err := upgrade.NewCatalog(rel)
		return cat, rel, err
	}
	cat, err := upgrade.ReadCatalog(f.catalog)
	if err != nil {
		return nil, nil, cli.UsageErr(fmt.Errorf("--catalog: %w", err))
	}
	if len(args) == 0 {
		return nil, nil, cli.UsageErr(fmt.Errorf("give the target release: a version of the catalog (%s) or a tandem.yaml",
			strings.Join(cat.Versions(), ", ")))
	}
	if rel, ok := cat.Release(args[0]); ok {
		return cat, rel, nil
	}
	if _, err := os.Stat(args[0]); err != nil {
		return nil, nil, cli.UsageErr(fmt.Errorf("%s is neither a version of the catalog %s (%s) nor a tandem.yaml",
			args[0], f.catalog, strings.Join(cat.Versions(), ", ")))
	}
	rel, err := readRelease(args)
	if err != nil {
		return nil, nil, err
	}
	rels := []*upgrade.Release{rel}
	for _, r := range cat.Releases {
		if upgrade.CompareVersions(r.Version, rel.Version) != 0 {
			rels = append(rels, r)
		}
	}
	if cat, err = upgrade.NewCatalog(rels...); err != nil {
		return nil, nil, cli.UsageErr(err)
	}
	return cat, rel, nil
}

// pathResult prints what ApplyPath did and maps the error to an exit code: a path of one
// hop as that upgrade, a longer one with its hops.
func pathResult(cmd *cobra.Command, f *upgradeFlags, path *upgrade.PathRecord, err error) error {
	if path == nil || path.ID == 0 {
		var rec *upgrade.Record
		if path != nil && len(path.Upgrades) > 0 {
			rec = path.Upgrades[0]
		}
		return upgradeResult(cmd, f, rec, err)
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		if jerr := printJSON(out, path); jerr != nil {
			return jerr
		}
	} else {
		printPathRecord(out, path)
	}
	return err
}

func printPathRecord(w io.Writer, p *upgrade.PathRecord) {
	fmt.Fprintf(w, "upgrade path %d of %s: %s -> %s, %s\n", p.ID, p.App, orDash(p.From), p.To, p.Status)
	if p.Error != "" {
		fmt.Fprintf(w, "  %s\n", p.Error)
	}
	for i, v := range p.Versions {
		state := "to do"
		for _, up := range p.Upgrades {
			if up.To == v {
				state = fmt.Sprintf("upgrade %d, %s", up.ID, up.Status)
				if up.Active() {
					state += " at step " + up.Step
				}
			}
		}
		fmt.Fprintf(w, "  hop %d: %s (%s)\n", i+1, v, state)
	}
}

// printPathPlan prints the path's hops, then the first hop's plan.
func printPathPlan(w io.Writer, pp *upgrade.PathPlan) {
	if len(pp.Hops) > 1 {
		vs := []string{orDash(pp.From)}
		for _, h := range pp.Hops {
			vs = append(vs, h.Release)
		}
		fmt.Fprintf(w, "path to %s: %s (%d hops, each a whole upgrade)\n", pp.Target, strings.Join(vs, " -> "), len(pp.Hops))
		for i, h := range pp.Hops {
			fmt.Fprintf(w, "  hop %d: %s (compatible from %s, contract %s", i+1, h.Release, h.CompatibleFrom, h.Contract)
			if h.CompletesDeferred != "" {
				fmt.Fprintf(w, "; completes %s's deferred contract first", h.CompletesDeferred)
			}
			fmt.Fprintf(w, "): %s\n", strings.Join(h.Steps, ", "))
		}
		fmt.Fprintln(w, "hop 1, against the live database:")
	}
	printPlan(w, pp.Plan)
}

// printPlanMode prints what the plan says of its mode: a deferred contract, a rollback,
// a maintenance window.
func printPlanMode(w io.Writer, p *upgrade.Plan) {
	if pc := p.PendingContract; pc != nil {
		fmt.Fprintf(w, "pending contract: %s's (migration %s, deferred by upgrade %d); %s's schema version %s is still there\n",
			pc.Release, pc.Migration, pc.Upgrade, pc.OldRelease, pc.OldVersionSchema)
	}
	switch p.Mode {
	case upgrade.ModeRollback:
		fmt.Fprintf(w, "mode: app rollback to %s on its schema version %s, no database change\n", p.To, p.TargetVersionSchema)
	case upgrade.ModeDowntime:
		fmt.Fprintln(w, "mode: MAINTENANCE WINDOW (--allow-downtime): stop the old instances, migrate and complete, start the new ones, because:")
		for _, r := range p.DowntimeReasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
		if e := p.ExpectedDowntime; e != nil {
			fmt.Fprintf(w, "expected downtime: ~%s (stop %s, migrate %s, start %s; %s)\n", e.Total.Round(time.Second),
				e.Stop.Round(time.Second), e.Migrate.Round(time.Second), e.Start.Round(time.Second), e.Basis)
		}
	}
}

// printStatusPath prints the path the upgrade is a hop of, and a pending contract.
func printStatusPath(w io.Writer, rep *upgrade.StatusReport) {
	if rep.Upgrade.Mode != "" && rep.Upgrade.Mode != upgrade.ModeRolling {
		fmt.Fprintf(w, "mode: %s\n", rep.Upgrade.Mode)
	}
	if d := rep.Upgrade.Downtime(); d > 0 {
		fmt.Fprintf(w, "downtime: %s (measured)\n", d.Round(time.Millisecond))
	}
	if rep.Path != nil {
		printPathRecord(w, rep.Path)
	}
	if pc := rep.PendingContract; pc != nil {
		fmt.Fprintf(w, "pending contract: %s's (migration %s); %s's schema version %s stays until the next upgrade completes it, "+
			"so `tandem upgrade apply` of %s rolls the app back with no database change\n",
			pc.Release, pc.Migration, pc.OldRelease, pc.OldVersionSchema, pc.OldRelease)
	}
}
