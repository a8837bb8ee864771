package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Operation is one step of a migration. Each kind lives in its own file (op_<kind>.go)
// with its validation, start, complete and rollback side by side.
//
// start, complete and rollback must be idempotent: a run killed half-way through any of
// them is finished by running it again. rollback must also cope with a start that was
// interrupted at any point.
type Operation interface {
	// Kind is the operation's key in a migration file, e.g. "add_column".
	Kind() string
	// checkFields checks the operation on its own, without a database.
	checkFields() error
	// validate checks the operation against the new version's shape so far, and updates
	// that shape (v.after) to what the new version sees after this operation.
	validate(ctx context.Context, v *validator) error
	// start makes the additive change.
	start(ctx context.Context, r *run) error
	// complete makes the destructive change, once the old version is gone.
	complete(ctx context.Context, r *run) error
	// rollback undoes start.
	rollback(ctx context.Context, r *run) error
}

// operationKinds maps a kind to a constructor of its operation.
var operationKinds = map[string]func() Operation{
	"create_table":  func() Operation { return &OpCreateTable{} },
	"drop_table":    func() Operation { return &OpDropTable{} },
	"rename_table":  func() Operation { return &OpRenameTable{} },
	"add_column":    func() Operation { return &OpAddColumn{} },
	"alter_column":  func() Operation { return &OpAlterColumn{} },
	"drop_column":   func() Operation { return &OpDropColumn{} },
	"rename_column": func() Operation { return &OpRenameColumn{} },
	"create_index":  func() Operation { return &OpCreateIndex{} },
	"drop_index":    func() Operation { return &OpDropIndex{} },
	"sql":           func() Operation { return &OpRawSQL{} },

	"create_constraint":           func() Operation { return &OpCreateConstraint{} },
	"drop_constraint":             func() Operation { return &OpDropConstraint{} },
	"drop_multicolumn_constraint": func() Operation { return &OpDropMultiColumnConstraint{} },
	"rename_constraint":           func() Operation { return &OpRenameConstraint{} },
	"set_replica_identity":        func() Operation { return &OpSetReplicaIdentity{} },
}

// run is what an operation's start, complete and rollback work with.
type run struct {
	m      *Migrator
	rec    *record
	op     int    // index of the operation in the migration
	schema string // the base schema, where the physical tables live
	// newSchema is the new version's schema name; the triggers tell its writes apart.
	newSchema string
	before    *Schema // the old version's shape
	after     *Schema // the new version's shape
	// opBefore is the shape this operation sees (its expressions use its names), opAfter
	// the shape after it. In a migration of one operation they are before and after.
	opBefore, opAfter *Schema
	// arming, during start before the version schema exists, collects the triggers to
	// arm once every operation has started (see dualWrite); nil otherwise.
	arming *arming
}

// table qualifies a physical table name with the base schema, quoted.
func (r *run) table(physical string) string { return qi(r.schema, physical) }

// final returns the table of the new version stored physically as physical, or nil.
func (r *run) final(physical string) *Table {
	for _, t := range r.after.Tables {
		if t.Physical == physical {
			return t
		}
	}
	return nil
}

// objectName is a stable name for an object this operation creates (trigger, function,
// constraint), unique per migration, operation and purpose.
func (r *run) objectName(purpose string) string {
	// The operation's index leads, so that the triggers of one table fire in the order of
	// the operations (PostgreSQL fires them in name order).
	return shortName(fmt.Sprintf("_tandem_%s_%03d_", purpose, r.op), r.m.opts.Schema, r.rec.Name, fmt.Sprint(r.op))
}

// notNullName names the check that holds column col to NOT NULL until complete: the
// column's name is in it, so that a violation's message ("violates check constraint
// "_tandem_not_null_email_…"") says which column must not be NULL. part tells several
// checks of one operation apart.
func (r *run) notNullName(col, part string) string {
	if len(col) > 32 {
		col = strings.ToValidUTF8(col[:32], "")
	}
	return "_tandem_not_null_" + col + "_" + shortName("", r.m.opts.Schema, r.rec.Name, fmt.Sprint(r.op), part)[:8]
}

// validator checks operations against the live database before anything is applied.
// It works inside a transaction that is always rolled back.
type validator struct {
	tx     pgx.Tx
	schema string
	before *Schema // the old version's shape, as read from the catalog
	after  *Schema // the new version's shape so far
	// opBefore is the shape before the operation being validated.
	opBefore *Schema
	// log receives the warnings of validation (a default dropped, say).
	log *slog.Logger
	// rawSQL is set once an sql operation ran in the migration: the shape of later
	// tables is then unknown to the validator.
	rawSQL bool
}

