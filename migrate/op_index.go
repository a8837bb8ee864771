package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// OpCreateIndex builds an index CONCURRENTLY at start (reads and writes go on); rollback
// drops it. An INVALID index left by a failed or killed build is dropped and rebuilt.
type OpCreateIndex struct {
	Name              string       `json:"name"`
	Table             string       `json:"table"`
	Columns           IndexColumns `json:"columns"`
	Unique            bool         `json:"unique,omitempty"`
	Predicate         string       `json:"predicate,omitempty"`
	Method            string       `json:"method,omitempty"`
	StorageParameters string       `json:"storage_parameters,omitempty"`
}

// IndexColumns are the key columns of an index: a list of names, a list of objects
// (pgroll's current format: {"column": "a", "sort": "DESC", ...}), or (as some pgroll
// versions wrote it) an object from name to its settings.
type IndexColumns []IndexColumn

// IndexColumn is one key column of an index.
type IndexColumn struct {
	Name          string   `json:"name"`
	Collate       string   `json:"collate,omitempty"`
	Sort          string   `json:"sort,omitempty"`  // ASC or DESC
	Nulls         string   `json:"nulls,omitempty"` // FIRST or LAST
	Opclass       string   `json:"opclass,omitempty"`
	OpclassParams []string `json:"opclass_params,omitempty"` // e.g. "siglen = 32"
}

// indexColumnSettings are the settings of one index column in pgroll's format.
type indexColumnSettings struct {
	Column  string `json:"column"`
	Collate string `json:"collate"`
	Sort    string `json:"sort"`
	Nulls   string `json:"nulls"`
	Opclass any    `json:"opclass"` // a name, or {"name": ..., "params": [...]}
}

func (s indexColumnSettings) column(name string) (IndexColumn, error) {
	c := IndexColumn{Name: name, Collate: s.Collate, Sort: s.Sort, Nulls: s.Nulls}
	switch oc := s.Opclass.(type) {
	case nil:
	case string:
		c.Opclass = oc
	case map[string]any:
		for k, v := range oc {
			switch k {
			case "name":
				n, ok := v.(string)
				if !ok {
					return c, fmt.Errorf("opclass.name must be a string")
				}
				c.Opclass = n
			case "params":
				ps, ok := v.([]any)
				if !ok {
					return c, fmt.Errorf("opclass.params must be a list of strings")
				}
				for _, p := range ps {
					s, ok := p.(string)
					if !ok {
						return c, fmt.Errorf("opclass.params must be a list of strings")
					}
					c.OpclassParams = append(c.OpclassParams, s)
				}
			default:
				return c, fmt.Errorf("opclass: unknown field %q (known: name, params)", k)
			}
		}
	default:
		return c, fmt.Errorf("opclass must be a name or an object {name, params}")
	}
	return c, nil
}

// UnmarshalJSON accepts ["a", "b"], [{"column": "a", "sort": "DESC"}, {"column": "b"}] and
// {"a": {"sort": "DESC"}, "b": {}}.
func (ic *IndexColumns) UnmarshalJSON(data []byte) error {
	var names []string
	if err := json.Unmarshal(data, &names); err == nil {
		*ic = nil
		for _, n := range names {
			*ic = append(*ic, IndexColumn{Name: n})
		}
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(data, &list); err == nil {
		*ic = nil
		for i, raw := range list {
			var s indexColumnSettings
			if err := strictUnmarshal(raw, &s); err != nil {
				return fmt.Errorf("columns[%d]: %w", i, err)
			}
			if strings.TrimSpace(s.Column) == "" {
				return fmt.Errorf("columns[%d]: column is required", i)
			}
			c, err := s.column(s.Column)
			if err != nil {
				return fmt.Errorf("columns[%d]: %w", i, err)
			}
			*ic = append(*ic, c)
		}
		return nil
	}
	var m map[string]indexColumnSettings
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("columns must be a list of column names, a list of column settings or an object of column settings")
	}
	// An object has no order in JSON decoding; keep the file's order.
	order, err := objectKeyOrder(data)
	if err != nil {
		return err
	}
	*ic = nil
	for _, n := range order {
		c, err := m[n].column(n)
		if err != nil {
			return fmt.Errorf("columns.%s: %w", n, err)
		}
		*ic = append(*ic, c)
	}
	return nil
}

