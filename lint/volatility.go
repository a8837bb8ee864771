package lint

import (
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// volatility is a function's or expression's volatility class.
type volatility int

const (
	volImmutable volatility = iota
	volStable
	volUnknown // a function we know nothing about
	volVolatile
)

// String returns the pg_proc name of the volatility class.
func (v volatility) String() string {
	switch v {
	case volImmutable:
		return "immutable"
	case volStable:
		return "stable"
	case volVolatile:
		return "volatile"
	}
	return "unknown"
}

// volatileBuiltins are the built-in and common extension functions marked VOLATILE in
// pg_proc that people put in column defaults.
var volatileBuiltins = map[string]bool{
	"random": true, "random_normal": true, "setseed": true,
	"gen_random_uuid": true, "uuidv4": true, "uuidv7": true,
	"uuid_generate_v1": true, "uuid_generate_v1mc": true, "uuid_generate_v4": true,
	"gen_random_bytes": true, "gen_salt": true,
	"clock_timestamp": true, "timeofday": true,
	"nextval": true, "currval": true, "lastval": true, "setval": true,
	"txid_current": true, "pg_current_xact_id": true, "txid_current_if_assigned": true,
	"pg_sleep": true, "dblink": true, "lo_import": true, "pg_read_file": true,
}

// nonVolatileBuiltins are common built-in functions that are IMMUTABLE or STABLE.
var nonVolatileBuiltins = map[string]volatility{
	"now": volStable, "transaction_timestamp": volStable, "statement_timestamp": volStable,
	"current_date": volStable, "current_time": volStable, "current_timestamp": volStable,
	"localtime": volStable, "localtimestamp": volStable, "current_setting": volStable,
	"current_user": volStable, "session_user": volStable, "current_schema": volStable,
	"current_database": volStable, "pg_backend_pid": volStable, "version": volStable,
	"to_char": volStable, "to_date": volStable, "to_timestamp": volStable, "to_number": volStable,
	"date_trunc": volStable, "date_part": volStable, "extract": volImmutable, "age": volStable,
	"make_date": volImmutable, "make_time": volImmutable, "make_timestamp": volImmutable,
	"make_timestamptz": volStable, "make_interval": volImmutable,
	"lower": volImmutable, "upper": volImmutable, "length": volImmutable, "btrim": volImmutable,
	"trim": volImmutable, "ltrim": volImmutable, "rtrim": volImmutable, "substr": volImmutable,
	"substring": volImmutable, "replace": volImmutable, "concat": volStable, "concat_ws": volStable,
	"format": volStable, "md5": volImmutable, "sha256": volImmutable, "encode": volImmutable,
	"decode": volImmutable, "lpad": volImmutable, "rpad": volImmutable, "repeat": volImmutable,
	"abs": volImmutable, "round": volImmutable, "floor": volImmutable, "ceil": volImmutable,
	"power": volImmutable, "mod": volImmutable, "greatest": volImmutable, "least": volImmutable,
	"coalesce": volImmutable, "nullif": volImmutable,
	"jsonb_build_object": volStable, "json_build_object": volStable, "jsonb_build_array": volStable,
	"json_build_array": volStable, "to_jsonb": volStable, "to_json": volStable,
	"array_fill": volImmutable, "string_to_array": volImmutable, "array_to_string": volStable,
	"timezone": volImmutable, "int4range": volImmutable, "int8range": volImmutable,
	"tstzrange": volImmutable, "tsrange": volImmutable, "daterange": volImmutable,
	"numrange": volImmutable, "point": volImmutable, "inet": volImmutable,
	"to_tsvector": volImmutable, "uuid_nil": volImmutable, "uuid_ns_url": volImmutable,
	"uuid_generate_v3": volImmutable, "uuid_generate_v5": volImmutable,
}

// functionVolatility reads the VOLATILE/STABLE/IMMUTABLE option of a CREATE FUNCTION.
// Functions are VOLATILE unless they say otherwise.
func functionVolatility(opts []*pgtree.Node) volatility {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.Defname != "volatility" {
			continue
		}
		switch strings.ToLower(d.Arg.GetString_().GetSval()) {
		case "immutable":
			return volImmutable
		case "stable":
			return volStable
		}
		return volVolatile
	}
	return volVolatile
}

// exprVolatility returns the volatility of a default expression and, when it is volatile
// or unknown, the function that makes it so. Casts, arrays, operators, CASE and the like
// take the volatility of their parts.
func (c *Catalog) exprVolatility(n *pgtree.Node) (volatility, string) {
	worst, culprit := volImmutable, ""
	pgtree.Walk(n, func(x *pgtree.Node) bool {
		var v volatility
		var name string
		switch {
		case x.GetFuncCall() != nil:
			names := nameList(x.GetFuncCall().Funcname)
			if len(names) == 0 {
				return true
			}
			name = strings.ToLower(names[len(names)-1])
			v = c.functionVolatility(name)
		case x.GetSqlvalueFunction() != nil:
			v = volStable
		case x.GetSubLink() != nil:
			v, name = volUnknown, "a subquery"
		default:
			return true
		}
		if v > worst {
			worst, culprit = v, name
			if x.GetFuncCall() != nil {
				culprit += "()"
			}
		}
		return true
	})
	return worst, culprit
}

func (c *Catalog) functionVolatility(name string) volatility {
	if v, ok := c.functions[name]; ok {
		return v
	}
	if volatileBuiltins[name] {
		return volVolatile
	}
	if v, ok := nonVolatileBuiltins[name]; ok {
		return v
	}
	return volUnknown
}