// existing returns the table of the old version that t is stored in (t may have been
// renamed earlier in the migration), or nil when t is created in this migration.
func (v *validator) existing(t *Table) *Table {
	for _, old := range v.before.Tables {
		if old.Physical == t.Physical {
			return old
		}
	}
	return nil
}

// table returns the table the new version calls name, or an error naming the field.
func (v *validator) table(field, name string) (*Table, error) {
	if t := v.after.Table(name); t != nil {
		return t, nil
	}
	return nil, fieldErr(field, "table %q does not exist in schema %q%s", name, v.schema, suggest(name, tableNames(v.after)))
}

// column returns the column the new version calls name in t.
func (v *validator) column(field string, t *Table, name string) (*Column, error) {
	if c := t.Column(name); c != nil {
		return c, nil
	}
	var names []string
	for _, c := range t.Columns {
		names = append(names, c.Name)
	}
	return nil, fieldErr(field, "column %q does not exist in table %q%s", name, t.Name, suggest(name, names))
}

// checkType makes sure typ names an existing type, and returns the spelling to use in DDL:
// typ itself (modifiers included), or the integer type behind a serial pseudo-type.
func (v *validator) checkType(ctx context.Context, field, typ string) (string, error) {
	if strings.TrimSpace(typ) == "" {
		return "", fieldErr(field, "required")
	}
	if isSerial(typ) {
		return serialBase(typ), nil
	}
	// The type is written into DDL as the file spells it (to keep its modifiers), so it
	// must be one self-contained piece of SQL: no comment may swallow what follows it.
	if err := checkTypeName(typ); err != nil {
		return "", fieldErr(field, "type %q: %v", typ, err)
	}
	var canon *string
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT format_type(t, NULL) FROM to_regtype($1) t", typ).Scan(&canon)
	})
	if err != nil || canon == nil {
		msg := fmt.Sprintf("type %q does not exist", typ)
		if err != nil {
			msg = fmt.Sprintf("type %q is not a valid type name: %s", typ, pgMessage(err))
		}
		return "", fieldErr(field, "%s", msg)
	}
	return typ, nil
}

// checkExpr makes sure expr is a single expression that the database can evaluate over the
// rows of t as the given version sees them, and that its result fits resultType (if set).
func (v *validator) checkExpr(ctx context.Context, field, expr string, t *Table, resultType string) error {
	if err := checkExpr(expr); err != nil {
		return fieldErr(field, "%v", err)
	}
	if v.rawSQL {
		return nil
	}
	var cols []string
	physical := v.existing(t)
	for _, c := range t.Columns {
		if physical != nil && physical.ColumnByPhysical(c.Physical) != nil {
			cols = append(cols, qi(c.Physical)+" AS "+qi(c.Name))
		} else {
			cols = append(cols, "NULL::"+c.Type+" AS "+qi(c.Name))
		}
	}
	from := "(SELECT " + strings.Join(cols, ", ") + ") AS " + qi(t.Name)
	if physical != nil {
		from = "(SELECT " + strings.Join(cols, ", ") + " FROM " + qi(v.schema, t.Physical) + ") AS " + qi(t.Name)
	}
	sel := "(" + expr + ")"
	if resultType != "" {
		sel += "::" + resultType
	}
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+sel+" FROM "+from+" LIMIT 0")
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	if isLockTimeout(err) {
		// Another session locks the table: not a problem of the file.
		return fmt.Errorf("check expression %q on table %q: %w", expr, t.Name, err)
	}
	if err != nil {
		return fieldErr(field, "expression %q is not valid for table %q: %s", expr, t.Name, pgMessage(err))
	}
	return nil
}

// checkValueExpr makes sure expr is a single expression, referencing no column, whose
// value fits type typ: a column default.
func (v *validator) checkValueExpr(ctx context.Context, field, expr, typ string) error {
	if err := checkExpr(expr); err != nil {
		return fieldErr(field, "%v", err)
	}
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT ("+expr+")::"+typ+" LIMIT 0")
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return fieldErr(field, "expression %q is not a valid value of type %s: %s", expr, typ, pgMessage(err))
	}
	return nil
}

