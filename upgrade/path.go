package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// PathOptions configure PlanPath and ApplyPath.
type PathOptions struct {
	// AllowDowntime lets a target that no zero-downtime path reaches be installed in a
	// maintenance window (ModeDowntime) instead of refused.
	AllowDowntime bool
}

// PathPlan is what an upgrade to a target through a release catalog would do: its hops,
// and the first hop's plan against the live database (its fields are flattened into the
// JSON; later hops are planned when they begin, since the earlier ones change what they
// see). Possible and Problems are the whole path's verdict.
type PathPlan struct {
	*Plan
	// Target is the release the path ends at.
	Target string `json:"target"`
	// Hops are the upgrades in order; each is a whole expand, roll, contract.
	Hops []Hop `json:"hops"`
}

// Hop is one upgrade of a path.
type Hop struct {
	Release        string   `json:"release"`
	CompatibleFrom string   `json:"compatible_from"`
	Contract       string   `json:"contract"`
	Mode           string   `json:"mode"`
	Steps          []string `json:"steps"`
	// CompletesDeferred names the release whose deferred contract the hop completes
	// first.
	CompletesDeferred string `json:"completes_deferred,omitempty"`
}

// PathRecord is an upgrade through several releases as the state schema holds it
// (tandem.upgrade_paths); each hop is an upgrade (Record) with the path's id.
type PathRecord struct {
	ID   int64  `json:"id"`
	App  string `json:"app"`
	From string `json:"from"`
	To   string `json:"to"`
	// Hops are the releases of the path, in order.
	Hops      []*Release `json:"-"`
	Versions  []string   `json:"hops"`
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	StartedAt time.Time  `json:"started_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Upgrades are the hops' upgrades so far, oldest first.
	Upgrades []*Record `json:"upgrades"`
}

// last returns the path's newest upgrade, or nil.
func (p *PathRecord) last() *Record {
	if p == nil || len(p.Upgrades) == 0 {
		return nil
	}
	return p.Upgrades[len(p.Upgrades)-1]
}

func (s store) pathTables() []string {
	return []string{`CREATE TABLE IF NOT EXISTS ` + s.table("upgrade_paths") + ` (
			id           bigserial PRIMARY KEY,
			app          text NOT NULL,
			from_version text NOT NULL DEFAULT '',
			to_version   text NOT NULL,
			hops         jsonb NOT NULL,
			status       text NOT NULL,
			error        text NOT NULL DEFAULT '',
			started_at   timestamptz NOT NULL DEFAULT now(),
			updated_at   timestamptz NOT NULL DEFAULT now())`}
}

func (s store) path(ctx context.Context, db querier, where string, args ...any) (*PathRecord, error) {
	var p PathRecord
	var hops []byte
	err := db.QueryRow(ctx, `SELECT id, app, from_version, to_version, hops, status, error, started_at, updated_at FROM `+
		s.table("upgrade_paths")+` `+where+` ORDER BY id DESC LIMIT 1`, args...).
		Scan(&p.ID, &p.App, &p.From, &p.To, &hops, &p.Status, &p.Error, &p.StartedAt, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the upgrade path: %w", err)
	}
	if err := json.Unmarshal(hops, &p.Hops); err != nil {
		return nil, fmt.Errorf("decode the stored hops of path %d: %w", p.ID, err)
	}
	for _, h := range p.Hops {
		p.Versions = append(p.Versions, h.Version)
	}
	return &p, nil
}

func (s store) insertPath(ctx context.Context, db querier, p *PathRecord) error {
	hops, err := json.Marshal(p.Hops)
	if err != nil {
		return err
	}
	err = db.QueryRow(ctx, `INSERT INTO `+s.table("upgrade_paths")+` (app, from_version, to_version, hops, status)
		VALUES ($1, $2, $3, $4, $5) RETURNING id, started_at, updated_at`, p.App, p.From, p.To, hops, p.Status).
		Scan(&p.ID, &p.StartedAt, &p.UpdatedAt)
	if err != nil {
		return fmt.Errorf("record the upgrade path: %w", err)
	}
	return nil
}

// pathUpgrades returns the upgrades of path id, oldest first, without their timelines.
func (s store) pathUpgrades(ctx context.Context, db querier, id int64) ([]*Record, error) {
	rows, err := db.Query(ctx, `SELECT `+recordColumns+` FROM `+s.table("upgrades")+` WHERE path_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read the upgrades of path %d: %w", id, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Record, error) { return scanRecord(row) })
}

// endPath records that path id (0: none) ended with status.
func (u *Upgrader) endPath(ctx context.Context, id int64, status, why string) error {
	if id == 0 {
		return nil
	}
	_, err := u.pool.Exec(ctx, `UPDATE `+u.st.table("upgrade_paths")+` SET status = $2, error = $3, updated_at = now() WHERE id = $1`,
		id, status, why)
	if err != nil {
		return fmt.Errorf("record the end of upgrade path %d: %w", id, err)
	}
	return nil
}

