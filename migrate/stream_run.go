package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// sqlStateDDL creates the table of applied plain-SQL files. Idempotent.
func sqlStateDDL(state string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + qi(state, "sql_migrations") + ` (
			schema     text NOT NULL,
			stream     text NOT NULL,
			phase      text NOT NULL,
			name       text NOT NULL,
			file       text NOT NULL,
			checksum   text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (schema, stream, phase, name))`,
	}
}

// DriftError is a plain-SQL file that changed after it was applied. Nothing was applied.
type DriftError struct {
	Stream, Phase, File string
	Applied, Now        string // the checksums
}

// Error implements error.
func (e *DriftError) Error() string {
	return fmt.Sprintf("%s: stream %s's %s file was applied with checksum %s and has changed since (now %s): "+
		"a file changed after it was applied is refused (fix: restore the file as it was applied, and put the change in a new file)",
		e.File, e.Stream, e.Phase, short(e.Applied), short(e.Now))
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// readStreamHistory reads what the state schema says the streams applied; an empty
// history when there is no state schema yet.
func (m *Migrator) readStreamHistory(ctx context.Context, q querier) (*streamHistory, error) {
	h := &streamHistory{pgroll: map[string]bool{}, sql: map[string]string{}}
	if ok, err := m.st.initialized(ctx, q); err != nil || !ok {
		return h, err
	}
	recs, err := m.st.history(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Status == StatusCompleted {
			h.pgroll[r.Name] = true
			for _, n := range r.Includes {
				h.pgroll[n] = true
			}
		}
	}
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qi(m.opts.StateSchema, "sql_migrations")).Scan(&exists); err != nil || !exists {
		return h, err
	}
	rows, err := q.Query(ctx, "SELECT stream, phase, name, checksum FROM "+qi(m.opts.StateSchema, "sql_migrations")+" WHERE schema = $1", m.opts.Schema)
	if err != nil {
		return nil, fmt.Errorf("read the applied SQL files: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var stream, phase, name, sum string
		if err := rows.Scan(&stream, &phase, &name, &sum); err != nil {
			return nil, err
		}
		h.sql[sqlKey(stream, phase, name)] = sum
	}
	return h, rows.Err()
}

// checkDrift refuses a plain-SQL file whose text changed since it was applied.
func checkDrift(streams []*Stream, h *streamHistory) error {
	for _, s := range streams {
		for _, ph := range []struct {
			phase string
			files []*SQLFile
		}{{PhasePre, s.Pre}, {PhasePost, s.Post}} {
			for _, f := range ph.files {
				if sum, ok := h.sql[sqlKey(s.Name, ph.phase, f.Name)]; ok && sum != f.Checksum {
					return &DriftError{Stream: s.Name, Phase: ph.phase, File: f.File, Applied: sum, Now: f.Checksum}
				}
			}
		}
	}
	return nil
}

// PlanStreams says what ExpandStreams and ContractStreams would do with streams: their
// pending migrations in dependency order. It changes nothing. It refuses a cycle, a
// dependency that cannot be met (*StreamError) and a plain-SQL file changed after it was
// applied (*DriftError). versionSchema names the combined migration's version schema;
// "" for its last migration's.
func (m *Migrator) PlanStreams(ctx context.Context, streams []*Stream, versionSchema string) (*StreamPlan, error) {
	h, err := m.readStreamHistory(ctx, m.conn)
	if err != nil {
		return nil, err
	}
	if err := checkDrift(streams, h); err != nil {
		return nil, err
	}
	return planStreams(streams, h, m.opts.Schema, versionSchema)
}

// ExpandStreams applies the pending migrations of every stream as ONE expand step: the
// pre-deploy SQL files first, each in its own transaction (unless it says
// -- no-transaction) and recorded with its checksum, then the pgroll streams' migrations
// combined into one migration (see Migrate), started. The running version keeps working;
// the new one uses the combined migration's version schema. When no pgroll migration is
// pending, the current version schema is rebuilt to show what the files added. A run
// interrupted anywhere resumes where it stopped. It returns the plan it carried out.
func (m *Migrator) ExpandStreams(ctx context.Context, streams []*Stream, versionSchema string) (*StreamPlan, error) {
	return m.withStreams(ctx, streams, versionSchema, func(plan *StreamPlan, act *record) error {
		if act != nil && (plan.Combined == nil || act.Name != plan.Combined.Name) {
			return fmt.Errorf("migration %q is in progress and is not what the streams' pending migrations make; complete or roll it back first", act.Name)
		}
		ran := 0
		for _, st := range plan.PreDeploy() {
			if err := m.runSQLFile(ctx, st, false); err != nil {
				return err
			}
			ran++
		}
		if plan.Combined != nil {
			return m.start(ctx, plan.Combined)
		}
		if ran > 0 {
			return m.rebuildCurrentVersionSchema(ctx, nil)
		}
		return nil
	})
}

// ContractStreams completes what ExpandStreams started: the combined migration (the old
// version's schema goes), then the post-deploy SQL files, each in one transaction with
// the current version schema rebuilt around it, so that a file may drop a column the new
// version no longer uses. Call it only once no instance of the old version runs. It
// refuses to run while pre-deploy files or pgroll migrations are pending that expand has
// not started.
func (m *Migrator) ContractStreams(ctx context.Context, streams []*Stream, versionSchema string) (*StreamPlan, error) {
	return m.withStreams(ctx, streams, versionSchema, func(plan *StreamPlan, act *record) error {
		if pre := plan.PreDeploy(); len(pre) > 0 {
			return fmt.Errorf("pre-deploy file %s is not applied yet: expand first", pre[0])
		}
		switch {
		case plan.Combined != nil && act == nil:
			return fmt.Errorf("migration %s is pending and not started: expand first", plan.Combined.Name)
		case plan.Combined != nil && act.Name != plan.Combined.Name:
			return fmt.Errorf("migration %q is in progress and is not what the streams' pending migrations make (%s); complete or roll it back first", act.Name, plan.Combined.Name)
		case plan.Combined == nil && act != nil:
			return fmt.Errorf("migration %q is in progress and is none of the streams'; complete or roll it back first", act.Name)
		case plan.Combined != nil:
			if err := m.complete(ctx); err != nil {
				return err
			}
		}
		for _, st := range plan.Contract {
			if err := m.runSQLFile(ctx, st, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// withStreams runs fn holding the schema's lock, with the streams' plan made under the
// lock and the migration in progress (nil for none), and returns the plan.
func (m *Migrator) withStreams(ctx context.Context, streams []*Stream, versionSchema string, fn func(*StreamPlan, *record) error) (*StreamPlan, error) {
	var plan *StreamPlan
	err := m.withLock(ctx, func() error {
		var err error
		if plan, err = m.planStreamsLocked(ctx, streams, versionSchema); err != nil {
			return err
		}
		act, err := m.st.active(ctx, m.conn)
		if err != nil {
			return err
		}
		return fn(plan, act)
	})
	return plan, err
}

// planStreamsLocked is PlanStreams for a run that holds the lock: it creates the state
// schema first.
func (m *Migrator) planStreamsLocked(ctx context.Context, streams []*Stream, versionSchema string) (*StreamPlan, error) {
	// Refuse bad input before the first DDL, even the state schema's.
	if _, err := m.PlanStreams(ctx, streams, versionSchema); err != nil {
		return nil, err
	}
	if err := m.st.init(ctx, m.conn); err != nil {
		return nil, err
	}
	for _, stmt := range sqlStateDDL(m.opts.StateSchema) {
		if _, err := m.conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create state schema %q: %w", m.opts.StateSchema, err)
		}
	}
	return m.PlanStreams(ctx, streams, versionSchema)
}

// runSQLFile applies one plain-SQL file and records it, under the lock policy: in one
// transaction, retried whole on a lock timeout; or, for a -- no-transaction file,
// statement by statement, each retried on a lock timeout. With rebuild, the current
// version schema is rebuilt over what the file leaves: in the file's transaction, so
// that the file may drop what the views show.
func (m *Migrator) runSQLFile(ctx context.Context, st StreamStep, rebuild bool) error {
	f := st.SQL
	m.log.Info("apply SQL file", "stream", st.Stream, "phase", st.Phase, "file", f.File, "transaction", !f.NoTransaction)
	record := func(q querier) error {
		_, err := q.Exec(ctx, "INSERT INTO "+qi(m.opts.StateSchema, "sql_migrations")+
			" (schema, stream, phase, name, file, checksum) VALUES ($1, $2, $3, $4, $5, $6)",
			m.opts.Schema, st.Stream, st.Phase, f.Name, f.File, f.Checksum)
		if err != nil {
			return fmt.Errorf("record %s: %w", f.File, err)
		}
		return nil
	}
	if f.NoTransaction {
		stmts, err := parser.SplitWithParser(f.SQL, true)
		if err != nil {
			return &InputError{File: f.File, Op: -1, Err: fmt.Errorf("split the file into statements: %w", err)}
		}
		// The file's unqualified names are the migrated schema's.
		if _, err := m.conn.Exec(ctx, "SELECT set_config('search_path', $1, false)", qi(m.opts.Schema)); err != nil {
			return err
		}
		defer m.conn.Exec(context.WithoutCancel(ctx), "RESET search_path") //nolint:errcheck // the next statement's error says more
		for _, stmt := range stmts {
			if err := checkNoTxStatement(stmt, rebuild); err != nil {
				return &InputError{File: f.File, Op: -1, Err: err}
			}
		}
		for _, stmt := range stmts {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			var err error
			if schema, index, ok := concurrentIndexBuild(stmt, m.opts.Schema); ok {
				// As the engine builds its indexes: an INVALID leftover of a failed
				// attempt is dropped before each attempt.
				err = m.execConcurrently(ctx, schema, index, stmt)
			} else {
				err = m.execOutsideTx(ctx, stmt, nil, nil)
			}
			if err != nil {
				return fmt.Errorf("%s: %w; statements before it are applied: make the file's statements idempotent (IF NOT EXISTS) and run again", f.File, err)
			}
		}
		if err := record(m.conn); err != nil {
			return err
		}
		if rebuild {
			return m.rebuildCurrentVersionSchema(ctx, nil)
		}
		return nil
	}
	return m.lockedTx(ctx, nil, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", qi(m.opts.Schema)); err != nil {
			return err
		}
		var vs string
		if rebuild {
			var err error
			if vs, err = m.currentVersionSchema(ctx, tx); err != nil {
				return err
			}
			if vs != "" {
				if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+qi(vs)+" CASCADE"); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, f.SQL); err != nil {
			return fmt.Errorf("%s: %w", f.File, err)
		}
		if err := record(tx); err != nil {
			return err
		}
		if rebuild {
			return m.rebuildCurrentVersionSchema(ctx, tx)
		}
		return nil
	})
}

// currentVersionSchema names the version schema of the newest migration, completed and
// none in progress; "" when there is none (or one is in progress: its views are the
// engine's to make).
func (m *Migrator) currentVersionSchema(ctx context.Context, q querier) (string, error) {
	rec, err := m.st.latest(ctx, q)
	if err != nil || rec == nil || rec.Status != StatusCompleted {
		return "", err
	}
	return m.versionSchemaOf(rec), nil
}

// rebuildCurrentVersionSchema recreates the current version schema (see
// currentVersionSchema) from the catalog, in tx, or in a lock-safe transaction of its
// own when tx is nil. Once a migration is completed the physical names are the names,
// so the catalog is the version's shape.
func (m *Migrator) rebuildCurrentVersionSchema(ctx context.Context, tx pgx.Tx) error {
	run := func(tx pgx.Tx) error {
		rec, err := m.st.latest(ctx, tx)
		if err != nil || rec == nil || rec.Status != StatusCompleted {
			return err
		}
		shape, err := readSchema(ctx, tx, m.opts.Schema)
		if err != nil {
			return err
		}
		stmts, _ := m.versionSchemaDDL(m.versionSchemaOf(rec), rec.Name, shape)
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("rebuild version schema %s: %s: %w", m.versionSchemaOf(rec), firstLine(s), err)
			}
		}
		return nil
	}
	if tx != nil {
		return run(tx)
	}
	return m.lockedTx(ctx, nil, run)
}

// StreamState is one stream's history and what is pending, for status.
type StreamState struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Applied are the stream's migrations (or files) applied, completed.
	Applied []string `json:"applied"`
	// InProgress are those of the migration in progress (expanded, not contracted).
	InProgress []string `json:"in_progress"`
	// Pending are those in the stream's directory not applied yet.
	Pending []string `json:"pending"`
}

