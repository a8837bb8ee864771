package lint

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fileSep separates migration files inside one test case.
const fileSep = "\n-- FILE\n"

// ruleCase is one positive or negative example for a rule.
type ruleCase struct {
	name string
	sql  string // one or more files separated by fileSep
	pg   int    // target major version; 0 means the default
	cfg  Config
	want bool // the rule fires
}

// lintCase lints the files of a case.
func lintCase(t *testing.T, c ruleCase) *Result {
	t.Helper()
	var srcs []Source
	for i, s := range strings.Split(c.sql, fileSep) {
		srcs = append(srcs, Source{Name: "m" + string(rune('1'+i)) + ".sql", SQL: s})
	}
	res, err := Lint(srcs, Options{PGVersion: c.pg, Config: c.cfg})
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	checkLeanParse(t, srcs, Options{PGVersion: c.pg, Config: c.cfg}, res, err)
	return res
}

// checkLeanParse checks that linting srcs with every statement's whole tree gives the
// same result and error as the lean parse did (lean.go).
func checkLeanParse(t *testing.T, srcs []Source, opts Options, lean *Result, leanErr error) {
	t.Helper()
	opts.fullTrees = true
	full, err := Lint(srcs, opts)
	if fmt.Sprint(err) != fmt.Sprint(leanErr) {
		t.Fatalf("lean parse: error %v, whole trees: error %v", leanErr, err)
	}
	if !reflect.DeepEqual(full, lean) {
		t.Fatalf("lean parse and whole trees differ:\nlean: %+v\nfull: %+v", lean, full)
	}
}

// runRuleCases checks that rule fires exactly for the cases that want it.
func runRuleCases(t *testing.T, rule string, cases []ruleCase) {
	t.Helper()
	if _, ok := LookupRule(rule); !ok {
		t.Fatalf("rule %q is not registered", rule)
	}
	pos, neg := 0, 0
	for _, c := range cases {
		if c.want {
			pos++
		} else {
			neg++
		}
		t.Run(c.name, func(t *testing.T) {
			res := lintCase(t, c)
			var got []Finding
			for _, f := range res.Findings {
				if f.Rule == rule {
					got = append(got, f)
				}
			}
			if c.want && len(got) == 0 {
				t.Errorf("%s did not fire on:\n%s\nfindings: %v", rule, c.sql, ruleIDs(res.Findings))
			}
			if !c.want && len(got) > 0 {
				t.Errorf("%s fired on:\n%s\n%s", rule, c.sql, got[0].Message)
			}
			for _, f := range got {
				if f.Message == "" || f.Fix == "" || f.Line == 0 {
					t.Errorf("incomplete finding: %+v", f)
				}
			}
		})
	}
	if pos < 3 || neg < 3 {
		t.Errorf("%s has %d positive and %d negative cases; want at least 3 of each", rule, pos, neg)
	}
}

func ruleIDs(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

// parseAll parses every statement of sql.
func parseAll(t *testing.T, sql string) []*statement {
	t.Helper()
	pf, err := parseFile("p.sql", sql, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []*statement
	if err := pf.statements(func(st *statement) { out = append(out, st) }); err != nil {
		t.Fatal(err)
	}
	return out
}
