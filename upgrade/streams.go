package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tandem-pg/tandem/lint"
	"github.com/tandem-pg/tandem/migrate"
)

// StreamSpec is one migration stream of a release (tandem.yaml's streams:). See
// docs/streams.md.
type StreamSpec struct {
	// Name names the stream in the state schema and in needs.
	Name string `yaml:"name" json:"name"`
	// Kind is pgroll (the default) or sql.
	Kind string `yaml:"kind" json:"kind"`
	// Dir is a pgroll stream's directory of migrations, relative to tandem.yaml.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// PreDeploy and PostDeploy are an sql stream's directories of SQL files: run at
	// expand, and at contract once the old version is gone.
	PreDeploy  string `yaml:"pre-deploy" json:"pre_deploy,omitempty"`
	PostDeploy string `yaml:"post-deploy" json:"post_deploy,omitempty"`
	// After are the streams whose pending migrations apply before this one's.
	After []string `yaml:"after" json:"after,omitempty"`
	// PlainNames records the stream's migrations under their own names, as the
	// migrations: key does: set it on the stream that continues such a history.
	PlainNames bool `yaml:"plain-names" json:"plain_names,omitempty"`
}

// validateStreams checks the streams: key (or the migrations: key that stands for one
// implicit stream) and that every directory exists.
func (r *Release) validateStreams(root *yaml.Node) error {
	bad := func(key, msg, fix string, path ...any) error {
		return &ReleaseError{File: r.File, Line: lineOf(root, path...), Key: key, Msg: msg, Fix: fix}
	}
	switch {
	case r.Migrations == "" && len(r.Streams) == 0:
		return bad("migrations", "missing", "give the directory of the release's migrations, relative to this file (or list streams:)")
	case r.Migrations != "" && len(r.Streams) > 0:
		return bad("streams", "both migrations: and streams: are set", "list the migrations directory as a stream (with plain-names: true to keep its history)", "streams")
	case r.Migrations != "":
		if dir := r.MigrationsDir(); !isDir(dir) {
			return bad("migrations", fmt.Sprintf("directory %s not found", dir), "create it or correct the path", "migrations")
		}
		return nil
	}
	for i := range r.Streams {
		s := &r.Streams[i]
		key := fmt.Sprintf("streams[%d]", i)
		if s.Kind == "" {
			s.Kind = migrate.StreamPgroll
		}
		if !migrate.ValidStreamName(s.Name) {
			return bad(key+".name", fmt.Sprintf("%q is not a stream name", s.Name), "use lower-case letters, digits, '_' and '-', at most 40", "streams", i)
		}
		dirs := []struct{ key, dir string }{{"dir", s.Dir}}
		switch s.Kind {
		case migrate.StreamPgroll:
			if s.Dir == "" || s.PreDeploy != "" || s.PostDeploy != "" {
				return bad(key+".dir", "a pgroll stream has a dir (and no pre-deploy or post-deploy)", "give the directory of its migrations", "streams", i)
			}
		case migrate.StreamSQL:
			if s.Dir != "" || (s.PreDeploy == "" && s.PostDeploy == "") {
				return bad(key+".pre-deploy", "an sql stream has pre-deploy and/or post-deploy directories (and no dir)", "give pre-deploy: and post-deploy:", "streams", i)
			}
			dirs = []struct{ key, dir string }{{"pre-deploy", s.PreDeploy}, {"post-deploy", s.PostDeploy}}
		default:
			return bad(key+".kind", fmt.Sprintf("%q is not a stream kind", s.Kind), "use pgroll or sql", "streams", i, "kind")
		}
		for _, d := range dirs {
			if d.dir != "" && !isDir(r.path(d.dir)) {
				return bad(key+"."+d.key, fmt.Sprintf("directory %s not found", r.path(d.dir)), "create it or correct the path", "streams", i, d.key)
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// path resolves a path of tandem.yaml against its directory.
func (r *Release) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, p)
}

// ReadStreams reads the release's streams from their directories: the streams: key's,
// or the one implicit stream of the migrations: key.
func (r *Release) ReadStreams() ([]*migrate.Stream, error) {
	if len(r.Streams) == 0 {
		migs, err := migrate.ReadDir(r.MigrationsDir())
		if err != nil {
			return nil, err
		}
		return []*migrate.Stream{{Kind: migrate.StreamPgroll, Migrations: migs}}, nil
	}
	var out []*migrate.Stream
	for _, spec := range r.Streams {
		s := &migrate.Stream{Name: spec.Name, Kind: spec.Kind, After: spec.After, PlainNames: spec.PlainNames}
		var err error
		switch spec.Kind {
		case migrate.StreamSQL:
			if spec.PreDeploy != "" {
				if s.Pre, err = migrate.ReadSQLDir(r.path(spec.PreDeploy)); err != nil {
					return nil, err
				}
			}
			if spec.PostDeploy != "" {
				if s.Post, err = migrate.ReadSQLDir(r.path(spec.PostDeploy)); err != nil {
					return nil, err
				}
			}
		default:
			if s.Migrations, err = migrate.ReadDir(r.path(spec.Dir)); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// streamsVersionSchema is the version schema a release's streams are expanded into: the
// version-schema key names it for a release with streams:; with migrations: the key
// only checks what the migrations make.
func (r *Release) streamsVersionSchema() string {
	if len(r.Streams) > 0 {
		return r.VersionSchema
	}
	return ""
}

// ReadStreamsFile reads the streams of the tandem.yaml at path, and its lint
// configuration, for `tandem migrate tandem.yaml`: only the keys streams:, migrations:,
// version-schema: and lint: count; the rest of the release need not be there.
func ReadStreamsFile(path string) (*Release, []*migrate.Stream, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read release description: %w", err)
	}
	var r Release
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil {
		return nil, nil, yamlError(path, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	r.File = path
	if r.Dir, err = filepath.Abs(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	if err := r.validateStreams(&root); err != nil {
		return nil, nil, err
	}
	streams, err := r.ReadStreams()
	return &r, streams, err
}

// LintGate lints the pending pre-deploy files of plan as the runner will run them (one
// transaction each unless the file says otherwise; lock_timeout set by Tandem), with the
// release's lint configuration (its lint: key, else a .tandem-lint.yaml beside it) and,
// when databaseURL is not "", the live catalog, so that a table the files create is told
// from an existing one. It returns every finding, and the problems: one per finding of
// severity error (one that breaks the running version or takes a dangerous lock on an
// existing table), with its recipe. Inline and file ignores apply.
func LintGate(ctx context.Context, rel *Release, plan *migrate.StreamPlan, databaseURL string) ([]lint.Finding, []string, error) {
	pre := plan.PreDeploy()
	if len(pre) == 0 {
		return nil, nil, nil
	}
	cfg := rel.Lint
	if isZeroLint(cfg) {
		if p := lint.FindConfig(rel.Dir); p != "" && filepath.Base(p) != "tandem.yaml" && filepath.Base(p) != "tandem.yml" {
			c, err := lint.LoadConfig(p)
			if err != nil {
				return nil, nil, err
			}
			cfg = c
		}
	}
	cfg.TimeoutsSetByRunner = true
	cfg.Transaction = "file"
	var cat *lint.Catalog
	if databaseURL != "" {
		c, err := lint.LoadCatalog(ctx, databaseURL)
		if err != nil {
			return nil, nil, err
		}
		cat = c
	}
	var sources []lint.Source
	for _, st := range pre {
		sources = append(sources, lint.Source{Name: st.File, SQL: st.SQL.SQL})
	}
	res, err := lint.Lint(sources, lint.Options{Config: cfg, Catalog: cat})
	if res == nil {
		return nil, nil, err
	}
	var problems []string
	for _, f := range res.Findings {
		if f.Severity != lint.SeverityError {
			continue
		}
		msg := fmt.Sprintf("pre-deploy file %s:%d: %s (%s)", f.File, f.Line, f.Message, f.Rule)
		if f.Fix != "" {
			msg += "; recipe:\n" + indent(f.Fix)
		}
		msg += "\n  (a pre-deploy file runs while the old version serves; if this finding is wrong here, " +
			"add -- tandem-lint-ignore: " + f.Rule + " above the statement)"
		problems = append(problems, msg)
	}
	return res.Findings, problems, nil
}

func isZeroLint(c lint.Config) bool {
	return c.PGVersion == 0 && len(c.Disable) == 0 && len(c.Severity) == 0 && !c.TimeoutsSetByRunner && c.Transaction == "" && !c.NoForeignIgnores
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// planStreams fills in p what the release's streams would apply, refusing (as problems)
// a bad stream set, a changed applied SQL file and a pre-deploy file the linter blocks.
// It returns nil when the streams cannot be planned.
func (u *Upgrader) planStreams(ctx context.Context, m *migrate.Migrator, rel *Release, p *Plan) (*migrate.StreamPlan, error) {
	problem := func(format string, args ...any) { p.Problems = append(p.Problems, fmt.Sprintf(format, args...)) }
	streams, err := rel.ReadStreams()
	if err != nil {
		problem("%v", err)
		return nil, nil
	}
	sp, err := m.PlanStreams(ctx, streams, rel.streamsVersionSchema())
	var se *migrate.StreamError
	var de *migrate.DriftError
	switch {
	case errors.As(err, &se), errors.As(err, &de):
		problem("%v", err)
		return nil, nil
	case err != nil:
		return nil, err
	}
	if len(rel.Streams) > 0 {
		if p.Streams, err = m.StreamStatus(ctx, streams); err != nil {
			return nil, err
		}
	}
	for _, st := range sp.Expand {
		if st.Kind == migrate.StreamSQL {
			p.PreDeploy = append(p.PreDeploy, st.String())
		}
	}
	for _, st := range sp.Contract {
		p.PostDeploy = append(p.PostDeploy, st.String())
	}
	findings, problems, err := LintGate(ctx, rel, sp, u.opts.PostgresURL)
	if err != nil {
		return nil, err
	}
	p.LintFindings = findings
	p.Problems = append(p.Problems, problems...)
	return sp, nil
}

// expandStreams is the expand step: every stream's pending migrations as one step.
func (u *Upgrader) expandStreams(ctx context.Context, rec *Record) error {
	plan, err := u.onStreams(ctx, rec.Release, (*migrate.Migrator).ExpandStreams)
	if err != nil {
		return err
	}
	var names []string
	for _, st := range plan.Expand {
		names = append(names, st.String())
	}
	switch {
	case len(names) == 0:
		u.event(ctx, rec, StepExpand, "no pending migrations: the schema stays as it is", 0)
	case plan.Combined != nil:
		u.event(ctx, rec, StepExpand, fmt.Sprintf("started %v: version schema %s", names, rec.NewVersionSchema), 0)
	default:
		u.event(ctx, rec, StepExpand, fmt.Sprintf("applied %v: version schema %s", names, rec.NewVersionSchema), 0)
	}
	return nil
}

// contractStreams is the contract step: the expand step's migration is completed, then
// the post-deploy files run.
func (u *Upgrader) contractStreams(ctx context.Context, rec *Record) error {
	plan, err := u.onStreams(ctx, rec.Release, (*migrate.Migrator).ContractStreams)
	if err != nil {
		return err
	}
	if plan.Combined != nil {
		u.event(ctx, rec, StepContract, fmt.Sprintf("completed %s: version schema %s is gone", plan.Combined.Name, rec.OldVersionSchema), 0)
	}
	if len(plan.Contract) > 0 {
		var names []string
		for _, st := range plan.Contract {
			names = append(names, st.String())
		}
		u.event(ctx, rec, StepContract, fmt.Sprintf("ran post-deploy files %v", names), 0)
	}
	return nil
}

// onStreams reads rel's streams and runs step (the engine's ExpandStreams or
// ContractStreams) on them.
func (u *Upgrader) onStreams(ctx context.Context, rel *Release,
	step func(*migrate.Migrator, context.Context, []*migrate.Stream, string) (*migrate.StreamPlan, error)) (*migrate.StreamPlan, error) {
	streams, err := rel.ReadStreams()
	if err != nil {
		return nil, err
	}
	m, err := u.migrator(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer m.Close(context.WithoutCancel(ctx))
	return step(m, ctx, streams, rel.streamsVersionSchema())
}
