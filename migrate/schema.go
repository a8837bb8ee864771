package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is the shape of the logical schema as one version sees it: its tables with
// their visible names, and where each one lives physically.
type Schema struct {
	Tables map[string]*Table `json:"tables"`
}

// Table is a table as one version sees it.
type Table struct {
	Name       string    `json:"name"`     // as the version sees it
	Physical   string    `json:"physical"` // the physical table in the base schema
	Columns    []*Column `json:"columns"`
	PrimaryKey []string  `json:"primary_key,omitempty"` // physical column names
	Indexes    []string  `json:"indexes,omitempty"`     // physical index names
	// Constraints are the names of the table's constraints.
	Constraints []string `json:"constraints,omitempty"`
	// ConstraintColumns are the physical columns of the constraints made in the
	// migration (the catalog has them for the others).
	ConstraintColumns map[string][]string `json:"constraint_columns,omitempty"`
	// ReplicaIdentity is the table's REPLICA IDENTITY clause when it is not DEFAULT:
	// FULL, NOTHING or USING INDEX "name".
	ReplicaIdentity string `json:"replica_identity,omitempty"`
}

// Column is a column as one version sees it.
type Column struct {
	Name     string  `json:"name"`     // as the version sees it
	Physical string  `json:"physical"` // the physical column
	Type     string  `json:"type"`
	Nullable bool    `json:"nullable"`
	Default  *string `json:"default,omitempty"`
	// ViewDefault is the default a version view must carry for this column so inserts
	// through the view behave like inserts into the table: the column default, or
	// nextval() of an identity column's sequence.
	ViewDefault *string `json:"view_default,omitempty"`
	Generated   bool    `json:"generated,omitempty"`
}

// Clone returns a deep copy.
func (s *Schema) Clone() *Schema {
	data, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Schema always marshals
	}
	var c Schema
	if err := json.Unmarshal(data, &c); err != nil {
		panic(err)
	}
	if c.Tables == nil {
		c.Tables = map[string]*Table{}
	}
	return &c
}

// Table returns the table the version calls name, or nil.
func (s *Schema) Table(name string) *Table { return s.Tables[name] }

// Column returns the column the version calls name, or nil.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ColumnByPhysical returns the column stored physically as name, or nil.
func (t *Table) ColumnByPhysical(name string) *Column {
	for _, c := range t.Columns {
		if c.Physical == name {
			return c
		}
	}
	return nil
}

// physicalTableTaken reports whether a physical table of that name exists in the schema.
func (s *Schema) physicalTableTaken(name string) bool {
	for _, t := range s.Tables {
		if t.Physical == name {
			return true
		}
	}
	return false
}

func (t *Table) hasIndex(name string) bool {
	for _, i := range t.Indexes {
		if i == name {
			return true
		}
	}
	return false
}

// addConstraint records a constraint made in the migration over physical columns cols.
func (t *Table) addConstraint(name string, cols ...string) {
	t.Constraints = append(t.Constraints, name)
	if t.ConstraintColumns == nil {
		t.ConstraintColumns = map[string][]string{}
	}
	t.ConstraintColumns[name] = cols
}

func (t *Table) hasConstraint(name string) bool {
	for _, c := range t.Constraints {
		if c == name {
			return true
		}
	}
	return false
}

// sortedTables returns the tables ordered by name, for stable DDL.
func (s *Schema) sortedTables() []*Table {
	ts := make([]*Table, 0, len(s.Tables))
	for _, t := range s.Tables {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// readSchema reads the physical tables of schema from the catalog. The view of a GENERATED
// BY DEFAULT identity column carries its nextval() default; one GENERATED ALWAYS carries
// none (the table's identity applies to an insert through the view that leaves it out,
// and any value the view supplied would be refused). Tandem's own trigger
// functions are not tables, and partitions are reached through their parent.
func readSchema(ctx context.Context, q querier, schema string) (*Schema, error) {
	s := &Schema{Tables: map[string]*Table{}}
	rows, err := q.Query(ctx, `
		SELECT c.relname,
		       a.attname,
		       format_type(a.atttypid, a.atttypmod),
		       NOT a.attnotnull,
		       pg_get_expr(d.adbin, d.adrelid),
		       CASE WHEN a.attidentity = 'd' THEN
		            format('nextval(%L::regclass)', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
		       END,
		       a.attgenerated <> ''
		  FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		 ORDER BY c.relname, a.attnum`, schema)
	if err != nil {
		return nil, fmt.Errorf("read tables of schema %q: %w", schema, err)
	}
	for rows.Next() {
		var (
			table, col, typ string
			nullable, gen   bool
			def, ident      *string
		)
		if err := rows.Scan(&table, &col, &typ, &nullable, &def, &ident, &gen); err != nil {
			return nil, err
		}
		t := s.Tables[table]
		if t == nil {
			t = &Table{Name: table, Physical: table}
			s.Tables[table] = t
		}
		c := &Column{Name: col, Physical: col, Type: typ, Nullable: nullable, Default: def, Generated: gen}
		if gen {
			c.Default = nil
		}
		c.ViewDefault = c.Default
		if ident != nil {
			c.ViewDefault = ident
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `
		SELECT c.relname, i.relname, x.indisprimary,
		       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
		               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		              ORDER BY k.ord)
		  FROM pg_index x
		  JOIN pg_class c ON c.oid = x.indrelid
		  JOIN pg_class i ON i.oid = x.indexrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1
		 ORDER BY c.relname, i.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("read indexes of schema %q: %w", schema, err)
	}
	for rows.Next() {
		var table, index string
		var primary bool
		var cols []string
		if err := rows.Scan(&table, &index, &primary, &cols); err != nil {
			return nil, err
		}
		if t := s.Tables[table]; t != nil {
			t.Indexes = append(t.Indexes, index)
			if primary {
				t.PrimaryKey = cols
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `
		SELECT c.relname, CASE c.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING'
		       ELSE 'USING INDEX ' || quote_ident((SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
		                                            WHERE x.indrelid = c.oid AND x.indisreplident)) END
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relreplident <> 'd'`, schema)
	if err != nil {
		return nil, fmt.Errorf("read replica identities of schema %q: %w", schema, err)
	}
	for rows.Next() {
		var table string
		var ident *string
		if err := rows.Scan(&table, &ident); err != nil {
			return nil, err
		}
		if t := s.Tables[table]; t != nil && ident != nil {
			t.ReplicaIdentity = *ident
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `
		SELECT c.relname, k.conname
		  FROM pg_constraint k
		  JOIN pg_class c ON c.oid = k.conrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1
		 ORDER BY 1, 2`, schema)
	if err != nil {
		return nil, fmt.Errorf("read constraints of schema %q: %w", schema, err)
	}
	for rows.Next() {
		var table, con string
		if err := rows.Scan(&table, &con); err != nil {
			return nil, err
		}
		if t := s.Tables[table]; t != nil {
			t.Constraints = append(t.Constraints, con)
		}
	}
	return s, rows.Err()
}

// querier is what both *pgx.Conn and pgx.Tx offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
