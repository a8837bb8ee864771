package upgrade

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/lint"
	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade/kube/check"
)

// Preflighter is a Backend that checks, before anything changes, that the release's
// workloads as they run now can roll without downtime. Plan adds the problems it finds
// to its own, so that Apply refuses the upgrade.
type Preflighter interface {
	Preflight(ctx context.Context, rel *Release) (problems []string, err error)
}

// Plan is what an upgrade to a release would do, and whether it can be done without
// downtime.
type Plan struct {
	App string `json:"app"`
	// From is the release that runs now ("" for none); To the release to install.
	From string `json:"from"`
	To   string `json:"to"`
	// CompatibleFrom and Maintenance are the release's.
	CompatibleFrom string `json:"compatible_from"`
	Maintenance    string `json:"maintenance"`
	// Possible is false when the upgrade cannot be done without downtime; Problems say
	// why, each with what to do.
	Possible bool     `json:"possible"`
	Problems []string `json:"problems"`
	// Running is what the instance registry shows alive now.
	Running []lifecycle.VersionCount `json:"running"`
	// CurrentMigration and CurrentVersionSchema are the engine's newest migration and
	// the schema version the running code uses.
	CurrentMigration     string `json:"current_migration"`
	CurrentVersionSchema string `json:"current_version_schema"`
	// Pending are the release's migrations not applied yet, applied as one expand step.
	Pending []string `json:"pending"`
	// PreDeploy and PostDeploy are the plain-SQL streams' pending files, run at expand
	// and at contract; Streams every stream's state, for a release with streams:.
	PreDeploy  []string              `json:"pre_deploy,omitempty"`
	PostDeploy []string              `json:"post_deploy,omitempty"`
	Streams    []migrate.StreamState `json:"streams,omitempty"`
	// LintFindings are the linter's findings on the pending pre-deploy files; those of
	// severity error are Problems too.
	LintFindings []lint.Finding `json:"lint_findings,omitempty"`
	// TargetVersionSchema is the schema version the release's code will use.
	TargetVersionSchema string `json:"target_version_schema"`
	// Backfills are the tables the expand step fills, with the catalog's row estimates.
	Backfills []migrate.BackfillEstimate `json:"backfills"`
	// Steps are the upgrade's steps, in order.
	Steps []string `json:"steps"`
	// InProgress is an upgrade of the app that is under way, if any.
	InProgress *Record `json:"in_progress,omitempty"`
	// Mode is how the upgrade would run: rolling, downtime (a maintenance window, only
	// with --allow-downtime) or rollback (the app back to the release before a deferred
	// contract).
	Mode string `json:"mode"`
	// PendingContract is a release's deferred contract, still to be done; a rolling
	// upgrade completes it first.
	PendingContract *PendingContract `json:"pending_contract,omitempty"`
	// DowntimeReasons say why the upgrade needs a maintenance window (Mode downtime).
	DowntimeReasons []string `json:"downtime_reasons,omitempty"`
	// ExpectedDowntime is the plan's estimate of the window (Mode downtime).
	ExpectedDowntime *DowntimeEstimate `json:"expected_downtime,omitempty"`
	// ManifestCheck is `tandem check` on the release's manifests (backend kube); its
	// errors are Problems too.
	ManifestCheck *check.Result `json:"manifest_check,omitempty"`

	migration *migrate.Migration // the combined pending migrations; nil when none
	window    []string           // the Problems about the window (compatible-from)
}

// Steps of an upgrade. A roll step is "roll/<workload>".
const (
	StepPreflight      = "preflight"
	StepMaintenanceOn  = "maintenance-on"
	StepExpand         = "expand"
	StepRollPrefix     = "roll/"
	StepWaitOldGone    = "wait-old-gone"
	StepContract       = "contract"
	StepMaintenanceOff = "maintenance-off"
	StepDone           = "done"
)

// StepsOf returns the steps of a rolling upgrade to rel, in order (see Record.Steps for
// the other modes).
func StepsOf(rel *Release) []string { return stepsFor(rel, ModeRolling, false) }

// Plan reads what runs now and what rel needs, and says what an upgrade would do. It
// changes nothing.
func (u *Upgrader) Plan(ctx context.Context, rel *Release) (*Plan, error) {
	return u.plan(ctx, rel, false)
}

