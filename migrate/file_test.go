package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// A valid first operation, so that the operation at fault in most cases is operation 1.
const okOp = `{"add_column": {"table": "items", "column": {"name": "note", "type": "text", "nullable": true}}}`

func TestMalformedFiles(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL)`)
	e.exec(`INSERT INTO items (name, qty) SELECT 'n' || i, i FROM generate_series(1, 10) i`)
	beforeCols := e.columns("public", "items")
	dir := t.TempDir()

	for _, tc := range []struct {
		name string
		file string // the file name: its extension says JSON or YAML
		doc  string
		op   int    // the operation at fault, or -1
		want string // what the message must name besides the file and operation: the field
	}{
		{"invalid JSON", "02_bad.json", `{"name": "02_bad", "operations": [` + okOp + `,]}`, -1, ""},
		{"invalid YAML", "02_bad.yaml", "operations:\n  - add_column:\n      table: items\n     column: [name\n", -1, ""},
		{"not a migration", "02_bad.json", `["add_column"]`, -1, ""},
		{"no operations", "02_bad.json", `{"name": "02_bad"}`, -1, "operations"},
		{"unknown top-level field", "02_bad.json", `{"name": "02_bad", "operation": []}`, -1, "operation"},
		{"bad name", "02_bad.json", `{"name": "02 bad; drop", "operations": [` + okOp + `]}`, -1, "name"},
		{"operation not an object", "02_bad.json", `{"operations": [` + okOp + `, "add_column"]}`, 1, ""},
		{"unknown operation kind", "02_bad.json", `{"operations": [` + okOp + `, {"add_colum": {"table": "items"}}]}`, 1, "add_colum"},
		{"unknown field", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "colunm": {"name": "x", "type": "int"}}}]}`, 1, "colunm"},
		{"unknown nested field", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int", "nulable": true}}}]}`, 1, "nulable"},
		{"wrong field type", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int", "nullable": "yes"}}}]}`, 1, "column.nullable"},
		{"missing table", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"column": {"name": "x", "type": "int", "nullable": true}}}]}`, 1, "table"},
		{"missing column type", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "nullable": true}}}]}`, 1, "column.type"},
		{"missing rename target", "02_bad.yaml", "operations:\n  - rename_column: {table: items, from: name}\n", 0, "to"},
		{"unknown table", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "itemz", "column": {"name": "x", "type": "int", "nullable": true}}}]}`, 1, "table"},
		{"unknown column", "02_bad.json", `{"operations": [` + okOp + `, {"rename_column": {"table": "items", "from": "nam", "to": "title"}}]}`, 1, "from"},
		{"existing column", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "qty", "type": "int", "nullable": true}}}]}`, 1, "column.name"},
		{"nonexistent type", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "nosuchtype", "nullable": true}}}]}`, 1, "column.type"},
		{"type that does not parse", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int) NOT NULL, y int CHECK (", "nullable": true}}}]}`, 1, "column.type"},
		{"up that does not parse", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "qty * * 2", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
		{"up naming an unknown column", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "qtty * 2", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
		{"up of a type that does not convert", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "now()", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
		{"up injecting a statement", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "1); DROP TABLE items; --", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
		{"up injecting a clause", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "1) FROM items; DELETE FROM items WHERE (true", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
		{"up hiding a statement in an escape string", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "E'\\'' || qty); DELETE FROM items; SELECT (E'\\''", "column": {"name": "x", "type": "text"}}}]}`, 1, "up"},
		{"up hiding a statement in a dollar string", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "up": "$a$ $a$ || qty); DELETE FROM items; SELECT ($a$ $a$", "column": {"name": "x", "type": "text"}}}]}`, 1, "up"},
		{"default that does not parse", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int", "default": "1 +"}}}]}`, 1, "column.default"},
		{"check that does not parse", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int", "nullable": true, "check": {"name": "x_pos", "constraint": "x >"}}}}]}`, 1, "column.check.constraint"},
		{"NOT NULL without up or default", "02_bad.json", `{"operations": [` + okOp + `, {"add_column": {"table": "items", "column": {"name": "x", "type": "int"}}}]}`, 1, "up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			t.Cleanup(func() {
				// Should a case apply something, undo it so the next cases start clean.
				if ok, _ := e.m.st.initialized(ctx, e.m.conn); !ok {
					return
				}
				if err := e.m.Rollback(ctx); err != nil && !errors.Is(err, ErrNoActiveMigration) {
					t.Errorf("rollback: %v", err)
				}
			})
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			mig, err := ReadFile(path)
			if err == nil {
				// tandem validate finds what start finds.
				verr := e.m.Validate(ctx, mig)
				err = e.m.Start(ctx, mig)
				if verr == nil || err == nil || verr.Error() != err.Error() {
					t.Errorf("validate says %v, start says %v", verr, err)
				}
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v (%T), want an *InputError", err, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("message does not name the file %s: %s", path, msg)
			}
			if ie.Op != tc.op {
				t.Errorf("operation index %d, want %d: %s", ie.Op, tc.op, msg)
			}
			if tc.op >= 0 && !strings.Contains(msg, "operation "+strconv.Itoa(tc.op)) {
				t.Errorf("message does not name operation %d: %s", tc.op, msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message does not name %q: %s", tc.want, msg)
			}
			if strings.Contains(msg, "struct {") || strings.Contains(msg, "json.RawMessage") {
				t.Errorf("message shows Go types: %s", msg)
			}
			t.Log(msg)

			// Nothing was applied.
			if cols := e.columns("public", "items"); cols != beforeCols {
				t.Errorf("items changed: %s, want %s", cols, beforeCols)
			}
			if n := queryString(t, e.db, "SELECT count(*)::text FROM items"); n != "10" {
				t.Errorf("items has %s rows, want 10", n)
			}
			if s := queryString(t, e.db, "SELECT to_regnamespace('tandem')::text"); s != "<null>" {
				t.Errorf("the state schema was created")
				if n := queryString(t, e.db, "SELECT count(*)::text FROM tandem.migrations"); n != "0" {
					t.Errorf("%s migrations recorded", n)
				}
			}
			e.assertNoLeftovers()
		})
	}
}

