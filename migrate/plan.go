package migrate

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Plan is what a start or a complete would do, step by step, without doing it: see
// PlanStart and PlanComplete.
type Plan struct {
	Migration string `json:"migration"`
	// Action is "start" or "complete".
	Action string     `json:"action"`
	Steps  []PlanStep `json:"steps"`
}

// PlanStep is one step of a plan: a transaction of statements, a statement run outside a
// transaction (CONCURRENTLY), or a backfill.
type PlanStep struct {
	// Operation is the operation's index in its file, and File that file; -1 for the
	// migration's own steps (the version schema, the final renames).
	Operation int    `json:"operation"`
	File      string `json:"file,omitempty"`
	Kind      string `json:"kind"`
	// Type is "transaction", "concurrently" or "backfill".
	Type       string   `json:"type"`
	Statements []string `json:"statements,omitempty"`
	// Locks are the tables the step locks and how: the strongest lock its statements
	// take on each, by PostgreSQL's rules for those statements.
	Locks    []PlanLock    `json:"locks,omitempty"`
	Backfill *PlanBackfill `json:"backfill,omitempty"`
}

// PlanLock is a table lock a step takes.
type PlanLock struct {
	Table string `json:"table"`
	Mode  string `json:"mode"`
}

// PlanBackfill is the backfill of a column: the rows it will fill, an estimate from the
// planner's statistics (pg_class.reltuples).
type PlanBackfill struct {
	Table      string `json:"table"`
	Column     string `json:"column"`
	Expression string `json:"expression"`
	Rows       int64  `json:"rows"`
}

// dryRun collects a plan while the operations' steps run in planning mode: every
// statement that would change the database is recorded instead of run (see
// Migrator.dry).
type dryRun struct {
	plan *Plan
	op   int
	file string
	kind string
}

func (d *dryRun) add(s PlanStep) {
	s.Operation, s.File, s.Kind = d.op, d.file, d.kind
	d.plan.Steps = append(d.plan.Steps, s)
}

// transaction records a locking transaction of stmts, waiting on the checks' tables.
func (d *dryRun) transaction(checks []lockCheck, stmts []string) {
	s := PlanStep{Type: "transaction", Statements: stmts}
	modes := map[string]string{}
	var order []string
	for _, c := range checks {
		for _, t := range c.tables {
			if _, ok := modes[t]; !ok {
				order = append(order, t)
				modes[t] = ""
			}
		}
	}
	for _, st := range stmts {
		for _, t := range order {
			if m := lockOf(st, t); lockRank[m] > lockRank[modes[t]] {
				modes[t] = m
			}
		}
	}
	for _, t := range order {
		if modes[t] != "" {
			s.Locks = append(s.Locks, PlanLock{Table: t, Mode: modes[t]})
		}
	}
	d.add(s)
}

// concurrently records a statement run outside a transaction (CREATE or DROP INDEX
// CONCURRENTLY).
func (d *dryRun) concurrently(stmt string) {
	s := PlanStep{Type: "concurrently", Statements: []string{stmt}}
	if m := onTableRE().FindStringSubmatch(stmt); m != nil {
		s.Locks = []PlanLock{{Table: m[1], Mode: "SHARE UPDATE EXCLUSIVE"}}
	}
	d.add(s)
}

// onTableRE finds the table of a CREATE INDEX statement, as Tandem writes them.
var onTableRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(` ON ("[^"]*(?:""[^"]*)*"\."[^"]*(?:""[^"]*)*")`) })

// lockRank orders lock modes by strength.
var lockRank = map[string]int{"": 0, "ACCESS SHARE": 1, "ROW SHARE": 2, "ROW EXCLUSIVE": 3, "SHARE UPDATE EXCLUSIVE": 4,
	"SHARE": 5, "SHARE ROW EXCLUSIVE": 6, "EXCLUSIVE": 7, "ACCESS EXCLUSIVE": 8}

