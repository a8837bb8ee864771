package lint

import (
	"slices"
	"testing"
)

// TestForeignRuleNamesExist guards the mappings against typos in our rule IDs.
func TestForeignRuleNamesExist(t *testing.T) {
	for tool, m := range map[string]map[string][]string{"squawk": squawkRules, "atlas": atlasRules} {
		for name, ours := range m {
			for _, id := range ours {
				if _, ok := LookupRule(id); !ok {
					t.Errorf("%s %s maps to unknown rule %q", tool, name, id)
				}
			}
		}
	}
}

func TestForeignIgnores(t *testing.T) {
	const stmt = "SET lock_timeout = '1s';\nSET statement_timeout = '1s';\n"
	tests := []struct {
		name      string
		sql       string
		noForeign bool
		want      []string // rules reported
	}{
		{name: "no comment", sql: stmt + "ALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore on the line before", sql: stmt + "-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN a;"},
		{name: "squawk-ignore with several rules", sql: stmt + "-- squawk-ignore prefer-robust-stmts, ban-drop-column\nALTER TABLE users DROP COLUMN a;"},
		{name: "squawk-ignore of another rule", sql: stmt + "-- squawk-ignore renaming-column\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore of a rule without counterpart", sql: stmt + "-- squawk-ignore prefer-bigint-over-int\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "squawk-ignore-file", sql: "-- squawk-ignore-file ban-drop-column\n" + stmt + "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;"},
		{name: "squawk-ignore-file without rules", sql: "-- squawk-ignore-file\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint", sql: stmt + "-- atlas:nolint\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint analyzer", sql: stmt + "/*atlas:nolint destructive*/\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint check code", sql: stmt + "--atlas:nolint DS103\nALTER TABLE users DROP COLUMN a;"},
		{name: "atlas:nolint other code", sql: stmt + "--atlas:nolint BC102\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "atlas:nolint covers one statement", sql: stmt + "-- atlas:nolint\nALTER TABLE users DROP COLUMN a;\nALTER TABLE users DROP COLUMN b;", want: []string{"drop-column"}},
		{name: "turned off", noForeign: true, sql: stmt + "-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN a;", want: []string{"drop-column"}},
		{name: "turned off, ours still count", noForeign: true, sql: stmt + "-- tandem-lint-ignore: drop-column\nALTER TABLE users DROP COLUMN a;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("m.sql", tt.sql, Options{Config: Config{NoForeignIgnores: tt.noForeign}})
			if err != nil {
				t.Fatal(err)
			}
			got := ruleIDs(res.Findings)
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings = %v, want %v", got, tt.want)
			}
		})
	}
}