// StreamStatus reports each stream's applied, in-progress and pending migrations. It takes
// no lock and changes nothing.
func (m *Migrator) StreamStatus(ctx context.Context, streams []*Stream) ([]StreamState, error) {
	h, err := m.readStreamHistory(ctx, m.conn)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	if ok, err := m.st.initialized(ctx, m.conn); err != nil {
		return nil, err
	} else if ok {
		act, err := m.st.active(ctx, m.conn)
		if err != nil {
			return nil, err
		}
		if act != nil {
			for _, n := range act.Includes {
				active[n] = true
			}
			active[act.Name] = true
		}
	}
	var out []StreamState
	for _, s := range streams {
		ss := StreamState{Name: s.Name, Kind: s.Kind, Applied: []string{}, InProgress: []string{}, Pending: []string{}}
		for _, mig := range s.Migrations {
			switch rn := s.recordedName(mig.Name); {
			case h.pgroll[rn]:
				ss.Applied = append(ss.Applied, mig.Name)
			case active[rn]:
				ss.InProgress = append(ss.InProgress, mig.Name)
			default:
				ss.Pending = append(ss.Pending, mig.Name)
			}
		}
		for _, ph := range []struct {
			phase string
			files []*SQLFile
		}{{PhasePre, s.Pre}, {PhasePost, s.Post}} {
			for _, f := range ph.files {
				label := ph.phase + "/" + f.Name
				if _, ok := h.sql[sqlKey(s.Name, ph.phase, f.Name)]; ok {
					ss.Applied = append(ss.Applied, label)
				} else {
					ss.Pending = append(ss.Pending, label)
				}
			}
		}
		out = append(out, ss)
	}
	return out, nil
}