// plan is Plan; with allowDowntime, an upgrade that only the window (compatible-from)
// prevents is planned as a maintenance-window upgrade instead of refused.
func (u *Upgrader) plan(ctx context.Context, rel *Release, allowDowntime bool) (*Plan, error) {
	pc, err := u.pendingContract(ctx, rel)
	if err != nil {
		return nil, err
	}
	if pc != nil && rel.Version == pc.OldRelease && rel.Version != pc.Release {
		return u.planAppRollback(ctx, rel, pc)
	}
	p := &Plan{App: rel.App, To: rel.Version, CompatibleFrom: rel.CompatibleFrom, Maintenance: rel.Maintenance,
		Problems: []string{}, Mode: ModeRolling, PendingContract: pc}
	problem := func(format string, args ...any) { p.Problems = append(p.Problems, fmt.Sprintf(format, args...)) }
	windowProblem := func(format string, args ...any) {
		problem(format, args...)
		p.window = append(p.window, p.Problems[len(p.Problems)-1])
	}

	// What runs now: the registry, and the releases installed by earlier upgrades.
	reg := u.registry(rel)
	versions, err := reg.Versions(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.App == rel.App {
			p.Running = append(p.Running, v)
		}
	}
	last, err := u.st.lastDone(ctx, u.pool, rel.App)
	if err != nil {
		return nil, err
	}
	if last != nil {
		p.From = last.To
		if err := u.droppedWorkloads(ctx, last, rel, problem); err != nil {
			return nil, err
		}
	}
	if act, err := u.st.active(ctx, u.pool, rel.App); err != nil {
		return nil, err
	} else if act != nil {
		p.InProgress = act
		if act.To == rel.Version && act.Status == StatusRunning {
			problem("upgrade %d to %s is in progress (next step: %s); run `tandem upgrade resume` to continue it, or `tandem upgrade abort`", act.ID, act.To, act.Step)
		} else {
			problem("upgrade %d of %s to %s is %s (step %s); finish it with `tandem upgrade resume` or `tandem upgrade abort` first",
				act.ID, act.App, act.To, act.Status, act.Step)
		}
	}

	// The window: every running version must be at least compatible-from, and none
	// newer than the release.
	from := p.From
	for _, v := range p.Running {
		if CompareVersions(v.AppVersion, rel.CompatibleFrom) < 0 {
			windowProblem("%d instance(s) of %s %s are running, older than this release's compatible-from %s: "+
				"upgrade to a release between them first (or wait until those instances are gone)",
				v.Instances, v.App, v.AppVersion, rel.CompatibleFrom)
		}
		if CompareVersions(v.AppVersion, rel.Version) > 0 {
			problem("%d instance(s) of %s %s are running, newer than %s: tandem does not downgrade (an app rollback needs the newer release's contract deferred: see docs/upgrade.md)",
				v.Instances, v.App, v.AppVersion, rel.Version)
		}
		if from == "" || CompareVersions(v.AppVersion, from) < 0 {
			from = v.AppVersion
		}
	}
	if p.From != "" && len(p.Running) == 0 && CompareVersions(p.From, rel.CompatibleFrom) < 0 {
		windowProblem("the database was last upgraded to %s, older than this release's compatible-from %s: upgrade to a release between them first",
			p.From, rel.CompatibleFrom)
	}
	if p.From == "" {
		p.From = from
	}

	// The release's Kubernetes manifests: what would break the roll (tandem check).
	mc, problems := CheckManifests(ctx, rel)
	p.ManifestCheck, p.Problems = mc, append(p.Problems, problems...)
	// ... and of the workloads as they run, when the backend can tell.
	if pf, ok := u.opts.Backend.(Preflighter); ok {
		problems, err := pf.Preflight(ctx, rel)
		if err != nil {
			return nil, err
		}
		p.Problems = append(p.Problems, problems...)
	}

	// What the release needs: its pending migrations, validated against the live schema.
	m, err := u.migrator(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer m.Close(context.WithoutCancel(ctx))
	sp, err := u.planStreams(ctx, m, rel, p)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		return u.finishPlan(ctx, p, rel, allowDowntime)
	}
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	p.CurrentMigration, p.CurrentVersionSchema = st.Version, st.VersionSchema
	if p.CurrentVersionSchema == "" {
		p.CurrentVersionSchema = rel.Schema
	}
	if pc != nil && p.From == pc.OldRelease {
		p.CurrentVersionSchema = pc.OldVersionSchema // rolled back within the window
		if rel.Version != pc.Release {
			// The deferred contract drops the schema the running release uses: it
			// could only wait for instances this upgrade has not rolled yet.
			problem("the app runs %s, rolled back from %s whose contract is deferred: that contract needs every instance on %s first: "+
				"roll forward to %s (`tandem upgrade apply` of it), then upgrade to %s",
				pc.OldRelease, pc.Release, pc.Release, pc.Release, rel.Version)
		}
	}
	// The deferred contract's migration is still in progress; the upgrade completes it.
	// Its migrations are applied, not completed: not this upgrade's to apply.
	deferred := pc != nil && st.Active != nil && st.Active.Name == pc.Migration
	combined := sp.Combined
	var kept []*migrate.Migration
	for _, step := range sp.Expand {
		if step.Kind != migrate.StreamPgroll {
			continue
		}
		if deferred && (step.Migration.Name == st.Active.Name || slices.Contains(st.Active.Includes, step.Migration.Name)) {
			continue
		}
		p.Pending = append(p.Pending, step.String())
		kept = append(kept, step.Migration)
	}
	if deferred {
		combined = nil
		if len(kept) > 0 {
			combined = migrate.Combine(kept)
		}
	}
	if combined != nil {
		p.migration = combined
		p.TargetVersionSchema = m.VersionSchemaFor(p.migration)
		ours := p.InProgress != nil && p.InProgress.Migration == p.migration.Name
		if st.Active != nil && st.Active.Name != p.migration.Name && !ours && !deferred {
			problem("migration %s is in progress in schema %s: complete it (`tandem complete`) or roll it back (`tandem rollback`) first",
				st.Active.Name, rel.Schema)
		}
		// With a deferred contract pending, the live schema is that release's, still
		// expanded: the pending migrations come after its contract, so the expand step
		// validates them once the contract is done.
		if !deferred {
			if err := m.Validate(ctx, p.migration); err != nil {
				problem("the pending migrations do not validate against the live schema: %v", err)
			}
		}
		if bf, err := m.EstimateBackfills(ctx, p.migration); err != nil {
			return nil, err
		} else {
			p.Backfills = bf
		}
	} else {
		p.TargetVersionSchema = st.VersionSchema
		if p.TargetVersionSchema == "" {
			p.TargetVersionSchema = rel.Schema
		}
		if st.Active != nil && (p.InProgress == nil || p.InProgress.Migration != st.Active.Name) && !deferred {
			problem("migration %s is in progress in schema %s: complete it (`tandem complete`) or roll it back (`tandem rollback`) first",
				st.Active.Name, rel.Schema)
		}
	}
	if rel.VersionSchema != "" && rel.VersionSchema != p.TargetVersionSchema {
		problem("tandem.yaml's version-schema is %s, but the migrations make %s: correct version-schema, or leave it out",
			rel.VersionSchema, p.TargetVersionSchema)
	}
	return u.finishPlan(ctx, p, rel, allowDowntime)
}

