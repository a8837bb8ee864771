package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// This file holds what the constraint operations (create_constraint, drop_constraint,
// drop_multicolumn_constraint, rename_constraint) share: a rule that maps several columns
// of one version's writes at once, and catalog look-ups for validation.

// mapRule is a rule that sets several columns, physical column → expression in shape's
// names, in a stable order.
func mapRule(shape *Table, exprs map[string]string) *rule {
	targets := make([]string, 0, len(exprs))
	for t := range exprs {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	ru := &rule{table: shape}
	for _, t := range targets {
		ru.sets = append(ru.sets, assignment{target: t, expr: exprs[t]})
	}
	return ru
}

// constraintInfo is what the catalog says about a table's constraint.
type constraintInfo struct {
	contype string   // c, f, p, u, x (and n on PostgreSQL 18+)
	columns []string // physical columns the constraint covers (conkey)
	def     string   // pg_get_constraintdef
}

// lookupConstraint reads constraint name of the physical table t from the catalog, or
// returns nil when the table has no such constraint physically (yet).
func (v *validator) lookupConstraint(ctx context.Context, t *Table, name string) (*constraintInfo, error) {
	var ci constraintInfo
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
			SELECT k.contype::text, pg_get_constraintdef(k.oid),
			       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
			               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.ord)
			  FROM pg_constraint k
			 WHERE k.conrelid = to_regclass($1) AND k.conname = $2`, qi(v.schema, t.Physical), name).Scan(&ci.contype, &ci.def, &ci.columns)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.New(pgMessage(err))
	}
	return &ci, nil
}

// constraintColumns is lookupConstraint, falling back on the shape for a constraint made
// earlier in this migration (its columns only).
func (v *validator) constraintColumns(ctx context.Context, t *Table, name string) (*constraintInfo, error) {
	info, err := v.lookupConstraint(ctx, t, name)
	if info == nil && err == nil && len(t.ConstraintColumns[name]) > 0 {
		return &constraintInfo{columns: t.ConstraintColumns[name]}, nil
	}
	return info, err
}

// relationExists reports whether a table, index or other relation called name exists in
// the base schema. Unique and primary key constraints own an index of their name, and
// index names are unique per schema.
func (v *validator) relationExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qi(v.schema, name)).Scan(&ok)
	})
	if err != nil {
		return false, errors.New(pgMessage(err))
	}
	return ok, nil
}

// constraintNameTaken returns an error naming field when a constraint called name exists on
// t, or a relation called name exists in the schema (an index-backed constraint would
// collide with it).
func (v *validator) constraintNameTaken(ctx context.Context, field string, t *Table, name string, indexBacked bool) error {
	if t.hasConstraint(name) {
		return fieldErr(field, "a constraint named %q already exists on table %q", name, t.Name)
	}
	for _, old := range v.before.Tables {
		if old.Physical == t.Physical && old.hasConstraint(name) {
			return fieldErr(field, "a constraint named %q exists on table %q until this migration completes (dropped or renamed in it); choose another name", name, t.Name)
		}
	}
	if !indexBacked {
		return nil
	}
	for _, other := range v.after.Tables {
		if other.hasIndex(name) {
			return fieldErr(field, "an index named %q already exists on table %q; a unique or primary key constraint needs an index of its own name", name, other.Name)
		}
	}
	if taken, err := v.relationExists(ctx, name); err != nil {
		return err
	} else if taken {
		return fieldErr(field, "a relation named %q already exists in schema %q; a unique or primary key constraint needs an index of its own name", name, v.schema)
	}
	return nil
}

// removeConstraint drops name from t's list of constraints.
func (t *Table) removeConstraint(name string) {
	for i, c := range t.Constraints {
		if c == name {
			t.Constraints = append(t.Constraints[:i:i], t.Constraints[i+1:]...)
			return
		}
	}
}

// checkColumnExprs checks a map of column → expression (pgroll's per-column up or down):
// every key a column of t, every expression valid over t with a value of the column's type.
// allowed, when not nil, limits the keys to those columns.
func (v *validator) checkColumnExprs(ctx context.Context, field string, exprs map[string]string, t *Table, allowed map[string]bool) error {
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c, err := v.column(field, t, k)
		if err != nil {
			return err
		}
		if allowed != nil && !allowed[k] {
			return fieldErr(field, "column %q is not one of the constraint's columns", k)
		}
		if err := v.checkExpr(ctx, field+"."+k, exprs[k], t, c.Type); err != nil {
			return err
		}
	}
	return nil
}

// physicalExprs maps the column names of exprs to the physical columns of t.
func physicalExprs(exprs map[string]string, t *Table) map[string]string {
	out := map[string]string{}
	for k, e := range exprs {
		out[t.Column(k).Physical] = e
	}
	return out
}

// physicalExpr rewrites an expression in t's column names to one over the physical
// columns, for a constraint definition.
func physicalExpr(expr string, t *Table) string {
	// Through temporary names, so that swapped names (a→b, b→a) cannot collide.
	var renamed []*Column
	for _, c := range t.Columns {
		if c.Name != c.Physical && mentions(expr, c.Name) {
			renamed = append(renamed, c)
		}
	}
	for i, c := range renamed {
		expr = renameIdent(expr, c.Name, fmt.Sprintf("_tandem_tmp_%d", i))
	}
	for i, c := range renamed {
		expr = renameIdent(expr, fmt.Sprintf("_tandem_tmp_%d", i), c.Physical)
	}
	return expr
}
