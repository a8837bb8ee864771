package migrate

import (
	"reflect"
	"strings"
	"unicode"
)

// pgroll's documentation and examples write many up and down expressions as a SELECT
// without a FROM, such as "SELECT CASE WHEN x IS NULL THEN 0 ELSE x END": the value of
// that query. PL/pgSQL does not take "col := SELECT ..." as an assignment, but it takes
// the same query in parentheses, a scalar subquery with the meaning pgroll gives it. So
// Parse puts such expressions in parentheses; the guard then checks the result as any
// other expression.

// valueExprFields are the JSON fields whose strings (or map values) are value
// expressions that may be written as a SELECT.
var valueExprFields = map[string]bool{"up": true, "down": true}

// parenthesizeSelects rewrites, in place, every up and down expression of op that is a
// SELECT into a parenthesized one.
func parenthesizeSelects(op Operation) {
	walkFields(reflect.ValueOf(op), "", func(tag, _ string, fv reflect.Value) bool {
		switch {
		case !valueExprFields[tag]:
			return true
		case fv.Kind() == reflect.String && fv.CanSet():
			fv.SetString(parenthesizeSelect(fv.String()))
		case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.String:
			for _, k := range fv.MapKeys() {
				fv.SetMapIndex(k, reflect.ValueOf(parenthesizeSelect(fv.MapIndex(k).String())).Convert(fv.Type().Elem()))
			}
		}
		return false
	})
}

// parenthesizeSelect returns expr in parentheses when it begins with the keyword
// SELECT, and expr unchanged otherwise.
func parenthesizeSelect(expr string) string {
	s := strings.TrimSpace(expr)
	if len(s) <= len("select") || !strings.EqualFold(s[:len("select")], "select") {
		return expr
	}
	if next := rune(s[len("select")]); !unicode.IsSpace(next) && next != '(' {
		return expr // a name such as selected_at
	}
	return "(" + s + ")"
}