// activePath returns the app's path in progress, or nil.
func (u *Upgrader) activePath(ctx context.Context, app string) (*PathRecord, error) {
	if err := u.st.init(ctx, u.pool); err != nil {
		return nil, err
	}
	return u.st.path(ctx, u.pool, `WHERE app = $1 AND status = $2`, app, StatusRunning)
}

// currentVersion is the version a path starts from: the oldest of the release the
// last upgrade installed and the versions the registry shows alive; "" for none.
func (u *Upgrader) currentVersion(ctx context.Context, rel *Release) (string, error) {
	from := ""
	if last, err := u.st.lastDone(ctx, u.pool, rel.App); err != nil {
		return "", err
	} else if last != nil {
		from = last.To
	}
	versions, err := u.registry(rel).Versions(ctx)
	if err != nil {
		return "", err
	}
	for _, v := range versions {
		if v.App == rel.App && (from == "" || CompareVersions(v.AppVersion, from) < 0) {
			from = v.AppVersion
		}
	}
	return from, nil
}

// PlanPath plans an upgrade to release target of cat: the path from the running version
// (see Catalog.Path), and the first hop's plan. A target that no zero-downtime path
// reaches is refused with the reason, or, with AllowDowntime, planned as one
// maintenance-window upgrade. It changes nothing.
func (u *Upgrader) PlanPath(ctx context.Context, cat *Catalog, target string, o PathOptions) (*PathPlan, error) {
	rel, ok := cat.Release(target)
	if !ok {
		return nil, fmt.Errorf("release %s is not in the catalog (it has %v)", target, cat.Versions())
	}
	if err := u.st.init(ctx, u.pool); err != nil {
		return nil, err
	}
	from, err := u.currentVersion(ctx, rel)
	if err != nil {
		return nil, err
	}
	hops, perr := cat.Path(from, rel.Version)
	var unreachable *UnreachableError
	if perr != nil && !errors.As(perr, &unreachable) {
		return nil, perr
	}
	pp := &PathPlan{Target: rel.Version}
	if unreachable != nil {
		// No zero-downtime path: the target alone, in a maintenance window if allowed.
		if pp.Plan, err = u.plan(ctx, rel, o.AllowDowntime); err != nil {
			return nil, err
		}
		if pp.Mode != ModeDowntime {
			pp.Problems = append([]string{unreachable.Error()}, pp.Problems...)
		}
		hops = []*Release{rel}
	} else if pp.Plan, err = u.plan(ctx, hops[0], o.AllowDowntime && len(hops) == 1); err != nil {
		return nil, err
	}
	for i, h := range hops {
		hop := Hop{Release: h.Version, CompatibleFrom: h.CompatibleFrom, Contract: h.Contract, Mode: ModeRolling}
		switch {
		case i == 0:
			hop.Mode, hop.Steps = pp.Mode, pp.Steps
			if slices.Contains(pp.Steps, StepCompleteDeferred) {
				hop.CompletesDeferred = pp.PendingContract.Release
			}
		default:
			prev := hops[i-1].Contract == ContractDeferred
			hop.Steps = stepsFor(h, ModeRolling, prev)
			if prev {
				hop.CompletesDeferred = hops[i-1].Version
			}
		}
		pp.Hops = append(pp.Hops, hop)
	}
	if act, err := u.activePath(ctx, rel.App); err != nil {
		return nil, err
	} else if act != nil {
		pp.Problems = append(pp.Problems, fmt.Sprintf("upgrade path %d of %s to %s (hops %v) is in progress; run `tandem upgrade resume` to continue it",
			act.ID, act.App, act.To, act.Versions))
	}
	pp.Possible = len(pp.Problems) == 0
	return pp, nil
}

// ApplyPath upgrades the app to release target of cat through the hops PlanPath
// computes, one whole upgrade after another. The path is recorded, and each hop's
// upgrade with it, so that Resume finishes the path after a crash, between hops or
// inside one. A path of one hop is a plain upgrade (see Apply), not recorded as a path.
// It refuses with a *PlanError when the path is not possible.
func (u *Upgrader) ApplyPath(ctx context.Context, cat *Catalog, target string, o PathOptions) (*PathRecord, error) {
	if u.opts.Backend == nil {
		return nil, errors.New("no backend to run the release's instances")
	}
	rel, ok := cat.Release(target)
	if !ok {
		return nil, fmt.Errorf("release %s is not in the catalog (it has %v)", target, cat.Versions())
	}
	if err := u.st.init(ctx, u.pool); err != nil {
		return nil, err
	}
	ctx, unlock, err := u.lock(ctx, rel.App)
	if err != nil {
		return nil, err
	}
	defer unlock()
	pp, err := u.PlanPath(ctx, cat, target, o)
	if err != nil {
		return nil, err
	}
	if !pp.Possible {
		return nil, &PlanError{Plan: pp.Plan, Path: pp}
	}
	path := &PathRecord{App: rel.App, From: pp.From, To: rel.Version, Status: StatusRunning}
	for _, h := range pp.Hops {
		r, _ := cat.Release(h.Release)
		path.Hops = append(path.Hops, r)
		path.Versions = append(path.Versions, r.Version)
	}
	if len(path.Hops) == 1 {
		rec, err := u.applyLocked(ctx, path.Hops[0], pp.Plan, o.AllowDowntime, 0)
		if rec != nil {
			path.Upgrades, path.Status = []*Record{rec}, rec.Status
		}
		return path, err
	}
	if err := u.st.insertPath(ctx, u.pool, path); err != nil {
		return nil, err
	}
	return u.runPath(ctx, path, pp.Plan)
}