// defaultFor returns column default expr made fit for a column of type typ: as it is
// when PostgreSQL converts its type to typ on assignment, else with an explicit cast. It
// fails when the cast is invalid or its evaluation fails. A default that cannot be
// evaluated in the validator's read-only transaction (nextval) only needs a valid cast.
func (v *validator) defaultFor(ctx context.Context, expr, typ string) (string, error) {
	if err := v.checkValueExpr(ctx, "default", expr, typ); err != nil {
		return "", err
	}
	var assignable bool
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT s = t OR EXISTS (SELECT 1 FROM pg_cast WHERE castsource = s AND casttarget = t AND castcontext IN ('a', 'i'))
			FROM (SELECT pg_typeof(`+expr+`)::oid AS s, $1::regtype::oid AS t) x`, typ).Scan(&assignable)
	})
	if err != nil && sqlStateOf(err) != "25006" { // read_only_sql_transaction
		return "", errors.New(pgMessage(err))
	}
	err = savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		var s *string
		return tx.QueryRow(ctx, "SELECT (("+expr+")::"+typ+")::text").Scan(&s)
	})
	if err != nil && sqlStateOf(err) != "25006" {
		return "", errors.New(pgMessage(err))
	}
	if assignable {
		return expr, nil
	}
	return "(" + expr + ")::" + typ, nil
}

// sqlStateOf is the SQLSTATE of a server error, or "".
func sqlStateOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// rowsSQL is a subquery of the physical rows of t under the names t gives them, with the
// physical columns named in renames shown under another name.
func (v *validator) rowsSQL(t *Table, renames map[string]string) string {
	var cols []string
	physical := v.existing(t)
	for _, c := range t.Columns {
		name := c.Name
		if n, ok := renames[c.Physical]; ok {
			name = n
		}
		if physical != nil && physical.ColumnByPhysical(c.Physical) != nil {
			cols = append(cols, qi(c.Physical)+" AS "+qi(name))
		} else {
			cols = append(cols, "NULL::"+c.Type+" AS "+qi(name))
		}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM " + qi(v.schema, t.Physical) + ") AS " + qi(t.Name)
}

// anyRow reports whether some row of t satisfies cond (written in t's names, with
// renames applied). It reads the whole table.
func (v *validator) anyRow(ctx context.Context, t *Table, cond string, renames map[string]string) (bool, error) {
	if err := checkExpr(cond); err != nil {
		return false, err
	}
	var found bool
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+v.rowsSQL(t, renames)+" WHERE "+cond+")").Scan(&found)
	})
	if err != nil {
		return false, errors.New(pgMessage(err))
	}
	return found, nil
}

// anyRowMapped reports whether some row of t, with up computed as _tandem_up of type typ,
// satisfies cond. It reads the whole table.
func (v *validator) anyRowMapped(ctx context.Context, t *Table, up, typ, cond string) (bool, error) {
	var found bool
	err := savepoint(ctx, v.tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM (SELECT ("+up+")::"+typ+" AS _tandem_up, * FROM "+
			v.rowsSQL(t, nil)+") AS "+qi(t.Name)+" WHERE "+cond+")").Scan(&found)
	})
	if err != nil {
		return false, errors.New(pgMessage(err))
	}
	return found, nil
}

// hasRows reports whether the physical table has at least one row.
func (v *validator) hasRows(ctx context.Context, t *Table) (bool, error) {
	if v.existing(t) == nil {
		return false, nil
	}
	var ok bool
	err := v.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+qi(v.schema, t.Physical)+")").Scan(&ok)
	return ok, err
}

// noInheritance refuses a table with inheritance children (INHERITS; partitions are
// fine): a dual-write trigger on the table would not fire for the writes made to them.
func (v *validator) noInheritance(ctx context.Context, field string, t *Table) error {
	if v.existing(t) == nil {
		return nil
	}
	var children bool
	err := v.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass AND NOT c.relispartition)`, qi(v.schema, t.Physical)).Scan(&children)
	if err != nil {
		return err
	}
	if children {
		return fieldErr(field, "table %q has inheritance children (INHERITS): Tandem's triggers would not see the writes made to them; make it a partitioned table, or change it with plain SQL", t.Name)
	}
	return nil
}

func savepoint(ctx context.Context, tx pgx.Tx, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, tx, fn)
}

// pgMessage is the server's message of err without the driver's decoration.
func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Hint != "" {
			return pe.Message + " (hint: " + pe.Hint + ")"
		}
		return pe.Message
	}
	return err.Error()
}

func tableNames(s *Schema) []string {
	var out []string
	for n := range s.Tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// suggest returns "; did you mean X?" when a name close to name exists.
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
