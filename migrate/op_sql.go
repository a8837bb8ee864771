package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// OpRawSQL runs SQL as written: up at start (or at complete with onComplete), down at
// rollback. Tandem cannot make raw SQL safe for the old version: that is the author's job.
// An sql operation that runs at start must be the only kind in its migration.
type OpRawSQL struct {
	Up         string `json:"up"`
	Down       string `json:"down,omitempty"`
	OnComplete bool   `json:"onComplete,omitempty"`
}

// Kind implements Operation.
func (o *OpRawSQL) Kind() string { return "sql" }

func (o *OpRawSQL) checkFields() error {
	if err := required("up", o.Up); err != nil {
		return err
	}
	if o.OnComplete && o.Down != "" {
		return fieldErr("down", "an onComplete sql operation runs after the point of no return and cannot have a down")
	}
	return nil
}

func (o *OpRawSQL) validate(ctx context.Context, v *validator) error {
	v.rawSQL = !o.OnComplete || v.rawSQL
	return nil
}

// marker names the step, recorded in the state schema in the same transaction as up, that
// says up ran: a rerun does not run it twice, and rollback runs down exactly when up ran.
func (o *OpRawSQL) marker(r *run) string { return fmt.Sprintf("sql-%d", r.op) }

func (o *OpRawSQL) start(ctx context.Context, r *run) error {
	if o.OnComplete {
		return nil
	}
	return o.runOnce(ctx, r, o.Up)
}

func (o *OpRawSQL) complete(ctx context.Context, r *run) error {
	if !o.OnComplete {
		return nil
	}
	return o.runOnce(ctx, r, o.Up)
}

// runOnce runs sql in a transaction together with a marker row, so that a rerun after a
// kill does not run it twice.
func (o *OpRawSQL) runOnce(ctx context.Context, r *run, sql string) error {
	if r.m.dry != nil {
		r.m.dry.transaction(nil, []string{sql})
		return nil
	}
	return r.m.lockedTx(ctx, nil, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO "+qi(r.m.opts.StateSchema, "steps")+
			" (schema, migration, step) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			r.m.opts.Schema, r.rec.Name, o.marker(r))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // ran before
		}
		_, err = tx.Exec(ctx, sql)
		return err
	})
}

func (o *OpRawSQL) rollback(ctx context.Context, r *run) error {
	if o.OnComplete {
		return nil
	}
	return r.m.lockedTx(ctx, nil, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM "+qi(r.m.opts.StateSchema, "steps")+
			" WHERE schema = $1 AND migration = $2 AND step = $3", r.m.opts.Schema, r.rec.Name, o.marker(r))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 || o.Down == "" {
			return nil // up never ran, or there is nothing to undo
		}
		_, err = tx.Exec(ctx, o.Down)
		return err
	})
}
