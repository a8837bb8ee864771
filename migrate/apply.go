package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNoActiveMigration is returned by Complete and Rollback when nothing is in progress.
var ErrNoActiveMigration = errors.New("no migration is in progress")

// Validate checks mig against the live database without applying anything: that every
// table, column and type it names exists, and that its expressions parse. It returns an
// *InputError for a problem in the file.
func (m *Migrator) Validate(ctx context.Context, mig *Migration) error {
	ok, err := m.st.initialized(ctx, m.conn)
	if err != nil {
		return err
	}
	if ok {
		act, err := m.st.active(ctx, m.conn)
		if err != nil {
			return err
		}
		if act != nil && act.Name == mig.Name && sameJSON(act.Definition, mig.Raw) {
			return nil // already recorded: it was validated when it started
		}
	}
	before, err := m.readSchemaLocked(ctx)
	if err != nil {
		return err
	}
	_, _, err = m.plan(ctx, mig, before)
	return err
}

// plan validates mig against before (the old version's shape) and returns the new
// version's shape, and the shape each operation sees. Nothing is applied: the checks run
// in a transaction that is rolled back.
func (m *Migrator) plan(ctx context.Context, mig *Migration, before *Schema) (*Schema, []*Schema, error) {
	tx, err := m.conn.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
		return nil, nil, err
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", fmt.Sprintf("%dms", m.opts.LockTimeout.Milliseconds())); err != nil {
		return nil, nil, err
	}
	if err := m.checkVersionSchema(ctx, tx, mig); err != nil {
		return nil, nil, err
	}
	v := &validator{tx: tx, schema: m.opts.Schema, before: before, after: before.Clone(), log: m.log}
	if err := checkRawSQLMix(mig); err != nil {
		return nil, nil, err
	}
	var shapes []*Schema
	for i, op := range mig.Operations {
		v.opBefore = v.after.Clone()
		shapes = append(shapes, v.opBefore)
		if err := op.validate(ctx, v); err != nil {
			var ie *InputError
			if errors.As(err, &ie) {
				return nil, nil, &InputError{File: opFile(mig, i), Op: opIndex(mig, i), Kind: op.Kind(), Field: ie.Field, Err: ie.Err}
			}
			return nil, nil, fmt.Errorf("%s: operation %d (%s): %w", opFile(mig, i), opIndex(mig, i), op.Kind(), err)
		}
	}
	return v.after, shapes, nil
}

