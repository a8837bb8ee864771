package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Migration is one parsed migration file.
type Migration struct {
	// Name is the migration's name and version: its version schema is
	// VersionSchema(schema, Name). It defaults to the file name without extension.
	Name string `json:"name"`
	// VersionSchema is the name of the version schema, when the file names it
	// (version_schema); "" for the default, VersionSchema(schema, Name).
	VersionSchema string `json:"version_schema,omitempty"`
	// Operations are applied in order.
	Operations []Operation `json:"-"`
	// File is the path the migration was read from, for messages; empty when parsed
	// from memory.
	File string `json:"-"`
	// Raw is the migration as JSON, as stored in the state schema.
	Raw json.RawMessage `json:"-"`
	// Includes names the migrations a combined migration (see Combine) is made of, in
	// order; empty for a migration read from one file.
	Includes []string `json:"-"`
	// Needs are the migrations of other streams this one needs applied first (the
	// file's "needs" list, see Need); Tandem's addition to pgroll's format.
	Needs []Need `json:"-"`
	// origins[i] says where operation i came from, for a migration combined from
	// several files; empty otherwise.
	origins []origin
}

// VersionSchemaIn is the version schema the migration gets when applied to schema: the
// one it names (version_schema), or VersionSchema(schema, Name).
func (m *Migration) VersionSchemaIn(schema string) string {
	if m.VersionSchema != "" {
		return m.VersionSchema
	}
	return VersionSchema(schema, m.Name)
}

// names returns the names of the migrations m stands for.
func (m *Migration) names() []string {
	if len(m.Includes) > 0 {
		return m.Includes
	}
	return []string{m.Name}
}

// Combine makes one migration of several, to apply in one expand/contract step: its
// operations are theirs in order, its name (and so its version schema) is the last one's.
// Each operation's expressions keep the names of the schema as it stood after the
// migrations before it.
func Combine(migs []*Migration) *Migration {
	if len(migs) == 1 {
		return migs[0]
	}
	last := migs[len(migs)-1]
	c := &Migration{Name: last.Name, File: last.File, VersionSchema: last.VersionSchema}
	var raws []json.RawMessage
	for _, m := range migs {
		c.Includes = append(c.Includes, m.names()...)
		var doc struct {
			Operations []json.RawMessage `json:"operations"`
		}
		_ = json.Unmarshal(m.Raw, &doc) // Raw was written by Parse
		raws = append(raws, doc.Operations...)
		for i, op := range m.Operations {
			c.Operations = append(c.Operations, op)
			c.origins = append(c.origins, origin{file: m.File, index: i})
		}
	}
	c.Raw, _ = json.Marshal(rawMigration{c.Name, c.VersionSchema, raws})
	return c
}

// rawMigration is a migration's canonical JSON, as recorded.
type rawMigration struct {
	Name          string            `json:"name"`
	VersionSchema string            `json:"version_schema,omitempty"`
	Operations    []json.RawMessage `json:"operations"`
}

type origin struct {
	file  string
	index int
}

// InputError is an error in a migration file or in what it asks of the database: a
// malformed file, an unknown table or column, an expression that does not parse. Nothing
// has been applied when Start returns one. The CLI exits with 2 for it.
type InputError struct {
	File  string // the migration file, if known
	Op    int    // index of the operation in the file, or -1
	Kind  string // the operation's kind, e.g. "add_column"
	Field string // the field at fault, e.g. "column.type"
	Err   error
}

func (e *InputError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Op >= 0 {
		fmt.Fprintf(&b, "operation %d", e.Op)
		if e.Kind != "" {
			fmt.Fprintf(&b, " (%s)", e.Kind)
		}
		if e.Field != "" {
			fmt.Fprintf(&b, ", field %q", e.Field)
		}
		b.WriteString(": ")
	} else if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }

// fieldErr builds an InputError for one field of an operation; File and Op are filled in by
// the caller that knows them.
func fieldErr(field, format string, args ...any) error {
	return &InputError{Op: -1, Field: field, Err: fmt.Errorf(format, args...)}
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`) })

// ReadFile reads and parses a migration file (.json, .yaml or .yml).
func ReadFile(path string) (*Migration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{File: path, Op: -1, Err: err}
	}
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	return Parse(path, name, data)
}

// ReadDir reads every migration file (.json, .yaml, .yml) in dir, ordered by file name.
func ReadDir(dir string) ([]*Migration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &InputError{File: dir, Op: -1, Err: err}
	}
	var names []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	var out []*Migration
	seen := map[string]string{}
	for _, n := range names {
		m, err := ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[m.Name]; ok {
			return nil, &InputError{File: m.File, Op: -1, Field: "name",
				Err: fmt.Errorf("migration name %q is also used by %s; names must be unique", m.Name, prev)}
		}
		seen[m.Name] = m.File
		out = append(out, m)
	}
	return out, nil
}

// Parse parses a migration from JSON or YAML. file is used in messages; defaultName is the
// name used when the document has none.
func Parse(file, defaultName string, data []byte) (*Migration, error) {
	ierr := func(op int, kind, field string, err error) error {
		return &InputError{File: file, Op: op, Kind: kind, Field: field, Err: err}
	}
	// Some editors begin a UTF-8 file with a byte-order mark; JSON's and YAML's
	// specifications let a reader ignore it, and encoding/json would not.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if strings.EqualFold(filepath.Ext(file), ".json") {
		// A .json file must be JSON: read as YAML, a superset, a mistake such as a
		// trailing comma would pass unnoticed.
		if err := jsonSyntax(data); err != nil {
			return nil, ierr(-1, "", "", err)
		}
	}
	jsonData, err := toJSON(data)
	if err != nil {
		return nil, ierr(-1, "", "", fmt.Errorf("not valid JSON or YAML: %w", err))
	}
	var doc struct {
		Name          *string           `json:"name"`
		VersionSchema string            `json:"version_schema"`
		Operations    []json.RawMessage `json:"operations"`
		Needs         []string          `json:"needs"`
	}
	if err := strictUnmarshal(jsonData, &doc); err != nil {
		return nil, ierr(-1, "", "", fmt.Errorf("not a migration document: %w", err))
	}
	m := &Migration{Name: defaultName, File: file}
	if doc.Name != nil && *doc.Name != "" {
		m.Name = *doc.Name
	}
	if !nameRE().MatchString(m.Name) || len(m.Name) > maxIdentifier {
		return nil, ierr(-1, "", "name", fmt.Errorf("migration name %q must be 1-%d characters of letters, digits, '_', '-' or '.'", m.Name, maxIdentifier))
	}
	if vs := doc.VersionSchema; vs != "" {
		if !nameRE().MatchString(vs) || len(vs) > maxIdentifier {
			return nil, ierr(-1, "", "version_schema", fmt.Errorf("%q must be 1-%d bytes of letters, digits, '_', '-' or '.'", vs, maxIdentifier))
		}
		m.VersionSchema = vs
	}
	for i, n := range doc.Needs {
		need, err := ParseNeed(n)
		if err != nil {
			return nil, ierr(-1, "", fmt.Sprintf("needs[%d]", i), err)
		}
		m.Needs = append(m.Needs, need)
	}
	if doc.Operations == nil {
		return nil, ierr(-1, "", "operations", errors.New("missing: a migration needs a list of operations"))
	}
	for i, raw := range doc.Operations {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(raw, &wrapper); err != nil || len(wrapper) != 1 {
			return nil, ierr(i, "", "", fmt.Errorf("an operation is an object with exactly one key naming its kind (e.g. {\"add_column\": {...}})"))
		}
		for kind, body := range wrapper {
			newOp, ok := operationKinds[kind]
			if !ok {
				return nil, ierr(i, kind, "", fmt.Errorf("unknown operation kind %q (known: %s)", kind, strings.Join(knownKinds(), ", ")))
			}
			op := newOp()
			if err := strictUnmarshal(body, op); err != nil {
				return nil, ierr(i, kind, "", err)
			}
			if _, raw := op.(*OpRawSQL); !raw { // its up and down are statements
				parenthesizeSelects(op)
			}
			if field, name := longIdentifier(op); field != "" {
				return nil, ierr(i, kind, field, fmt.Errorf("%q is %d bytes long; PostgreSQL names are at most %d bytes (it would cut the name silently)", name, len(name), maxIdentifier))
			}
			if err := op.checkFields(); err != nil {
				var ie *InputError
				if errors.As(err, &ie) {
					return nil, ierr(i, kind, ie.Field, ie.Err)
				}
				return nil, ierr(i, kind, "", err)
			}
			m.Operations = append(m.Operations, op)
		}
	}
	canon, err := json.Marshal(rawMigration{m.Name, m.VersionSchema, doc.Operations})
	if err != nil {
		return nil, err
	}
	m.Raw = canon
	return m, nil
}

// maxIdentifier is PostgreSQL's limit on the length of a name, in bytes (NAMEDATALEN-1).
const maxIdentifier = 63

// identifierFields are the JSON fields of the format that hold names of tables, columns,
// constraints, indexes and schemas.
var identifierFields = map[string]bool{"name": true, "table": true, "column": true, "from": true, "to": true,
	"columns": true, "include_columns": true, "on_delete_set_columns": true, "index": true, "collate": true}

// longIdentifier walks an operation and returns the first name longer than PostgreSQL
// allows, with its field path; "" when there is none.
func longIdentifier(op Operation) (field, name string) {
	walkFields(reflect.ValueOf(op), "", func(tag, path string, fv reflect.Value) bool {
		switch {
		case field != "":
		case fv.Kind() == reflect.String:
			if identifierFields[tag] && len(fv.String()) > maxIdentifier {
				field, name = path, fv.String()
			}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			for j := 0; identifierFields[tag] && j < fv.Len() && field == ""; j++ {
				if s := fv.Index(j).String(); len(s) > maxIdentifier {
					field, name = path, s
				}
			}
		default:
			return true
		}
		return false
	})
	return field, name
}

// walkFields calls visit for each field with a JSON name in the structs under v
// (through pointers, interfaces and slices), with its path in the document
// ("columns[2].name"); where visit returns true, it goes on into the field's value.
func walkFields(v reflect.Value, path string, visit func(tag, path string, fv reflect.Value) bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFields(v.Elem(), path, visit)
		}
	case reflect.Slice:
		for j := 0; j < v.Len(); j++ {
			walkFields(v.Index(j), fmt.Sprintf("%s[%d]", path, j), visit)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			p := tag
			if path != "" {
				p = path + "." + tag
			}
			if visit(tag, p, v.Field(i)) {
				walkFields(v.Field(i), p, visit)
			}
		}
	}
}

func knownKinds() []string {
	var ks []string
	for k := range operationKinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// jsonSyntax reports a JSON syntax error with its line and column.
func jsonSyntax(data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	before := data[:min(max(se.Offset, 0), int64(len(data)))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("not valid JSON: line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
}

// toJSON accepts JSON or YAML and returns JSON.
func toJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		if json.Valid(trimmed) {
			return trimmed, nil
		}
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	v, err := yamlToJSONValue(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func yamlToJSONValue(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		out := map[string]any{}
		for k, e := range t {
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = c
		}
		return out, nil
	case []any:
		for i, e := range t {
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	default:
		return v, nil
	}
}

// strictUnmarshal decodes JSON, rejecting unknown fields with a message naming them.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := "of JSON type " + te.Type.String()
			if k := te.Type.Kind(); k == reflect.Struct || k == reflect.Map || (k == reflect.Pointer && te.Type.Elem().Kind() == reflect.Struct) {
				want = "an object" // not the Go type's spelling
			} else if k == reflect.Slice && te.Type.Elem().Kind() != reflect.Uint8 {
				want = "a list"
			}
			return &InputError{Op: -1, Field: te.Field, Err: fmt.Errorf("must be %s, not %s", want, te.Value)}
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return &InputError{Op: -1, Field: strings.Trim(f, `"`), Err: errors.New("unknown field (check its spelling against pgroll's format)")}
		}
		return errors.New(strings.TrimPrefix(msg, "json: "))
	}
	return nil
}

// required reports a missing required string field.
func required(field, value string) error {
	if strings.TrimSpace(value) == "" {
		return fieldErr(field, "required")
	}
	return nil
}