// TestYAMLParsesLikeJSON checks that a YAML migration means exactly what the same JSON
// migration means.
func TestYAMLParsesLikeJSON(t *testing.T) {
	jsonDoc := `{"name": "02_price", "operations": [
		{"add_column": {"table": "items", "up": "qty * 1.25",
			"column": {"name": "price", "type": "numeric(10, 2)", "default": "0", "check": {"name": "price_pos", "constraint": "price >= 0"}}}},
		{"rename_column": {"table": "items", "from": "name", "to": "title"}},
		{"create_index": {"name": "items_qty", "table": "items", "columns": ["qty"]}},
		{"sql": {"up": "SELECT 1", "onComplete": true}}]}`
	yamlDoc := `name: 02_price
operations:
  - add_column:
      table: items
      up: qty * 1.25
      column:
        name: price
        type: numeric(10, 2)
        default: "0"
        check:
          name: price_pos
          constraint: price >= 0
  - rename_column: {table: items, from: name, to: title}
  - create_index:
      name: items_qty
      table: items
      columns: [qty]
  - sql:
      up: SELECT 1
      onComplete: true
`
	j, err := Parse("02_price.json", "02_price", []byte(jsonDoc))
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	y, err := Parse("02_price.yaml", "02_price", []byte(yamlDoc))
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	if !reflect.DeepEqual(j.Operations, y.Operations) {
		t.Errorf("operations differ:\nJSON %#v\nYAML %#v", j.Operations, y.Operations)
	}
	if !sameJSON(j.Raw, y.Raw) {
		t.Errorf("stored definitions differ:\nJSON %s\nYAML %s", j.Raw, y.Raw)
	}
	if j.Name != y.Name {
		t.Errorf("names differ: %q, %q", j.Name, y.Name)
	}
	// A byte-order mark at the start, which some editors write, is not the document's.
	for file, doc := range map[string]string{"02_price.json": jsonDoc, "02_price.yaml": yamlDoc} {
		b, err := Parse(file, "02_price", []byte("\ufeff"+doc))
		if err != nil {
			t.Errorf("%s with a byte-order mark: %v", file, err)
		} else if !sameJSON(j.Raw, b.Raw) {
			t.Errorf("%s with a byte-order mark: stored %s", file, b.Raw)
		}
	}
	// A YAML scalar that YAML reads as a number or a boolean is not a string field.
	if _, err := Parse("bad.yaml", "bad", []byte("operations:\n  - rename_column: {table: items, from: name, to: 123}\n")); err == nil {
		t.Errorf("a number for a name was accepted")
	}
}

// TestCheckExprRejectsInjection checks the lexical guard on expressions on its own: an
// expression must not be able to end the statement it is embedded in, however it quotes.
func TestCheckExprRejectsInjection(t *testing.T) {
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{"qty * 1.25", true},
		{"coalesce(note, 'it''s; fine -- really')", true},
		{`"we""ird" + 1`, true},
		{`E'a\'b' || note`, true},
		{`e'\\' || note`, true},
		{"$$ ; $$ || note", true},
		{"$q$ ) $q$ || note", true},
		{"1); DROP TABLE items; --", false},
		{"1) FROM items; DELETE FROM items WHERE (true", false},
		{"1 /* ) */", false},
		{"(1", false},
		{"'unterminated", false},
		{`E'\'' || qty); DELETE FROM items; SELECT (E'\''`, false},
		{`E'\\\'' || qty); DELETE FROM items; SELECT (E'\''`, false},
		{`e'\''); DELETE FROM items; SELECT (''`, false},
		{`U&'\0027'); DELETE FROM items; SELECT ('`, false},
		// '$' inside a name is part of it, not the start of a dollar quote.
		{`c$a$ + 1`, true},
		{`c$a$ + 1) FROM items; DELETE FROM items; SELECT ($a$`, false},
		{"1), (2", false},
		{"1 +", false},
		// Valid in parentheses, but not on its own: refused (wrap it in parentheses).
		{"(SELECT 1) UNION (SELECT 2)", false},
		{"((SELECT 1) UNION (SELECT 2))", true},
	} {
		err := checkExpr(tc.expr)
		if (err == nil) != tc.ok {
			t.Errorf("checkExpr(%s) = %v, want ok %v", tc.expr, err, tc.ok)
		}
	}
}

// with returns a copy of e that reports to t, for subtests sharing one database.
func (e *testEnv) with(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}