// checkVersionSchema makes sure the version schema mig will create has a name PostgreSQL
// keeps whole, and is no schema of the user's: start drops and recreates it.
func (m *Migrator) checkVersionSchema(ctx context.Context, tx pgx.Tx, mig *Migration) error {
	vs := m.versionSchemaOfMigration(mig)
	field := "version_schema"
	if mig.VersionSchema == "" {
		field = "name"
	}
	if len(vs) > maxIdentifier {
		return &InputError{File: mig.File, Op: -1, Field: field, Err: fmt.Errorf(
			"the version schema %q is %d bytes long, over PostgreSQL's %d; shorten the name, or name the version schema with version_schema", vs, len(vs), maxIdentifier)}
	}
	if vs == m.opts.Schema || vs == m.opts.StateSchema {
		return &InputError{File: mig.File, Op: -1, Field: field, Err: fmt.Errorf("the version schema cannot be %q: it is the migrated schema or Tandem's state schema", vs)}
	}
	var foreign bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1
		AND coalesce(obj_description(oid, 'pg_namespace'), '') NOT LIKE 'Tandem version schema of migration %')`, vs).Scan(&foreign)
	if err != nil {
		return err
	}
	if foreign {
		return &InputError{File: mig.File, Op: -1, Field: field, Err: fmt.Errorf("schema %q exists and is not a Tandem version schema; choose another version_schema", vs)}
	}
	if ok, err := m.st.initialized(ctx, tx); err != nil || !ok {
		return err
	}
	if cur, err := m.st.latest(ctx, tx); err != nil {
		return err
	} else if cur != nil && cur.Name != mig.Name && m.versionSchemaOf(cur) == vs {
		return &InputError{File: mig.File, Op: -1, Field: field, Err: fmt.Errorf("the version schema %q is migration %s's, which the running version may use; choose another", vs, cur.Name)}
	}
	return nil
}

// checkRawSQLMix rejects migrations that mix sql operations run at start with other
// operations: the shape of the new version after arbitrary SQL is only known by reading
// the catalog once it ran.
func checkRawSQLMix(mig *Migration) error {
	raw, first := 0, -1
	for i, op := range mig.Operations {
		if isStartSQL(op) {
			raw++
			if first < 0 {
				first = i
			}
		}
	}
	if raw == 0 || raw == len(mig.Operations) {
		return nil
	}
	msg := "an sql operation that runs at start cannot share a migration with other kinds of operation; put it in a migration of its own"
	if len(mig.origins) > 0 {
		msg = "an sql operation that runs at start cannot share a step with other kinds of operation, and tandem migrate applies the pending files as one step; " +
			"pass --complete to apply the files in several steps (when no old version runs), or apply the files before this one with tandem migrate, then this one with tandem start and tandem complete, then the rest"
	}
	return &InputError{File: opFile(mig, first), Op: opIndex(mig, first), Kind: "sql", Err: errors.New(msg)}
}

// Start begins (expands) mig: afterwards the old version keeps working and the new
// version is served by its version schema. Start resumes an interrupted start of the
// same migration, and returns nil if mig was already started.
func (m *Migrator) Start(ctx context.Context, mig *Migration) error {
	return m.withLock(ctx, func() error { return m.start(ctx, mig) })
}

func (m *Migrator) start(ctx context.Context, mig *Migration) error {
	// A file that does not validate leaves the database untouched, without even a state
	// schema.
	if ok, err := m.st.initialized(ctx, m.conn); err != nil {
		return err
	} else if !ok {
		if err := m.Validate(ctx, mig); err != nil {
			return err
		}
	}
	if err := m.st.init(ctx, m.conn); err != nil {
		return err
	}
	rec, err := m.st.active(ctx, m.conn)
	if err != nil {
		return err
	}
	if rec != nil {
		if rec.Name != mig.Name {
			return fmt.Errorf("migration %q is in progress (%s); complete or roll it back before starting %q", rec.Name, rec.Status, mig.Name)
		}
		if !sameJSON(rec.Definition, mig.Raw) {
			if err := m.replaceExpressions(ctx, rec, mig); err != nil {
				return err
			}
		}
		switch rec.Status {
		case StatusStarted:
			m.log.Info("migration already started", "migration", mig.Name)
			return nil
		case StatusCompleting:
			return fmt.Errorf("migration %q is being completed; run tandem complete to finish it", mig.Name)
		}
		m.log.Info("resuming interrupted start", "migration", mig.Name)
	} else {
		for _, name := range mig.names() {
			if done, err := m.st.applied(ctx, m.conn, name); err != nil {
				return err
			} else if done {
				return &InputError{File: mig.File, Op: -1, Field: "name", Err: fmt.Errorf("migration %q has already been applied and completed", name)}
			}
		}
		before, err := m.readSchemaLocked(ctx)
		if err != nil {
			return err
		}
		after, shapes, err := m.plan(ctx, mig, before)
		if err != nil {
			return err
		}
		parent, err := m.st.latestCompleted(ctx, m.conn)
		if err != nil {
			return err
		}
		rec = &record{Name: mig.Name, File: mig.File, Definition: mig.Raw, Before: before, After: after, Shapes: shapes,
			Includes: mig.names(), VersionSchema: mig.VersionSchema}
		if parent != nil {
			rec.Parent = parent.Name
		}
		if err := m.st.insert(ctx, m.conn, rec); err != nil {
			return err
		}
		rec.Status = StatusStarting
		m.log.Info("starting migration", "migration", mig.Name, "operations", len(mig.Operations))
	}
	failpoint("start:recorded")

	// Until the version schema exists, only the old version writes: the triggers go in
	// unarmed, and are armed once every operation (and its backfill) is done. A start
	// resumed after the version schema was made arms them at once.
	var arm *arming
	if exists, err := m.schemaExists(ctx, m.versionSchemaOf(rec)); err != nil {
		return err
	} else if !exists {
		arm = &arming{}
	}
	for i, op := range mig.Operations {
		m.log.Info("start", "operation", i, "kind", op.Kind())
		r := m.newRun(rec, i)
		r.arming = arm
		if err := runStep(mig, i, "start", func() error { return op.start(ctx, r) }); err != nil {
			return err
		}
		failpoint(fmt.Sprintf("start:op%d", i))
	}
	// The triggers are armed in a transaction of their own, before the version schema is
	// made: CREATE TRIGGER's lock makes the application's writers wait, the views' locks
	// make nobody wait, and the new version cannot write through unarmed triggers.
	if arm != nil {
		if err := arm.arm(ctx, m); err != nil {
			return err
		}
	}
	if hasRawSQL(mig) {
		// The shape after arbitrary SQL is what the catalog says now.
		after, err := m.readSchemaLocked(ctx)
		if err != nil {
			return err
		}
		rec.After = after
		if err := m.st.setAfter(ctx, m.conn, rec.Name, after); err != nil {
			return err
		}
	}
	if err := m.createVersionSchema(ctx, rec); err != nil {
		return err
	}
	failpoint("start:views")
	if err := m.st.setStatus(ctx, m.conn, rec.Name, StatusStarted); err != nil {
		return err
	}
	if err := m.st.recordTandemVersion(ctx, m.conn, rec.Name, "start"); err != nil {
		return err
	}
	m.log.Info("migration started", "migration", mig.Name, "version_schema", m.versionSchemaOf(rec))
	return nil
}

// Complete finishes (contracts) the migration in progress. Call it only when no instance
// of the old version runs any more: it drops the old version's schema. Complete resumes an
// interrupted complete.
func (m *Migrator) Complete(ctx context.Context) error {
	return m.withLock(ctx, func() error { return m.complete(ctx) })
}

// finish records the end of a complete or rollback and clears the migration's cursors and
// step markers, in one transaction: a run killed in between must find the markers, so
// that it does not run a step (an onComplete sql operation, say) twice.
func (m *Migrator) finish(ctx context.Context, name, status string) error {
	return pgx.BeginFunc(ctx, m.conn, func(tx pgx.Tx) error {
		if err := m.st.forget(ctx, tx, name); err != nil {
			return err
		}
		step := "complete"
		if status == StatusRolledBack {
			step = "rollback"
		}
		if err := m.st.recordTandemVersion(ctx, tx, name, step); err != nil {
			return err
		}
		return m.st.setStatus(ctx, tx, name, status)
	})
}

// activeMigration returns the migration in progress, as recorded and as parsed from its
// recorded definition, or ErrNoActiveMigration.
func (m *Migrator) activeMigration(ctx context.Context) (*record, *Migration, error) {
	if err := m.st.init(ctx, m.conn); err != nil {
		return nil, nil, err
	}
	rec, err := m.st.active(ctx, m.conn)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, ErrNoActiveMigration
	}
	mig, err := parseRecorded(rec)
	if err != nil {
		return nil, nil, fmt.Errorf("recorded definition of %q: %w", rec.Name, err)
	}
	return rec, mig, nil
}

func (m *Migrator) complete(ctx context.Context) error {
	rec, mig, err := m.activeMigration(ctx)
	if err != nil {
		return err
	}
	if rec.Status == StatusStarting {
		return fmt.Errorf("the start of migration %q did not finish; run tandem start again with its file to finish it, or tandem rollback", rec.Name)
	}
	if err := m.st.setStatus(ctx, m.conn, rec.Name, StatusCompleting); err != nil {
		return err
	}
	m.log.Info("completing migration", "migration", rec.Name)
	if rec.Parent != "" {
		// The old version's views depend on columns and tables that complete drops.
		parent, err := m.st.get(ctx, m.conn, rec.Parent)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", rec.Parent, err)
		}
		if parent != nil {
			if err := m.dropVersionSchema(ctx, m.versionSchemaOf(parent)); err != nil {
				return fmt.Errorf("drop the old version's schema: %w", err)
			}
		}
	}
	failpoint("complete:old-schema-dropped")
	// Once the renames began, the physical names the operations know are gone: a resumed
	// complete goes straight to the renames.
	renaming, err := m.st.stepDone(ctx, m.conn, rec.Name, stepRenames)
	if err != nil {
		return err
	}
	for i, op := range mig.Operations {
		if renaming {
			break
		}
		if isCompleteSQL(op) {
			continue // after the renames: its SQL uses the final names
		}
		m.log.Info("complete", "operation", i, "kind", op.Kind())
		if err := runStep(mig, i, "complete", func() error { return op.complete(ctx, m.newRun(rec, i)) }); err != nil {
			return fmt.Errorf("%w; the migration stays %s: fix the cause and run tandem complete again", err, StatusCompleting)
		}
		failpoint(fmt.Sprintf("complete:op%d", i))
	}
	if err := m.st.markStep(ctx, m.conn, rec.Name, stepRenames); err != nil {
		return err
	}
	if err := m.renameToFinal(ctx, rec); err != nil {
		return fmt.Errorf("give the tables and columns their final names: %w; the migration stays %s: fix the cause and run tandem complete again", err, StatusCompleting)
	}
	for i, op := range mig.Operations {
		if !isCompleteSQL(op) {
			continue
		}
		m.log.Info("complete", "operation", i, "kind", op.Kind())
		if err := runStep(mig, i, "complete", func() error { return op.complete(ctx, m.newRun(rec, i)) }); err != nil {
			return fmt.Errorf("%w; the migration stays %s: fix the cause and run tandem complete again", err, StatusCompleting)
		}
	}
	if err := m.finish(ctx, rec.Name, StatusCompleted); err != nil {
		return err
	}
	m.log.Info("migration completed", "migration", rec.Name)
	return nil
}

// Rollback undoes the migration in progress, including a start that was interrupted.
// The old version is not affected. A migration whose complete has begun cannot be rolled
// back: its destructive changes may have been made; run Complete again instead.
func (m *Migrator) Rollback(ctx context.Context) error {
	return m.withLock(ctx, func() error { return m.rollback(ctx) })
}

func (m *Migrator) rollback(ctx context.Context) error {
	rec, mig, err := m.activeMigration(ctx)
	if err != nil {
		return err
	}
	if rec.Status == StatusCompleting {
		return fmt.Errorf("migration %q is being completed and can no longer be rolled back; run tandem complete to finish it", rec.Name)
	}
	m.log.Info("rolling back migration", "migration", rec.Name)
	if err := m.dropVersionSchema(ctx, m.versionSchemaOf(rec)); err != nil {
		return fmt.Errorf("drop the new version's schema: %w", err)
	}
	for i := len(mig.Operations) - 1; i >= 0; i-- {
		op := mig.Operations[i]
		m.log.Info("rollback", "operation", i, "kind", op.Kind())
		if err := runStep(mig, i, "roll back", func() error { return op.rollback(ctx, m.newRun(rec, i)) }); err != nil {
			return fmt.Errorf("%w; the migration stays recorded as %s: fix the cause and run tandem rollback again", err, rec.Status)
		}
		failpoint(fmt.Sprintf("rollback:op%d", i))
	}
	if err := m.finish(ctx, rec.Name, StatusRolledBack); err != nil {
		return err
	}
	m.log.Info("migration rolled back", "migration", rec.Name)
	return nil
}

// Migrate applies every migration of migs that has not been applied yet, as ONE
// expand/contract step: the pending migrations are combined (see Combine) and started
// together, so the version that runs now keeps working until Complete, and the new code
// sees the result of the last migration, in the version schema named after it.
// Intermediate versions are not exposed. With complete, the combined migration is
// completed too; then, since no old version runs, a migration with an sql operation that
// runs at start (which cannot share a step) is applied in a step of its own between the
// others'. It returns the names of the migrations it applied.
func (m *Migrator) Migrate(ctx context.Context, migs []*Migration, complete bool) ([]string, error) {
	var applied []string
	err := m.withLock(ctx, func() error {
		if err := m.st.init(ctx, m.conn); err != nil {
			return err
		}
		var pending []*Migration
		for _, mig := range migs {
			done, err := m.st.applied(ctx, m.conn, mig.Name)
			if err != nil {
				return err
			}
			if !done {
				pending = append(pending, mig)
			}
		}
		act, err := m.st.active(ctx, m.conn)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		segments := [][]*Migration{pending}
		if complete {
			segments = splitAtStartSQL(pending)
		}
		if first := Combine(segments[0]); act != nil && act.Name != first.Name {
			return fmt.Errorf("migration %q is in progress and is not what the directory's pending migrations (%s) make; complete or roll it back first",
				act.Name, strings.Join(first.names(), ", "))
		}
		for _, seg := range segments {
			combined := Combine(seg)
			if err := m.start(ctx, combined); err != nil {
				return err
			}
			if complete {
				if err := m.complete(ctx); err != nil {
					return err
				}
			}
			applied = append(applied, combined.names()...)
		}
		return nil
	})
	return applied, err
}

// splitAtStartSQL cuts pending into the runs of migrations that can share a step: a
// migration with an sql operation that runs at start is a step of its own.
func splitAtStartSQL(pending []*Migration) [][]*Migration {
	var out [][]*Migration
	var run []*Migration
	for _, mig := range pending {
		if !slices.ContainsFunc(mig.Operations, isStartSQL) {
			run = append(run, mig)
			continue
		}
		if len(run) > 0 {
			out = append(out, run)
			run = nil
		}
		out = append(out, []*Migration{mig})
	}
	if len(run) > 0 {
		out = append(out, run)
	}
	return out
}

// PanicError is returned when an operation's start, complete or rollback panicked: a bug
// in Tandem. The migration's recorded state is left as it was, so that the step can be
// run again once the cause is fixed.
type PanicError struct {
	Step  string // "start", "complete" or "roll back"
	File  string // the file the operation came from
	Op    int    // the operation's index in that file
	Kind  string // the operation's kind
	Value any    // what was passed to panic
	Stack []byte // the stack of the panic
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("%s: %s operation %d (%s): internal error (panic: %v); please report it with the migration file", e.File, e.Step, e.Op, e.Kind, e.Value)
}

// runStep runs one operation's step, naming the operation in its error and turning a
// panic into a *PanicError.
func runStep(mig *Migration, i int, step string, fn func() error) (err error) {
	op := mig.Operations[i]
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Step: step, File: opFile(mig, i), Op: opIndex(mig, i), Kind: op.Kind(), Value: v, Stack: debug.Stack()}
		}
	}()
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %s operation %d (%s): %w", opFile(mig, i), step, opIndex(mig, i), op.Kind(), err)
	}
	return nil
}

func (m *Migrator) newRun(rec *record, op int) *run {
	r := &run{m: m, rec: rec, op: op, schema: m.opts.Schema, newSchema: m.versionSchemaOf(rec),
		before: rec.Before, after: rec.After, opBefore: rec.Before, opAfter: rec.After}
	if op < len(rec.Shapes) {
		r.opBefore = rec.Shapes[op]
	}
	if op+1 < len(rec.Shapes) {
		r.opAfter = rec.Shapes[op+1]
	}
	return r
}

// opFile and opIndex locate operation i in the file it came from: a migration combined
// from several files (see Migrate) reports the file and index within it.
func opFile(mig *Migration, i int) string {
	if i < len(mig.origins) {
		return mig.origins[i].file
	}
	return mig.File
}

func opIndex(mig *Migration, i int) int {
	if i < len(mig.origins) {
		return mig.origins[i].index
	}
	return i
}

// namedAfterTable returns the statements that rename the constraints, indexes and
// sequences PostgreSQL named after table physical (physical_pkey, physical_id_seq, ...) after
// table name instead, as if the table had been created under its name.
func (m *Migrator) namedAfterTable(ctx context.Context, physical, name string) ([]string, error) {
	rows, err := m.conn.Query(ctx, `
		SELECT 'CONSTRAINT', k.conname::text FROM pg_constraint k WHERE k.conrelid = to_regclass($1)
		UNION ALL
		SELECT 'INDEX', i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
		 WHERE x.indrelid = to_regclass($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid)
		UNION ALL
		SELECT 'SEQUENCE', s.relname::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		 WHERE d.refobjid = to_regclass($1) AND d.deptype IN ('a', 'i')`, qi(m.opts.Schema, physical))
	if err != nil {
		return nil, fmt.Errorf("read the objects of table %s: %w", physical, err)
	}
	defer rows.Close()
	var stmts []string
	for rows.Next() {
		var kind, obj string
		if err := rows.Scan(&kind, &obj); err != nil {
			return nil, err
		}
		rest, ok := strings.CutPrefix(obj, physical)
		if !ok {
			continue
		}
		to := qi(name + rest)
		switch kind {
		case "CONSTRAINT":
			stmts = append(stmts, "ALTER TABLE "+qi(m.opts.Schema, physical)+" RENAME CONSTRAINT "+qi(obj)+" TO "+to)
		default:
			stmts = append(stmts, "ALTER "+kind+" "+qi(m.opts.Schema, obj)+" RENAME TO "+to)
		}
	}
	return stmts, rows.Err()
}

// stepRenames marks a complete whose operations are done and whose renames began.
const stepRenames = "complete-renames"

// renameToFinal gives every table and column of the new version its final name. It is
// complete's last step: until then the physical names stay as start made them, so that
// each operation finds its table and columns whatever the renames of the migration and
// their order. Every table's renames go in one transaction; a rerun skips what is done.
func (m *Migrator) renameToFinal(ctx context.Context, rec *record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Step: "complete", File: rec.File, Op: -1, Kind: "renames", Value: v, Stack: debug.Stack()}
		}
	}()
	for _, t := range rec.After.sortedTables() {
		table := qi(m.opts.Schema, t.Physical)
		var cols []string
		err := m.conn.QueryRow(ctx, `SELECT coalesce(array_agg(attname::text), '{}') FROM pg_attribute
			WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, table).Scan(&cols)
		if err != nil {
			return fmt.Errorf("read columns of %s: %w", table, err)
		}
		if len(cols) == 0 {
			continue // renamed by an interrupted complete, columns and all
		}
		has := map[string]bool{}
		for _, c := range cols {
			has[c] = true
		}
		var stmts []string
		for _, c := range t.Columns {
			if c.Physical != c.Name && has[c.Physical] {
				stmts = append(stmts, "ALTER TABLE "+table+" RENAME COLUMN "+qi(c.Physical)+" TO "+qi(c.Name))
			}
		}
		if strings.HasPrefix(t.Physical, tempTablePrefix) {
			named, err := m.namedAfterTable(ctx, t.Physical, t.Name)
			if err != nil {
				return err
			}
			stmts = append(stmts, named...)
		}
		if t.Physical != t.Name {
			stmts = append(stmts, "ALTER TABLE "+table+" RENAME TO "+qi(t.Name))
		}
		if len(stmts) > 0 {
			if err := m.execLocked(ctx, []string{table}, stmts...); err != nil {
				return fmt.Errorf("rename in table %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// replaceExpressions lets an interrupted start resume with corrected up/down expressions
// (say, after a backfill met a row the old expression could not convert). Anything else
// that differs from the recorded definition needs a rollback first.
func (m *Migrator) replaceExpressions(ctx context.Context, rec *record, mig *Migration) error {
	differ := &InputError{File: mig.File, Op: -1, Err: fmt.Errorf("migration %q is in progress with a different definition than this file; roll it back first (tandem rollback) to start the new one", mig.Name)}
	if rec.Status != StatusStarting || !sameJSON(withoutExpressions(rec.Definition), withoutExpressions(mig.Raw)) {
		return differ
	}
	after, shapes, err := m.plan(ctx, mig, rec.Before)
	if err != nil {
		return err
	}
	a1, _ := json.Marshal(after)
	a2, _ := json.Marshal(rec.After)
	s1, _ := json.Marshal(shapes)
	s2, _ := json.Marshal(rec.Shapes)
	if !bytes.Equal(a1, a2) || !bytes.Equal(s1, s2) {
		return differ
	}
	m.log.Info("resuming with corrected expressions", "migration", mig.Name)
	rec.Definition = mig.Raw
	if err := m.st.setDefinition(ctx, m.conn, rec.Name, mig.Raw); err != nil {
		return err
	}
	// The rows the backfills filled with the former expressions are to be computed again:
	// their catch-up passes will, once they forget the fill's transactions, and by those
	// (not only the rows without a value, see backfill). Not once the version schema
	// exists: the new version may have written rows since.
	if exists, err := m.schemaExists(ctx, m.versionSchemaOf(rec)); err != nil || exists {
		return err
	}
	if _, err := m.conn.Exec(ctx, "UPDATE "+qi(m.opts.StateSchema, "backfill_chunks")+" SET xids = '{}', caught_up = false, rules_first = false WHERE schema = $1 AND migration = $2",
		m.opts.Schema, rec.Name); err != nil {
		return fmt.Errorf("reset the backfills of migration %s: %w", rec.Name, err)
	}
	return nil
}

// withoutExpressions is a migration's JSON without the up and down expressions of its
// operations (raw sql operations keep theirs: they are the operation).
func withoutExpressions(raw []byte) []byte {
	var doc struct {
		Name       string                                  `json:"name"`
		Operations []map[string]map[string]json.RawMessage `json:"operations"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return raw
	}
	for _, op := range doc.Operations {
		for kind, body := range op {
			if kind != "sql" {
				delete(body, "up")
				delete(body, "down")
			}
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}

func hasRawSQL(mig *Migration) bool {
	for _, op := range mig.Operations {
		if isStartSQL(op) {
			return true
		}
	}
	return false
}

// isCompleteSQL reports whether op is an sql operation that runs at complete.
func isCompleteSQL(op Operation) bool {
	s, ok := op.(*OpRawSQL)
	return ok && s.OnComplete
}

// isStartSQL reports whether op is an sql operation that runs at start.
func isStartSQL(op Operation) bool {
	s, ok := op.(*OpRawSQL)
	return ok && !s.OnComplete
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
