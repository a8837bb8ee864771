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

// IndexColumns are the key columns of an index: a list of names, or (as newer pgroll
// files write it) an object from name to its settings.
type IndexColumns []IndexColumn

// IndexColumn is one key column of an index.
type IndexColumn struct {
	Name    string `json:"name"`
	Sort    string `json:"sort,omitempty"`  // ASC or DESC
	Nulls   string `json:"nulls,omitempty"` // FIRST or LAST
	Opclass string `json:"opclass,omitempty"`
}

// UnmarshalJSON accepts ["a", "b"] and {"a": {"sort": "DESC"}, "b": {}}.
func (ic *IndexColumns) UnmarshalJSON(data []byte) error {
	var names []string
	if err := json.Unmarshal(data, &names); err == nil {
		*ic = nil
		for _, n := range names {
			*ic = append(*ic, IndexColumn{Name: n})
		}
		return nil
	}
	var m map[string]struct {
		Sort    string `json:"sort"`
		Nulls   string `json:"nulls"`
		Opclass any    `json:"opclass"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("columns must be a list of column names or an object of column settings")
	}
	// An object has no order in JSON decoding; keep the file's order.
	order, err := objectKeyOrder(data)
	if err != nil {
		return err
	}
	*ic = nil
	for _, n := range order {
		s := m[n]
		c := IndexColumn{Name: n, Sort: s.Sort, Nulls: s.Nulls}
		switch oc := s.Opclass.(type) {
		case string:
			c.Opclass = oc
		case map[string]any:
			if name, ok := oc["name"].(string); ok {
				c.Opclass = name
			}
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
		if c.Opclass != "" && !nameRE.MatchString(c.Opclass) {
			return fieldErr(fmt.Sprintf("columns[%d].opclass", i), "%q is not an operator class name", c.Opclass)
		}
	}
	if o.StorageParameters != "" {
		if err := checkExpr(o.StorageParameters); err != nil {
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
	for _, c := range o.Columns {
		if _, err := v.column("columns", t, c.Name); err != nil {
			return err
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
		if c.Opclass != "" {
			s += " " + qi(c.Opclass)
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

func (o *OpDropIndex) start(ctx context.Context, r *run) error { return nil }

func (o *OpDropIndex) complete(ctx context.Context, r *run) error {
	return r.m.execConcurrently(ctx, r.schema, o.Name, "DROP INDEX CONCURRENTLY IF EXISTS "+qi(r.schema, o.Name))
}

func (o *OpDropIndex) rollback(ctx context.Context, r *run) error { return nil }