// checkNoTxStatement refuses, before anything of a -- no-transaction file runs, what
// such a file cannot do safely: a CONCURRENTLY index build without a name (a failed
// attempt would leave an INVALID index no retry can find), and, in a post-deploy file
// (post), anything but index builds and drops: the current version schema's views are
// rebuilt around a transactional file only, so a dropped column would fail on them or,
// with CASCADE, take the running version's views along.
func checkNoTxStatement(stmt string, post bool) error {
	if strings.TrimSpace(stmt) == "" {
		return nil
	}
	tree, err := pgtree.Parse(stmt)
	if err != nil || len(tree.Stmts) != 1 {
		return nil // the server's error names it when it runs
	}
	node := tree.Stmts[0].Stmt
	if is := node.GetIndexStmt(); is != nil {
		if is.Concurrent && is.Idxname == "" {
			return fmt.Errorf("%s: CREATE INDEX CONCURRENTLY needs an index name, so that an INVALID index a failed attempt leaves is dropped before the next; name the index", firstLine(stmt))
		}
		return nil
	}
	if ds := node.GetDropStmt(); ds != nil && ds.RemoveType == pgtree.ObjectType_OBJECT_INDEX {
		return nil
	}
	if post {
		return fmt.Errorf("%s: a -- no-transaction post-deploy file may only build or drop indexes; "+
			"put this statement in a post-deploy file that runs in one transaction (without the marker)", firstLine(stmt))
	}
	return nil
}

