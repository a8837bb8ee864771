package migrate

import (
	"slices"
	"testing"
)

func TestRowExpr(t *testing.T) {
	shape := &Table{Name: "items", Physical: "items", Columns: []*Column{
		{Name: "qty", Physical: "qty"},
		{Name: "amount", Physical: "_tandem_new_amount"},
		{Name: "Mixed Case", Physical: "mc"},
		{Name: "new", Physical: "new"},
	}}
	for _, tc := range []struct {
		name, expr string
		vars       map[string]string
		want       string
		reads      []string
	}{
		{"plain", "qty * 1.25", nil, "new.qty * 1.25", []string{"qty"}},
		{"renamed column", "amount::bigint + qty", nil, "new._tandem_new_amount::bigint + new.qty", []string{"_tandem_new_amount", "qty"}},
		{"quoted name", `"Mixed Case" || 'qty'`, nil, "new.mc || 'qty'", []string{"mc"}},
		{"literal and function untouched", "upper('amount') || qty::text", nil, "upper('amount') || new.qty::text", []string{"qty"}},
		{"unknown name untouched", "coalesce(other, qty)", nil, "COALESCE(other, new.qty)", []string{"qty"}},
		{"qualified name untouched", "items.qty", nil, "items.qty", nil},
		{"a column named new", `"new" + 1`, nil, `new.new + 1`, []string{"new"}},
		{"variable", "qty + amount", map[string]string{"qty": "_tandem_was_0"}, "_tandem_was_0 + new._tandem_new_amount", []string{"qty", "_tandem_new_amount"}},
		{"dollar in identifier", `qty + 1 AS "c$a$"`, nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reads, err := rowExpr(tc.expr, shape, "new", tc.vars)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("rowExpr(%q) = %q, want an error", tc.expr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("rowExpr(%q): %v", tc.expr, err)
			}
			if got != tc.want || !slices.Equal(reads, tc.reads) {
				t.Errorf("rowExpr(%q) = %q reading %v, want %q reading %v", tc.expr, got, reads, tc.want, tc.reads)
			}
		})
	}
}