// resumePath continues a path in progress under the app's upgrade lock.
func (u *Upgrader) resumePath(ctx context.Context, path *PathRecord) (*PathRecord, error) {
	ctx, unlock, err := u.lock(ctx, path.App)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return u.runPath(ctx, path, nil)
}

// runPath runs the path from where its upgrades show it is: the newest hop's upgrade is
// resumed if unfinished, then each next hop is applied; first, if given, is the first
// hop's plan. Call with the app's lock held.
func (u *Upgrader) runPath(ctx context.Context, path *PathRecord, first *Plan) (*PathRecord, error) {
	for {
		recs, err := u.st.pathUpgrades(ctx, u.pool, path.ID)
		if err != nil {
			return path, err
		}
		path.Upgrades = recs
		next := 0
		if last := path.last(); last != nil {
			switch last.Status {
			case StatusRunning, StatusAborting:
				last.Holder = holder()
				u.event(ctx, last, last.Step, fmt.Sprintf("resumed at step %s by %s (path %d)", last.Step, last.Holder, path.ID), 0)
				if last.Status == StatusAborting {
					_, err := u.abort(ctx, last)
					return path, err
				}
				if _, err := u.run(ctx, last); err != nil {
					return path, err
				}
				continue
			case StatusAborted:
				why := fmt.Sprintf("hop %s (upgrade %d) was aborted", last.To, last.ID)
				if err := u.endPath(ctx, path.ID, StatusAborted, why); err != nil {
					return path, err
				}
				path.Status = StatusAborted
				return path, fmt.Errorf("upgrade path %d to %s stopped: %s; apply again to start over from what runs", path.ID, path.To, why)
			}
			for i, h := range path.Hops {
				if h.Version == last.To {
					next = i + 1
				}
			}
		}
		if next >= len(path.Hops) {
			path.Status = StatusDone
			return path, u.endPath(ctx, path.ID, StatusDone, "")
		}
		if u.opts.BeforeHop != nil {
			if err := u.opts.BeforeHop(next); err != nil {
				return path, err
			}
		}
		if u.opts.OnEvent != nil {
			u.opts.OnEvent(Event{At: time.Now(), Step: "path", What: fmt.Sprintf("hop %d of %d: %s (path %d to %s)",
				next+1, len(path.Hops), path.Hops[next].Version, path.ID, path.To)})
		}
		var plan *Plan
		if next == 0 {
			plan = first
		}
		if _, err := u.applyLocked(ctx, path.Hops[next], plan, false, path.ID); err != nil {
			var pe *PlanError
			if errors.As(err, &pe) {
				// The hop is not possible now: the path stops here, and says why.
				why := fmt.Sprintf("hop %s: %v", path.Hops[next].Version, err)
				_ = u.endPath(context.WithoutCancel(ctx), path.ID, StatusAborted, why)
				path.Status, path.Error = StatusAborted, why
			}
			if recs, rerr := u.st.pathUpgrades(ctx, u.pool, path.ID); rerr == nil {
				path.Upgrades = recs
			}
			return path, err
		}
	}
}

// stopPathBetweenHops ends the app's path in progress when it is between two hops (no
// hop's upgrade is in progress), and returns the last hop's upgrade: what runs.
func (u *Upgrader) stopPathBetweenHops(ctx context.Context, app string) (*Record, bool, error) {
	path, err := u.activePath(ctx, app)
	if err != nil || path == nil {
		return nil, false, err
	}
	ctx, unlock, err := u.lock(ctx, app)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if act, err := u.st.active(ctx, u.pool, app); err != nil || act != nil {
		return nil, false, err // a hop is in progress: abort it
	}
	recs, err := u.st.pathUpgrades(ctx, u.pool, path.ID)
	if err != nil {
		return nil, false, err
	}
	path.Upgrades = recs
	last := path.last()
	why := "stopped by abort before its first hop"
	if last != nil {
		why = fmt.Sprintf("stopped by abort between hops: %s runs", last.To)
	}
	return last, true, u.endPath(ctx, path.ID, StatusAborted, why)
}

// statusPathAndContract adds to rep the path its upgrade is a hop of, and the app's
// deferred contract still to be done.
func (u *Upgrader) statusPathAndContract(ctx context.Context, rep *StatusReport) error {
	rec := rep.Upgrade
	if rec.PathID != 0 {
		p, err := u.st.path(ctx, u.pool, `WHERE id = $1`, rec.PathID)
		if err != nil {
			return err
		}
		if p != nil {
			if p.Upgrades, err = u.st.pathUpgrades(ctx, u.pool, p.ID); err != nil {
				return err
			}
		}
		rep.Path = p
	}
	pc, err := u.pendingContract(ctx, rec.Release)
	rep.PendingContract = pc
	return err
}