// concurrentIndexBuild returns the schema and name of the index a CREATE INDEX
// CONCURRENTLY statement builds; ok is false for any other statement, and for a build
// without an index name.
func concurrentIndexBuild(stmt, defaultSchema string) (schema, index string, ok bool) {
	tree, err := pgtree.Parse(stmt)
	if err != nil || len(tree.Stmts) != 1 {
		return "", "", false
	}
	is := tree.Stmts[0].Stmt.GetIndexStmt()
	if is == nil || !is.Concurrent || is.Idxname == "" || is.Relation == nil {
		return "", "", false
	}
	schema = is.Relation.Schemaname
	if schema == "" {
		schema = defaultSchema
	}
	return schema, is.Idxname, true
}

// recordedStreams lists the streams the state schema knows, from the history alone:
// each one's applied and in-progress migrations (pending ones need the release's files:
// see StreamStatus). Migrations recorded under plain names are the stream named "".
// It returns nil when no named stream and no SQL file was ever applied.
func (m *Migrator) recordedStreams(ctx context.Context, recs []*record) ([]StreamState, error) {
	h, err := m.readStreamHistory(ctx, m.conn)
	if err != nil {
		return nil, err
	}
	var out []StreamState
	at := map[string]int{}
	get := func(name, kind string) *StreamState {
		i, ok := at[name]
		if !ok {
			i = len(out)
			at[name] = i
			out = append(out, StreamState{Name: name, Kind: kind, Applied: []string{}, InProgress: []string{}, Pending: []string{}})
		}
		return &out[i]
	}
	named := false
	for _, r := range recs {
		if r.Status == StatusRolledBack {
			continue
		}
		for _, n := range (&Migration{Name: r.Name, Includes: r.Includes}).names() {
			stream, own, ok := strings.Cut(n, "/")
			if !ok {
				stream, own = "", n
			} else {
				named = true
			}
			s := get(stream, StreamPgroll)
			if r.Status == StatusCompleted {
				s.Applied = append(s.Applied, own)
			} else {
				s.InProgress = append(s.InProgress, own)
			}
		}
	}
	if len(h.sql) == 0 {
		if !named {
			return nil, nil
		}
		return out, nil
	}
	rows, err := m.conn.Query(ctx, "SELECT stream, phase, name FROM "+qi(m.opts.StateSchema, "sql_migrations")+
		" WHERE schema = $1 ORDER BY applied_at, name", m.opts.Schema)
	if err != nil {
		return nil, fmt.Errorf("read the applied SQL files: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var stream, phase, name string
		if err := rows.Scan(&stream, &phase, &name); err != nil {
			return nil, err
		}
		s := get(stream, StreamSQL)
		s.Applied = append(s.Applied, phase+"/"+name)
	}
	return out, rows.Err()
}