// CompareVersions orders release versions: runs of digits compare as numbers, the rest
// as text, so v2 < v10 and 1.9.0 < 1.10.0. It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	as, bs := versionParts(a), versionParts(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

func versionParts(v string) []string {
	var parts []string
	var cur strings.Builder
	digit := false
	for _, r := range strings.TrimPrefix(strings.ToLower(v), "v") {
		if r == '.' || r == '-' || r == '_' || r == '+' {
			if cur.Len() > 0 {
				parts = append(parts, cur.String())
				cur.Reset()
			}
			continue
		}
		d := unicode.IsDigit(r)
		if cur.Len() > 0 && d != digit {
			parts = append(parts, cur.String())
			cur.Reset()
		}
		digit = d
		cur.WriteRune(r)
	}
	if cur.Len() > 0 {
		parts = append(parts, cur.String())
	}
	return parts
}

// droppedWorkloads reports, through problem, each workload of the installed release
// (last) that rel no longer has and whose instances still run: nothing would roll or stop
// them, so they would run the old version into contract (the wait for the old version
// would time out on them).
func (u *Upgrader) droppedWorkloads(ctx context.Context, last *Record, rel *Release, problem func(string, ...any)) error {
	if u.opts.Backend == nil || last.Release == nil {
		return nil
	}
	for _, w := range last.Release.Workloads {
		if _, ok := rel.workload(w.Name); ok {
			continue
		}
		ins, err := u.opts.Backend.Instances(ctx, u.target(last, w))
		if err != nil {
			return fmt.Errorf("list the instances of workload %s, which release %s drops: %w", w.Name, rel.Version, err)
		}
		if len(ins) > 0 {
			problem("workload %s of release %s is not in release %s, and %d instance(s) of it still run (%s): stop them first, "+
				"or keep the workload in the release", w.Name, last.To, rel.Version, len(ins), ins[0].Name)
		}
	}
	return nil
}