func objectKeyOrder(data []byte) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

var indexMethods = map[string]bool{"": true, "btree": true, "hash": true, "gist": true, "spgist": true, "gin": true, "brin": true}

// Kind implements Operation.
func (o *OpCreateIndex) Kind() string { return "create_index" }

func (o *OpCreateIndex) checkFields() error {
	if err := required("name", o.Name); err != nil {
		return err
	}
	if err := required("table", o.Table); err != nil {
		return err
	}
	if len(o.Columns) == 0 {
		return fieldErr("columns", "an index needs at least one column")
	}
	if !indexMethods[strings.ToLower(o.Method)] {
		methods := []string{}
		for k := range indexMethods {
			if k != "" {
				methods = append(methods, k)
			}
		}
		sort.Strings(methods)
		return fieldErr("method", "must be one of %s", strings.Join(methods, ", "))
	}
	for i, c := range o.Columns {
		if s := strings.ToUpper(c.Sort); s != "" && s != "ASC" && s != "DESC" {
			return fieldErr(fmt.Sprintf("columns[%d].sort", i), "must be ASC or DESC")
		}
		if n := strings.ToUpper(c.Nulls); n != "" && n != "FIRST" && n != "LAST" {
			return fieldErr(fmt.Sprintf("columns[%d].nulls", i), "must be FIRST or LAST")
		}
		if c.Opclass != "" && !nameRE().MatchString(c.Opclass) {
			return fieldErr(fmt.Sprintf("columns[%d].opclass", i), "%q is not an operator class name", c.Opclass)
		}
		if len(c.OpclassParams) > 0 && c.Opclass == "" {
			return fieldErr(fmt.Sprintf("columns[%d].opclass.params", i), "parameters need an operator class name")
		}
		for _, p := range c.OpclassParams {
			if err := checkExpr(p); err != nil {
				return fieldErr(fmt.Sprintf("columns[%d].opclass.params", i), "%q: %v", p, err)
			}
		}
	}
	if o.StorageParameters != "" {
		if err := checkStorageParameters(o.StorageParameters); err != nil {
			return fieldErr("storage_parameters", "%v", err)
		}
	}
	return nil
}

func (o *OpCreateIndex) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	for i, c := range o.Columns {
		if _, err := v.column("columns", t, c.Name); err != nil {
			return err
		}
		for _, chk := range []struct{ field, value, query string }{
			{"collate", c.Collate, "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = $1)"},
			{"opclass", c.Opclass, "SELECT EXISTS (SELECT 1 FROM pg_opclass WHERE opcname = $1)"},
		} {
			if chk.value == "" {
				continue
			}
			var ok bool
			if err := v.tx.QueryRow(ctx, chk.query, chk.value).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fieldErr(fmt.Sprintf("columns[%d].%s", i, chk.field), "%s %q does not exist", chk.field, chk.value)
			}
		}
	}
	for _, other := range v.after.Tables {
		if other.hasIndex(o.Name) {
			return fieldErr("name", "an index named %q already exists on table %q", o.Name, other.Name)
		}
	}
	// Indexes share their namespace with tables, views and sequences: CREATE INDEX IF NOT
	// EXISTS would quietly do nothing over any of them.
	var taken bool
	if err := v.tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qi(v.schema, o.Name)).Scan(&taken); err != nil {
		return err
	}
	if taken {
		return fieldErr("name", "a table, view, sequence or index named %q already exists in schema %q", o.Name, v.schema)
	}
	if o.Predicate != "" {
		if err := v.checkExpr(ctx, "predicate", o.Predicate, t, "boolean"); err != nil {
			return err
		}
	}
	t.Indexes = append(t.Indexes, o.Name)
	return nil
}

