package lint

import (
	"fmt"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// colType is a column type in canonical form: int4 rather than integer, varchar rather
// than character varying.
type colType struct {
	name  string // canonical name; "" when unknown
	mods  []int  // type modifiers, e.g. length or precision and scale
	array bool
}

func (t colType) known() bool { return t.name != "" }

// String renders the type as SQL.
func (t colType) String() string {
	if t.name == "" {
		return "unknown"
	}
	var b strings.Builder
	b.WriteString(sqlTypeName(t.name))
	if len(t.mods) > 0 {
		b.WriteByte('(')
		for i, m := range t.mods {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", m)
		}
		b.WriteByte(')')
	}
	if t.array {
		b.WriteString("[]")
	}
	return b.String()
}

func (t colType) equal(o colType) bool {
	if t.name != o.name || t.array != o.array || len(t.mods) != len(o.mods) {
		return false
	}
	for i := range t.mods {
		if t.mods[i] != o.mods[i] {
			return false
		}
	}
	return true
}

var typeAliases = map[string]string{
	"int": "int4", "integer": "int4", "int4": "int4", "serial": "int4", "serial4": "int4",
	"smallint": "int2", "int2": "int2", "smallserial": "int2", "serial2": "int2",
	"bigint": "int8", "int8": "int8", "bigserial": "int8", "serial8": "int8",
	"real": "float4", "float4": "float4", "float8": "float8", "double precision": "float8",
	"decimal": "numeric", "numeric": "numeric",
	"varchar": "varchar", "character varying": "varchar",
	"char": "bpchar", "character": "bpchar", "bpchar": "bpchar",
	"bool": "bool", "boolean": "bool",
	"timestamp": "timestamp", "timestamp without time zone": "timestamp",
	"timestamptz": "timestamptz", "timestamp with time zone": "timestamptz",
	"time": "time", "time without time zone": "time",
	"timetz": "timetz", "time with time zone": "timetz",
	"varbit": "varbit", "bit varying": "varbit",
}

// serialTypes are the pseudo-types that add a sequence and a nextval() default.
var serialTypes = map[string]bool{
	"serial": true, "serial4": true, "bigserial": true, "serial8": true, "smallserial": true, "serial2": true,
}

// typeOf converts a parsed type name into canonical form.
func typeOf(tn *pgtree.TypeName) colType {
	if tn == nil {
		return colType{}
	}
	names := nameList(tn.Names)
	if len(names) == 0 {
		return colType{}
	}
	name := strings.ToLower(names[len(names)-1])
	if canon, ok := typeAliases[name]; ok {
		name = canon
	}
	t := colType{name: name, array: len(tn.ArrayBounds) > 0}
	for _, m := range tn.Typmods {
		if c := m.GetAConst(); c != nil && c.GetIval() != nil {
			t.mods = append(t.mods, int(c.GetIval().Ival))
		} else {
			t.mods = append(t.mods, -1)
		}
	}
	switch {
	case name == "float" && len(t.mods) == 1:
		if t.mods[0] <= 24 {
			t.name = "float4"
		} else {
			t.name = "float8"
		}
		t.mods = nil
	case name == "float":
		t.name, t.mods = "float8", nil
	case name == "bpchar" && len(t.mods) == 0 && len(names) == 1:
		t.mods = []int{1} // char means char(1)
	case name == "numeric" && len(t.mods) == 1:
		t.mods = append(t.mods, 0) // numeric(p) means numeric(p,0)
	case name == "interval":
		t.mods = nil // field restrictions and precision: not modelled
	}
	return t
}

func isSerial(tn *pgtree.TypeName) bool {
	names := nameList(tn.GetNames())
	return len(names) > 0 && serialTypes[strings.ToLower(names[len(names)-1])]
}

// binaryCoercible reports whether ALTER COLUMN ... TYPE from old to new keeps the stored
// data as is, so that PostgreSQL neither rewrites the table nor rebuilds its indexes.
func binaryCoercible(old, new colType) bool {
	if old.equal(new) {
		return true
	}
	if old.array != new.array {
		return false
	}
	switch {
	case old.name == "varchar" && new.name == "text",
		old.name == "text" && new.name == "varchar" && len(new.mods) == 0,
		old.name == "cidr" && new.name == "inet":
		return true
	case old.name != new.name:
		return false
	}
	switch old.name {
	case "varchar", "varbit", "timestamp", "timestamptz", "time", "timetz":
		if len(new.mods) == 0 {
			return true
		}
		return len(old.mods) == 1 && len(new.mods) == 1 && new.mods[0] >= old.mods[0]
	case "numeric":
		if len(new.mods) == 0 {
			return true
		}
		return len(old.mods) == 2 && len(new.mods) == 2 && new.mods[1] == old.mods[1] && new.mods[0] >= old.mods[0]
	}
	return false
}

// integerRank orders the integer types by width.
var integerRank = map[string]int{"int2": 1, "int4": 2, "int8": 3}

// compatibleWidening reports whether values of old keep their meaning and fit in new, so an
// application written for old reads and writes new without change.
func compatibleWidening(old, new colType) bool {
	if binaryCoercible(old, new) {
		return true
	}
	if old.array != new.array {
		return false
	}
	if a, b := integerRank[old.name], integerRank[new.name]; a > 0 && b > 0 {
		return b >= a
	}
	switch {
	case integerRank[old.name] > 0 && new.name == "numeric" && len(new.mods) == 0:
		return true
	case old.name == "float4" && new.name == "float8":
		return true
	case old.name == "bpchar" && (new.name == "text" || new.name == "varchar" && (len(new.mods) == 0 || len(old.mods) == 1 && new.mods[0] >= old.mods[0])):
		return false // trailing blanks are dropped: the values change
	}
	return false
}

// sqlNames are the SQL spellings of internal type names.
var sqlNames = map[string]string{
	"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
	"float8": "double precision", "bool": "boolean", "bpchar": "char",
}

// sqlTypeName returns the SQL spelling of an internal type name (int4 -> integer).
func sqlTypeName(name string) string {
	if s, ok := sqlNames[name]; ok {
		return s
	}
	return name
}