var (
	foreignKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\bFOREIGN KEY\b`) })
	validateRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^ALTER TABLE \S+ VALIDATE CONSTRAINT`) })
	triggerRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^CREATE (OR REPLACE )?TRIGGER`) })
)

// lockOf is the lock statement stmt takes on table (quoted and qualified), by
// PostgreSQL's documented rules; "" when it names the table not at all.
func lockOf(stmt, table string) string {
	if !strings.Contains(stmt, table) {
		return ""
	}
	s := strings.TrimSpace(stmt)
	u := strings.ToUpper(s)
	switch {
	case validateRE().MatchString(s):
		return "SHARE UPDATE EXCLUSIVE"
	case triggerRE().MatchString(s):
		return "SHARE ROW EXCLUSIVE"
	case strings.HasPrefix(u, "CREATE VIEW"), strings.HasPrefix(u, "CREATE OR REPLACE VIEW"):
		return "ACCESS SHARE"
	case strings.HasPrefix(u, "COMMENT ON"):
		return "SHARE UPDATE EXCLUSIVE"
	case strings.HasPrefix(u, "CREATE INDEX CONCURRENTLY"), strings.HasPrefix(u, "CREATE UNIQUE INDEX CONCURRENTLY"),
		strings.HasPrefix(u, "DROP INDEX CONCURRENTLY"):
		return "SHARE UPDATE EXCLUSIVE"
	case strings.HasPrefix(u, "ALTER TABLE") && !strings.HasPrefix(u, "ALTER TABLE "+strings.ToUpper(table)):
		// Another table's statement that references this one (a foreign key).
		return "SHARE ROW EXCLUSIVE"
	case strings.HasPrefix(u, "ALTER TABLE") && foreignKeyRE().MatchString(s) && strings.Contains(u, " ADD CONSTRAINT "):
		return "SHARE ROW EXCLUSIVE"
	case strings.HasPrefix(u, "CREATE TABLE"):
		return "SHARE ROW EXCLUSIVE" // a referenced table, by a foreign key
	case strings.HasPrefix(u, "UPDATE"):
		return "ROW EXCLUSIVE"
	}
	return "ACCESS EXCLUSIVE"
}

// PlanStart returns what Start would do to begin mig, and applies nothing: each
// operation's statements in order, grouped by transaction, with the locks they take and
// the rows each backfill fills. The checks of Validate run first. Statements whose text
// depends on what earlier steps did (the catalog they leave) are shown as they would be
// run on the database as it is now.
func (m *Migrator) PlanStart(ctx context.Context, mig *Migration) (*Plan, error) {
	var plan *Plan
	err := m.withLock(ctx, func() error {
		if ok, err := m.st.initialized(ctx, m.conn); err != nil {
			return err
		} else if ok {
			act, err := m.st.active(ctx, m.conn)
			if err != nil {
				return err
			}
			if act != nil {
				return fmt.Errorf("migration %q is in progress (%s): a start can only be planned with no migration in progress", act.Name, act.Status)
			}
			for _, name := range mig.names() {
				if done, err := m.st.applied(ctx, m.conn, name); err != nil {
					return err
				} else if done {
					return &InputError{File: mig.File, Op: -1, Field: "name", Err: fmt.Errorf("migration %q has already been applied and completed", name)}
				}
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
		rec := &record{Name: mig.Name, File: mig.File, Definition: mig.Raw, Before: before, After: after, Shapes: shapes,
			Includes: mig.names(), VersionSchema: mig.VersionSchema}
		d := &dryRun{plan: &Plan{Migration: mig.Name, Action: "start", Steps: []PlanStep{}}}
		m.dry = d
		defer func() { m.dry = nil }()
		arm := &arming{}
		for i, op := range mig.Operations {
			d.op, d.file, d.kind = opIndex(mig, i), opFile(mig, i), op.Kind()
			r := m.newRun(rec, i)
			r.arming = arm
			if err := runStep(mig, i, "plan the start of", func() error { return op.start(ctx, r) }); err != nil {
				return err
			}
		}
		d.op, d.file, d.kind = -1, "", "triggers armed"
		if err := arm.arm(ctx, m); err != nil {
			return err
		}
		d.kind = "version schema"
		if err := m.createVersionSchema(ctx, rec); err != nil {
			return err
		}
		plan = d.plan
		return nil
	})
	return plan, err
}

// PlanComplete returns what Complete would do to finish the migration in progress, and
// applies nothing (see PlanStart).
func (m *Migrator) PlanComplete(ctx context.Context) (*Plan, error) {
	var plan *Plan
	err := m.withLock(ctx, func() error {
		ok, err := m.st.initialized(ctx, m.conn)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoActiveMigration
		}
		rec, err := m.st.active(ctx, m.conn)
		if err != nil {
			return err
		}
		if rec == nil {
			return ErrNoActiveMigration
		}
		if rec.Status != StatusStarted {
			return fmt.Errorf("migration %q is %s: a complete can only be planned for a started migration", rec.Name, rec.Status)
		}
		mig, err := Parse(rec.File, rec.Name, rec.Definition)
		if err != nil {
			return fmt.Errorf("recorded definition of %q: %w", rec.Name, err)
		}
		d := &dryRun{plan: &Plan{Migration: rec.Name, Action: "complete", Steps: []PlanStep{}}}
		m.dry = d
		defer func() { m.dry = nil }()
		d.op, d.kind = -1, "old version schema"
		if rec.Parent != "" {
			parent, err := m.st.get(ctx, m.conn, rec.Parent)
			if err != nil {
				return fmt.Errorf("read migration %s: %w", rec.Parent, err)
			}
			if parent != nil {
				if err := m.dropVersionSchema(ctx, m.versionSchemaOf(parent)); err != nil {
					return err
				}
			}
		}
		for _, sql := range []bool{false, true} {
			if sql {
				d.op, d.file, d.kind = -1, "", "renames"
				if err := m.renameToFinal(ctx, rec); err != nil {
					return err
				}
			}
			for i, op := range mig.Operations {
				if isCompleteSQL(op) != sql {
					continue
				}
				d.op, d.file, d.kind = opIndex(mig, i), opFile(mig, i), op.Kind()
				if err := runStep(mig, i, "plan the complete of", func() error { return op.complete(ctx, m.newRun(rec, i)) }); err != nil {
					return err
				}
			}
		}
		plan = d.plan
		return nil
	})
	return plan, err
}