// sql is the CREATE INDEX statement, with the new version's column names mapped to the
// physical columns.
func (o *OpCreateIndex) sql(r *run) string {
	t := r.opAfter.Table(o.Table) // the names as this operation sees them: a later rename must not matter
	var cols []string
	for _, c := range o.Columns {
		s := qi(t.Column(c.Name).Physical)
		if c.Collate != "" {
			s += " COLLATE " + qi(c.Collate)
		}
		if c.Opclass != "" {
			s += " " + qi(c.Opclass)
			if len(c.OpclassParams) > 0 {
				s += " (" + strings.Join(c.OpclassParams, ", ") + ")"
			}
		}
		if c.Sort != "" {
			s += " " + strings.ToUpper(c.Sort)
		}
		if c.Nulls != "" {
			s += " NULLS " + strings.ToUpper(c.Nulls)
		}
		cols = append(cols, s)
	}
	q := "CREATE "
	if o.Unique {
		q += "UNIQUE "
	}
	q += "INDEX CONCURRENTLY IF NOT EXISTS " + qi(o.Name) + " ON " + r.table(t.Physical)
	if o.Method != "" {
		q += " USING " + strings.ToLower(o.Method)
	}
	q += " (" + strings.Join(cols, ", ") + ")"
	if o.StorageParameters != "" {
		q += " WITH (" + o.StorageParameters + ")"
	}
	if o.Predicate != "" {
		// The predicate uses the names this operation sees; the table has the physical ones.
		renames := map[string]string{}
		for _, c := range t.Columns {
			if c.Name != c.Physical {
				renames[c.Name] = c.Physical
			}
		}
		q += " WHERE " + renameIdents(o.Predicate, renames)
	}
	return q
}

func (o *OpCreateIndex) start(ctx context.Context, r *run) error {
	return r.m.execConcurrently(ctx, r.schema, o.Name, o.sql(r))
}

func (o *OpCreateIndex) complete(ctx context.Context, r *run) error { return nil }

func (o *OpCreateIndex) rollback(ctx context.Context, r *run) error {
	return r.m.execConcurrently(ctx, r.schema, o.Name, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.Name))
}

// OpDropIndex drops an index CONCURRENTLY at complete: the old version may rely on it
// until then.
type OpDropIndex struct {
	Name string `json:"name"`
}

// Kind implements Operation.
func (o *OpDropIndex) Kind() string { return "drop_index" }

func (o *OpDropIndex) checkFields() error { return required("name", o.Name) }

func (o *OpDropIndex) validate(ctx context.Context, v *validator) error {
	for _, t := range v.after.Tables {
		for i, idx := range t.Indexes {
			if idx == o.Name {
				t.Indexes = append(t.Indexes[:i:i], t.Indexes[i+1:]...)
				return nil
			}
		}
	}
	return fieldErr("name", "index %q does not exist in schema %q", o.Name, v.schema)
}

// An index made earlier in the same migration is dropped at start: the old version
// never saw it, and a later create_index of the same name needs the name free. Any other
// is dropped at complete.
func (o *OpDropIndex) start(ctx context.Context, r *run) error {
	if o.madeInMigration(r) {
		return r.m.execConcurrently(ctx, r.schema, o.Name, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.Name))
	}
	return nil
}

func (o *OpDropIndex) complete(ctx context.Context, r *run) error {
	if o.madeInMigration(r) {
		return nil // dropped at start; the name may be a later create_index's now
	}
	return r.m.execConcurrently(ctx, r.schema, o.Name, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.Name))
}

// madeInMigration reports whether the index did not exist when the migration began.
func (o *OpDropIndex) madeInMigration(r *run) bool {
	for _, t := range r.before.Tables {
		if t.hasIndex(o.Name) {
			return false
		}
	}
	return true
}

func (o *OpDropIndex) rollback(ctx context.Context, r *run) error { return nil }
